"""Benchmark: the torch backend's two implementations side by side, forward + backward.

``cpp_kernel`` (C++, built on first use) against ``fallback`` (pure PyTorch, what
runs where the kernel cannot), both through the backend contract on the same inputs in
one process: FPN levels of one 800 x 1216 image (strides 4-32), C = 256, N = 1, K RPN-like
proposals (``spp_triton.devtools.workloads``) pooled from the level mmdet's finest_scale = 56
rule picks, "sppnet" projection. ``--extreme`` uses 500 x 16 and 16 x 500 px boxes instead.

    python benchmarks/speed/bench_cpu_backend.py [--k 512] [--mode max|avg] [--pyramid 1,2,3,6]
        [--dtype float32] [--extreme] [--impl cpp_kernel fallback] [--reps 5] [--threads 0]

Prints medians (ms) and the kernel's speed-up over the fallback.
"""
from __future__ import annotations

import torch

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from spp_triton.torch_backend import cpp_kernel, fallback
from spp_triton.geometry import PoolSpec
from spp_triton.devtools.workloads import FPN_STRIDES, fpn_inputs, fpn_levels

IMPLS = {"cpp_kernel": cpp_kernel, "fallback": fallback}


def make_inputs(k: int, c: int, dtype: torch.dtype, extreme: bool, seed: int = 0):
    feats, rois, levels, _ = fpn_inputs(k, c, dtype, seed=seed)
    if extreme:  # 500 x 16 and 16 x 500 boxes centred in the image
        bw, bh = torch.full((k,), 500.0), torch.full((k,), 16.0)
        bw[::2], bh[::2] = 16.0, 500.0
        cx, cy = 1216 / 2, 800 / 2
        rois = torch.stack([torch.zeros(k), cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        levels = fpn_levels((bw * bh).sqrt(), len(FPN_STRIDES))
    return feats, rois, levels


def main():
    p = common.parser(__doc__, threads=0)
    p.add_argument("--k", type=int, default=512)
    p.add_argument("--c", type=int, default=256)
    p.add_argument("--mode", default="max", choices=("max", "avg"))
    p.add_argument("--pyramid", default="1,2,3,6")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--extreme", action="store_true", help="500x16 / 16x500 boxes")
    p.add_argument("--impl", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    a = p.parse_args()
    common.setup_threads(a.threads)
    if a.quick:
        a.k, a.reps = 64, 1
    feats, rois, levels = make_inputs(a.k, a.c, getattr(torch, a.dtype), a.extreme)
    spec = PoolSpec.make([int(x) for x in a.pyramid.split(",")], a.mode, "sppnet", [1.0 / s for s in FPN_STRIDES])
    print(f"K={a.k} C={a.c} mode={a.mode} pyramid={spec.pyramid} dtype={a.dtype} extreme={a.extreme}; "
          f"{common.machine()}; medians of {a.reps}")
    results = {}
    for name in a.impl:
        impl = IMPLS[name]
        out, argmax = impl.forward(feats, rois, levels, spec)
        grad = torch.ones_like(out)
        fwd = common.median_time(lambda: impl.forward(feats, rois, levels, spec), a.reps)
        bwd = common.median_time(lambda: impl.backward(grad, argmax, feats, rois, levels, spec), a.reps)
        results[name] = fwd + bwd
        print(f"{name:15s} forward {fwd * 1e3:8.1f} ms   backward {bwd * 1e3:8.1f} ms   "
              f"total {(fwd + bwd) * 1e3:8.1f} ms", flush=True)
    if len(results) == 2:
        print(f"cpp_kernel is {results['fallback'] / results['cpp_kernel']:.1f}x faster than fallback")


if __name__ == "__main__":
    main()
