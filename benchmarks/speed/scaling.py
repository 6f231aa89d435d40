"""How ``spp_roi_pool`` (CPU, backend "torch") scales: time and peak memory of forward+backward.

Sweeps (one factor at a time, the others at the centre point K = 1024, C = 256, pyramid
(1, 2, 3, 6)):
  K        number of RoIs: 128, 256, ..., 8192
  C        channels: 64, 128, 256, 512, 1024
  pyramid  (1,), (1, 2), (1, 2, 3), (1, 2, 3, 6), (1, 2, 3, 4, 6)  (B = 1, 5, 14, 50, 66 bins)

Workload: one stride-16 feature map of an 800x1216 image (1 x C x 50 x 76, float32, the
SPPNet single-scale setting), K RoIs with centres uniform in the image, sqrt(area)
log-uniform in [32, 512] px and aspect ratio log-uniform in [1/3, 3] (fixed seed: the
first K of one draw, so a larger K adds RoIs of the same distribution), max mode,
"sppnet" projection. Forward+backward = ``out = spp_roi_pool(...); out.backward(g)`` with a
dense, preallocated upstream gradient g (what a real head hands back).

Time: wall clock of the forward call and of the backward call, per round; medians (and the
min of forward+backward) over ``--reps`` rounds. Each sweep runs in ONE subprocess that times
its points side by side (``common.interleaved``: point 1, 2, ..., n, then again). The centre
point is timed in each sweep separately (three independent measurements, a view of the noise).

Peak memory: NOT tracemalloc (it does not see torch's allocator). In a FRESH subprocess per
point, after the inputs and g exist and a tiny warm-up call has loaded the C++ kernel, the
current RSS is read from /proc/self/statm; then one forward+backward runs; the peak is
``ru_maxrss`` (``resource.getrusage``) minus that RSS, i.e. the extra resident memory the
operator needed at its peak (outputs, int32 argmax, feature gradient, temporaries); the
high-water mark right after the forward is recorded too (``fwd_peak_mem_mb``).
Caveat: ru_maxrss is a high-water mark, so if the process was ever bigger before the
measured call (imports), a small delta is underestimated (flagged ``maxrss_floor`` in the
CSV); freed-but-cached allocator memory counts as resident. The analytical minimum
(out + argmax + grad of the features) is given beside it.

Fit: least squares of log(time) on log(K) (slope 1 = linear growth) and of time on K
(t = a + b K), both with R^2; reported over all K and over K >= 1024, on the median times
(and on the min times as a check against interference). Called linear when the K >= 1024
log-log slope is within 0.9-1.1 and the linear fit's R^2 >= 0.98.

Writes benchmarks/results/scaling.csv, .md and .png.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import ROOT
from spp_triton import spp_roi_pool
from spp_triton.devtools.workloads import rpn_like_rois

IMG_H, IMG_W, STRIDE = 800, 1216, 16
KS = [128, 256, 512, 1024, 2048, 4096, 8192]
CS = [64, 128, 256, 512, 1024]
PYRAMIDS = [(1,), (1, 2), (1, 2, 3), (1, 2, 3, 6), (1, 2, 3, 4, 6)]
CENTRE = dict(k=1024, c=256, pyramid=(1, 2, 3, 6))


# --------------------------------------------------------------------------- worker
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _setup(threads: int) -> None:
    common.setup_threads(threads)
    # warm-up on a tiny input: loads the C++ kernel (before any memory baseline)
    tiny = torch.randn(1, 4, 8, 8, requires_grad=True)
    spp_roi_pool(tiny, torch.tensor([[0.0, 0.0, 0.0, 100.0, 100.0]]), spatial_scales=0.125,
                 backend="torch").sum().backward()


def _inputs(k, c, pyr):
    h, w = IMG_H // STRIDE, IMG_W // STRIDE
    bins = sum(n * n for n in pyr)
    feat = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(1)).requires_grad_()
    # one draw of 8192 RoIs, the first k (see the docstring's workload)
    rois = rpn_like_rois(k, IMG_H, IMG_W, generator=torch.Generator().manual_seed(0), draw=8192)[0]
    return feat, rois, torch.ones(k, c, bins), bins, (h, w)


def _call(feat, rois, pyr):
    return spp_roi_pool(feat, rois, spatial_scales=1.0 / STRIDE, pyramid=pyr, mode="max",
                        projection="sppnet", backend="torch")


def mem_worker(spec: dict) -> dict:
    """Fresh process, one point: extra resident memory of one forward+backward."""
    _setup(spec["threads"])
    k, c, pyr = spec["k"], spec["c"], tuple(spec["pyramid"])
    feat, rois, grad, bins, (h, w) = _inputs(k, c, pyr)
    rss0, maxrss0 = _rss_bytes(), _maxrss_bytes()
    out = _call(feat, rois, pyr)
    peak_fwd = _maxrss_bytes()  # the high-water mark after the forward alone
    out.backward(grad)
    peak = _maxrss_bytes()
    analytic = k * c * bins * 4 * 2 + c * h * w * 4  # out (f32) + argmax (i32) + grad features
    return dict(peak_mem_mb=(peak - rss0) / 2 ** 20, fwd_peak_mem_mb=(peak_fwd - rss0) / 2 ** 20,
                maxrss_floor=int(peak <= maxrss0), analytic_mb=analytic / 2 ** 20,
                analytic_fwd_mb=k * c * bins * 8 / 2 ** 20)


def time_worker(spec: dict) -> list:
    """One process per sweep: all its points side by side, ``reps`` rounds after one warm-up."""
    _setup(spec["threads"])
    fns, res = {}, []

    def fwd_bwd(feat, rois, pyr, grad):
        t0 = time.perf_counter()
        out = _call(feat, rois, pyr)
        t1 = time.perf_counter()
        out.backward(grad)
        t2 = time.perf_counter()
        feat.grad = None
        return dict(fwd=t1 - t0, bwd=t2 - t1, fwd_bwd=t2 - t0)

    for i, (k, c, pyr) in enumerate(spec["points"]):
        feat, rois, grad, bins, (h, w) = _inputs(k, c, tuple(pyr))
        fns[i] = functools.partial(fwd_bwd, feat, rois, tuple(pyr), grad)
        res.append(dict(k=k, c=c, pyramid="/".join(map(str, pyr)), bins=bins, fmap=f"{h}x{w}",
                        threads=spec["threads"], reps=spec["reps"]))
    times = common.interleaved(fns, spec["reps"], warmup=1, parts=True, summary=list)
    for i, r in enumerate(res):
        med = {part: statistics.median(t) for part, t in times[i].items()}
        r.update(fwd_bwd_s=med["fwd_bwd"], fwd_bwd_min_s=min(times[i]["fwd_bwd"]), fwd_s=med["fwd"], bwd_s=med["bwd"])
    return res


def run_worker(kind: str, spec: dict):
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(spec)], capture_output=True,
                       text=True, env=env, cwd=str(ROOT))
    if p.returncode != 0:
        raise RuntimeError(f"{kind} worker failed for {spec}:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- fits
def fit(xs, ys):
    """Least squares y = a + b x; returns (a, b, r2)."""
    b, a = np.polyfit(xs, ys, 1)
    r2 = np.corrcoef(xs, ys)[0, 1] ** 2 if np.ptp(ys) > 0 else 1.0  # constant ys: the line fits exactly
    return a, b, r2


def k_fits(krows, key="fwd_bwd_s"):
    out = {}
    for label, rs in (("all K", krows), ("K >= 1024", [r for r in krows if r["k"] >= 1024])):
        if len(rs) >= 2:
            xs, ys = np.array([r["k"] for r in rs], dtype=float), np.array([r[key] for r in rs])
            log_a, slope, r2_log = fit(np.log(xs), np.log(ys))
            a, b, r2_lin = fit(xs, ys)
            out[label] = dict(loglog_slope=slope, loglog_r2=r2_log, loglog_intercept=log_a,
                              lin_intercept_s=a, lin_s_per_roi=b, lin_r2=r2_lin, n=len(rs))
    return out


# --------------------------------------------------------------------------- main
def _log_log(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set(yscale="log", xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot(rows, fits, path: Path, threads: int):
    fig, axes = common.figure(2, 3, figsize=(14, 7.5))
    sweeps = [("K", "k", "RoIs K (C=256, pyramid 1/2/3/6)"), ("C", "c", "channels C (K=1024, pyramid 1/2/3/6)"),
              ("pyramid", "bins", "bins per channel B (K=1024, C=256)")]
    for j, (sweep, key, label) in enumerate(sweeps):
        rs = sorted([r for r in rows if r["sweep"] == sweep], key=lambda r: r[key])
        xs = [r[key] for r in rs]
        ax = axes[0, j]
        ax.plot(xs, [r["fwd_bwd_s"] * 1e3 for r in rs], "o-", label="forward + backward")
        ax.plot(xs, [r["fwd_s"] * 1e3 for r in rs], "s--", label="forward")
        ax.plot(xs, [r["bwd_s"] * 1e3 for r in rs], "^:", label="backward")
        if sweep == "K" and "all K" in fits:
            lab = "K >= 1024" if "K >= 1024" in fits else "all K"
            f = fits[lab]
            fx = [x for x in xs if x >= 1024] if lab == "K >= 1024" else xs
            ax.plot(fx, [math.exp(f["loglog_intercept"]) * x ** f["loglog_slope"] * 1e3 for x in fx], "-",
                    color="k", lw=0.8, label=f"power-law fit ({lab}): slope {f['loglog_slope']:.2f} "
                                             f"({fits['all K']['loglog_slope']:.2f} all K)")
            r0 = next(r for r in rs if r["k"] == fx[0])
            ax.plot(fx, [r0["fwd_bwd_s"] * 1e3 * x / fx[0] for x in fx], "--", color="gray", lw=0.8,
                    label="linear reference (slope 1)")
        if sweep == "pyramid":
            for r in rs:
                ax.annotate(r["pyramid"], (r["bins"], r["fwd_bwd_s"] * 1e3), fontsize=7)
        _log_log(ax, label, "median ms (log)")
        ax = axes[1, j]
        ax.plot(xs, [r["peak_mem_mb"] for r in rs], "o-", label="peak RSS delta, fwd+bwd (fresh process)")
        ax.plot(xs, [r["fwd_peak_mem_mb"] for r in rs], "^:", label="peak RSS delta after forward")
        ax.plot(xs, [r["analytic_mb"] for r in rs], "s--", label="out + argmax + grad(features)")
        _log_log(ax, label, "MiB")
    common.save_figure(fig, path, f"spp_roi_pool CPU (backend torch, C++ kernel), 1x C x 50x76 map, max, "
                                  f"{threads} thread(s), medians on a shared 2-core CPU")


def main():
    p = common.parser(__doc__, reps=7)  # --quick: 3 K, 2 C, 2 pyramids, 1 rep
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        kind, spec = a.worker
        print(json.dumps((mem_worker if kind == "mem" else time_worker)(json.loads(spec))))
        return
    ks, cs, pyrs = KS, CS, PYRAMIDS
    if a.quick:
        ks, cs, pyrs, a.reps = [128, 512, 1024], [64, 256], [(1,), (1, 2, 3, 6)], 1
    load0 = os.getloadavg()[0]
    sweeps = {
        "K": [(k, CENTRE["c"], CENTRE["pyramid"]) for k in ks],
        "C": [(CENTRE["k"], c, CENTRE["pyramid"]) for c in cs],
        "pyramid": [(CENTRE["k"], CENTRE["c"], pyr) for pyr in pyrs],
    }
    mem_cache, rows = {}, []
    for sweep, pts in sweeps.items():
        timed = run_worker("time", dict(points=[list(p_) for p_ in pts], reps=a.reps, threads=a.threads))
        for (k, c, pyr), r in zip(pts, timed):
            key = (k, c, tuple(pyr))
            if key not in mem_cache:  # a fresh process per point for the memory high-water mark
                mem_cache[key] = run_worker("mem", dict(k=k, c=c, pyramid=list(pyr), threads=a.threads))
            r.update(mem_cache[key], sweep=sweep)
            rows.append(r)
            print(f"[{sweep:7s}] K={k:5d} C={c:5d} pyramid={r['pyramid']:11s}: fwd+bwd {r['fwd_bwd_s'] * 1e3:8.1f} ms "
                  f"(fwd {r['fwd_s'] * 1e3:7.1f}, bwd {r['bwd_s'] * 1e3:7.1f}), peak +{r['peak_mem_mb']:7.1f} MiB "
                  f"(analytic {r['analytic_mb']:7.1f}){' [floor]' if r['maxrss_floor'] else ''}", flush=True)

    krows = sorted((r for r in rows if r["sweep"] == "K"), key=lambda r: r["k"])
    times = {"fwd+bwd median": "fwd_bwd_s", "fwd+bwd min": "fwd_bwd_min_s",
             "fwd median": "fwd_s", "bwd median": "bwd_s"}
    fits = {stat: k_fits(krows, key) for stat, key in times.items()}
    stem = common.result("scaling", a)
    fields = ["sweep", "k", "c", "pyramid", "bins", "fmap", "fwd_bwd_s", "fwd_bwd_min_s", "fwd_s", "bwd_s",
              "peak_mem_mb", "fwd_peak_mem_mb", "analytic_fwd_mb",
              "maxrss_floor", "analytic_mb", "threads", "reps"]
    common.write_csv(stem.with_suffix(".csv"), rows, fields)
    lines = [f"spp_roi_pool forward+backward, CPU backend torch, {a.threads} thread(s), medians of {a.reps} on a "
             f"shared 2-core CPU (1-min load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end). "
             "Peak memory = ru_maxrss - RSS before the call, fresh subprocess per point.", "",
             common.markdown_table(
                 ["sweep", "K", "C", "pyramid", "B", "fwd+bwd ms", "fwd ms", "bwd ms", "peak MiB (RSS)",
                  "analytic MiB"],
                 [[r["sweep"], r["k"], r["c"], r["pyramid"], r["bins"],
                   *(f"{r[key] * 1e3:.1f}" for key in ("fwd_bwd_s", "fwd_s", "bwd_s")),
                   f"{r['peak_mem_mb']:.1f}{' (floor)' if r['maxrss_floor'] else ''}", f"{r['analytic_mb']:.1f}"]
                  for r in rows]), "",
             "Fit of time against K (forward+backward median times; min times, less sensitive to the "
             "other jobs, as a check; and the forward and backward parts' medians):", "",
             common.markdown_table(
                 ["times", "K range", "points", "log-log slope", "R^2 (log-log)", "linear fit t = a + b K",
                  "R^2 (linear)"],
                 [[stat, label, f["n"], f"{f['loglog_slope']:.3f}", f"{f['loglog_r2']:.4f}",
                   f"a = {f['lin_intercept_s'] * 1e3:.1f} ms, b = {f['lin_s_per_roi'] * 1e6:.1f} us/RoI",
                   f"{f['lin_r2']:.4f}"] for stat, fs in fits.items() for label, f in fs.items()])]
    hi_label = "K >= 1024" if "K >= 1024" in fits["fwd+bwd median"] else "all K"
    hi = fits["fwd+bwd median"].get(hi_label)
    if hi:
        fwd, bwd = fits["fwd median"][hi_label], fits["bwd median"][hi_label]
        # "linear": log-log slope within 0.1 of 1 and a straight line explains >= 98 % of the variance
        linear = 0.9 <= hi["loglog_slope"] <= 1.1 and hi["lin_r2"] >= 0.98
        lines += ["", "Time ratio per step of K (2 = linear for a doubling): "
                  + "; ".join(f"{a_['k']}->{b_['k']}: fwd+bwd {b_['fwd_bwd_s'] / a_['fwd_bwd_s']:.2f}, "
                              f"fwd {b_['fwd_s'] / a_['fwd_s']:.2f}, bwd {b_['bwd_s'] / a_['bwd_s']:.2f}"
                              for a_, b_ in zip(krows, krows[1:])) + "."]
        lines += ["", f"Verdict: forward+backward time {'grows LINEARLY' if linear else 'does NOT grow linearly'} "
                  f"in K (log-log slope {hi['loglog_slope']:.2f} for {hi_label}, linear-fit R^2 {hi['lin_r2']:.3f}; "
                  f"{fits['fwd+bwd median']['all K']['loglog_slope']:.2f} over all K). Forward alone: slope "
                  f"{fwd['loglog_slope']:.2f} (R^2 linear {fwd['lin_r2']:.3f}); backward alone: "
                  f"{bwd['loglog_slope']:.2f} (R^2 linear {bwd['lin_r2']:.3f}) "
                  f"({hi_label}). Peak memory is linear in K, C and B (the outputs are K x C x B): measured / "
                  f"analytic = {statistics.median(r['peak_mem_mb'] / r['analytic_mb'] for r in rows):.2f} (median "
                  "over points). After the forward alone the peak is "
                  f"{statistics.median(r['fwd_peak_mem_mb'] / r['analytic_fwd_mb'] for r in rows):.2f} x "
                  "(out + argmax) (the backward's gradients of the features come on top)."]
    common.write_text(stem.with_suffix(".md"), "\n".join(lines))
    plot(rows, fits["fwd+bwd median"], stem.with_suffix(".png"), a.threads)
    print(f"\nwrote {stem}.csv, {stem}.md and {stem}.png")


if __name__ == "__main__":
    main()
