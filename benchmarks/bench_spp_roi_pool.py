"""Benchmark: spp_roi_pool against MMDetection's RoI extractors, side by side.

Workload: FPN features of one 800x1216 image (strides 4, 8, 16, 32), C = 256, K RoIs
shaped like RPN proposals (sqrt(area) log-uniform in [32, 512], aspect ratio
log-uniform in [1/3, 3]), each pooled from the level mmdet's finest_scale=56 rule picks.

Providers (all in this process, same inputs):
  spp          spp_triton.spp_roi_pool, pyramid (1, 2, 3, 6) max (Triton on CUDA, PyTorch on CPU)
  roialign7    mmdet SingleRoIExtractor + mmcv RoIAlign 7x7 avg (mmdet's default)
  roialign_pyr mmdet SingleRoIExtractor + mmcv RoIAlign max, once per pyramid level (1, 2, 3, 6)
Measures forward and forward+backward (of out.sum()): triton.testing.do_bench on CUDA,
wall-clock medians on CPU. Writes results/spp_roi_pool_<device>.csv and .png.

    python benchmarks/bench_spp_roi_pool.py [--device cpu|cuda] [--ks 128 512 2048] [--reps 5]
"""
from __future__ import annotations

import argparse
import csv
import platform
import statistics
import time
from pathlib import Path

import torch

from proposals import rpn_like_rois
from spp_triton import spp_roi_pool

RESULTS = Path(__file__).resolve().parent / "results"
STRIDES = (4, 8, 16, 32)
PYRAMID = (1, 2, 3, 6)


def make_inputs(k: int, device: str, channels: int = 256, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h, w = 800, 1216
    feats = [torch.randn(1, channels, h // s, w // s, generator=g).to(device) for s in STRIDES]
    rois, side = rpn_like_rois(k, h, w, generator=g)
    levels = torch.floor(torch.log2(side / 56 + 1e-6)).clamp(0, 3).long()
    return feats, rois.to(device), levels.to(device)


def providers(device: str):
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    align7 = SingleRoIExtractor(dict(type="RoIAlign", output_size=7, sampling_ratio=0), 256, list(STRIDES)).to(device)
    per_level = [SingleRoIExtractor(dict(type="RoIAlign", output_size=n, sampling_ratio=0, pool_mode="max"),
                                    256, list(STRIDES)).to(device) for n in PYRAMID]

    def spp(feats, rois, levels):
        return spp_roi_pool(feats, rois, spatial_scales=[1 / s for s in STRIDES], roi_levels=levels)

    def roialign7(feats, rois, levels):
        return align7(feats, rois)

    def roialign_pyr(feats, rois, levels):
        return torch.cat([e(feats, rois).flatten(2) for e in per_level], dim=2)

    return {"spp": spp, "roialign7": roialign7, "roialign_pyr": roialign_pyr}


def timed(fn, device: str, reps: int) -> float:
    """Median seconds of fn()."""
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(device: str, ks, reps: int):
    rows = []
    fns = providers(device)
    for k in ks:
        feats, rois, levels = make_inputs(k, device)
        leaves = [f.detach().requires_grad_() for f in feats]
        for name, fn in fns.items():
            with torch.no_grad():
                fwd = timed(lambda: fn(feats, rois, levels), device, reps)

            def fwd_bwd():
                out = fn(leaves, rois, levels)
                out.sum().backward()
                for leaf in leaves:
                    leaf.grad = None

            both = timed(fwd_bwd, device, reps)
            rows.append(dict(device=device, k=k, provider=name, forward_s=fwd, forward_backward_s=both))
            print(f"K={k:5d} {name:13s} forward {fwd * 1e3:9.2f} ms   forward+backward {both * 1e3:9.2f} ms",
                  flush=True)
    for k in ks:
        base = {r["provider"]: r for r in rows if r["k"] == k}
        for peer in ("roialign7", "roialign_pyr"):
            print(f"K={k:5d} spp vs {peer:12s}: forward {base[peer]['forward_s'] / base['spp']['forward_s']:.2f}x, "
                  f"forward+backward {base[peer]['forward_backward_s'] / base['spp']['forward_backward_s']:.2f}x faster")
    return rows


def plot(rows, path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in zip(axes, ("forward_s", "forward_backward_s"), ("forward", "forward + backward")):
        for name in dict.fromkeys(r["provider"] for r in rows):
            pts = [(r["k"], r[key] * 1e3) for r in rows if r["provider"] == name]
            ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("RoIs per image (K)")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median time (ms)")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--ks", type=int, nargs="+", default=[128, 512, 2048])
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.manual_seed(0)
    rows = run(a.device, a.ks, a.reps)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"spp_roi_pool_{a.device}"
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    machine = torch.cuda.get_device_name() if a.device == "cuda" else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    plot(rows, stem.with_suffix(".png"), f"FPN 800x1216, C=256, pyramid 1/2/3/6 ({machine})")
    print(f"wrote {stem}.csv and {stem}.png")


if __name__ == "__main__":
    main()
