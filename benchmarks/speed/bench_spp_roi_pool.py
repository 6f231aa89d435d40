"""Benchmark: spp_roi_pool against MMDetection's RoI extractors, side by side.

Workload: FPN features of one 800x1216 image (strides 4, 8, 16, 32), C = 256, K RoIs
shaped like RPN proposals (sqrt(area) log-uniform in [32, 512], aspect ratio
log-uniform in [1/3, 3]), each pooled from the level mmdet's finest_scale=56 rule picks.

Providers (all in this process, same inputs):
  spp          spp_triton.spp_roi_pool, pyramid (1, 2, 3, 6) max (Triton on CUDA, the C++ kernel on CPU)
  spp_pytorch  CPU: the same through the torch backend's pure-PyTorch fallback (what runs where
               the C++ kernel cannot build: SPP_TRITON_CPU_KERNEL=0), to show what the kernel buys
  spp_determ   the same with deterministic=True (CUDA: the fixed-point backward)
  align        the same with sampling="bilinear" (SPP-Align), sampling_ratio 2, aligned, max
  align_avg    the same in avg mode
  align_determ align with deterministic=True (CUDA)
  roialign7    mmdet SingleRoIExtractor + mmcv RoIAlign 7x7 avg (mmdet's default)
  roipool7     mmdet SingleRoIExtractor + mmcv RoIPool 7x7 (CUDA only: mmcv has no CPU RoIPool)
  roialign_pyr mmdet SingleRoIExtractor + mmcv RoIAlign max, once per pyramid level (1, 2, 3, 6)
The mmcv rows are skipped, with the reason on one line, where mmcv's ops cannot run on the
device (e.g. an mmcv built without CUDA ops).
Measures forward and forward+backward (of out.sum()) with ``common.bench``. Then prints the
Triton kernels' memory traffic, counted in Triton's interpreter (``spp_triton.devtools.load_counter``:
the forward's bytes against the one-pass minimum, the backward's busiest program against K, and
the deterministic backward's traffic against the atomic one at K = 512, C = 256). Writes
results/spp_roi_pool_<device>.csv and .png, and results/triton_traffic.md.
"""
from __future__ import annotations

import os
from unittest import mock

import torch

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from spp_triton import spp_roi_pool
from spp_triton.devtools.workloads import FPN_STRIDES, fpn_inputs

PYRAMID = (1, 2, 3, 6)


def mmcv_unusable(device: str):
    """Why mmcv's RoI ops cannot run on ``device`` (one line), or None if they can."""
    from mmcv.ops import RoIAlign, get_compiling_cuda_version

    if device.startswith("cuda") and get_compiling_cuda_version() == "not available":
        return "mmcv was built without CUDA ops (docs/gpu_machine.md)"
    try:
        RoIAlign(1, 1.0)(torch.zeros(1, 1, 2, 2, device=device), torch.zeros(1, 5, device=device))
    except RuntimeError as e:
        return f"mmcv's RoIAlign does not run on {device}: {str(e).splitlines()[0]}"
    return None


def providers(device: str):
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    def extractor(**layer):
        return SingleRoIExtractor(layer, 256, list(FPN_STRIDES)).to(device)

    align7 = extractor(type="RoIAlign", output_size=7, sampling_ratio=0)
    per_level = [extractor(type="RoIAlign", output_size=n, sampling_ratio=0, pool_mode="max") for n in PYRAMID]
    scales = [1 / s for s in FPN_STRIDES]
    bilinear = dict(sampling="bilinear", sampling_ratio=2)

    def spp(**kw):
        return lambda feats, rois, levels: spp_roi_pool(feats, rois, spatial_scales=scales, roi_levels=levels, **kw)

    fns = {
        "spp": spp(),
        "align": spp(**bilinear),
        "align_avg": spp(mode="avg", **bilinear),
        "roialign7": lambda feats, rois, levels: align7(feats, rois),
        "roialign_pyr": lambda feats, rois, levels: torch.cat([e(feats, rois).flatten(2) for e in per_level], 2),
    }
    if device == "cpu":
        fns["spp_pytorch"] = fns["spp"]  # timed with SPP_TRITON_CPU_KERNEL=0, see run()
    if device == "cuda":
        pool7 = extractor(type="RoIPool", output_size=7)
        fns["spp_determ"] = spp(deterministic=True)
        fns["roipool7"] = lambda feats, rois, levels: pool7(feats, rois)
        fns["align_determ"] = spp(deterministic=True, **bilinear)
    reason = mmcv_unusable(device)
    if reason:
        mmcv_rows = ("roialign7", "roipool7", "roialign_pyr")
        print(f"skipping the mmcv rows ({', '.join(p for p in mmcv_rows if p in fns)}): {reason}", flush=True)
        fns = {name: fn for name, fn in fns.items() if name not in mmcv_rows}
    return fns


def run(device: str, ks, reps: int):
    rows = []
    fns = providers(device)
    for k in ks:
        feats, rois, levels, _ = fpn_inputs(k, 256, device=device)
        leaves = [f.detach().requires_grad_() for f in feats]
        for name, fn in fns.items():
            def fwd_bwd():
                out = fn(leaves, rois, levels)
                out.sum().backward()
                for leaf in leaves:
                    leaf.grad = None

            # spp_pytorch: the torch backend's pure-PyTorch fallback for forward and backward (the
            # dispatcher reads SPP_TRITON_CPU_KERNEL at every call); patch.dict restores the caller's value
            with mock.patch.dict(os.environ, {"SPP_TRITON_CPU_KERNEL": "0"} if name == "spp_pytorch" else {}):
                with torch.no_grad():
                    fwd = common.bench(lambda: fn(feats, rois, levels), device, reps)
                both = common.bench(fwd_bwd, device, reps)
            rows.append(dict(device=device, k=k, provider=name, forward_s=fwd, forward_backward_s=both))
            print(f"K={k:5d} {name:13s} forward {fwd * 1e3:9.2f} ms   forward+backward {both * 1e3:9.2f} ms",
                  flush=True)
    for k in ks:
        base = {r["provider"]: r for r in rows if r["k"] == k}
        for ours in (o for o in ("spp", "spp_pytorch", "align", "align_avg") if o in base):
            for peer in (p for p in ("roialign7", "roipool7", "roialign_pyr") if p in base):
                print(f"K={k:5d} {ours:9s} vs {peer:12s}: forward "
                      f"{base[peer]['forward_s'] / base[ours]['forward_s']:.2f}x, forward+backward "
                      f"{base[peer]['forward_backward_s'] / base[ours]['forward_backward_s']:.2f}x faster")
    return rows


def plot(rows, path, title: str):
    fig, axes = common.figure(1, 2, figsize=(10, 4), sharey=True)
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
    common.save_figure(fig, path, title)


def main():
    p = common.parser(__doc__, threads=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--ks", type=int, nargs="+", default=[128, 512, 2048])
    p.add_argument("--no-traffic", action="store_true", help="skip the interpreter's traffic counts")
    a = p.parse_args()
    common.setup_threads(a.threads)
    if a.quick:
        a.ks, a.reps = [128], 1
    torch.manual_seed(0)
    machine = common.machine(a.device)
    rows = run(a.device, a.ks, a.reps)
    stem = common.result(f"spp_roi_pool_{a.device}", a)
    common.write_csv(stem.with_suffix(".csv"), rows)
    plot(rows, stem.with_suffix(".png"), f"FPN 800x1216, C=256, pyramid 1/2/3/6 ({machine})")
    if not a.no_traffic:
        from spp_triton.devtools.load_counter import format_report, interpreted_report

        print("\nTriton kernels' memory traffic, counted in Triton's interpreter:", flush=True)
        common.write_text(common.RESULTS / "triton_traffic.md", format_report(interpreted_report(quick=a.quick)))
    print(f"wrote {stem}.csv and {stem}.png")


if __name__ == "__main__":
    main()
