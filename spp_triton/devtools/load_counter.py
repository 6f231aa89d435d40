"""Memory traffic of the Triton kernels, counted in Triton's interpreter.

A pooling kernel is memory-bound: on a GPU its time is the bytes it moves. Without a GPU
those bytes can still be counted exactly: ``TrafficCounter`` wraps the interpreter's
load, store and atomic primitives and adds up, per program (grid index) and in total,
the bytes of every active lane (masked-off lanes move nothing). ``one_pass_bytes`` is the
floor a forward cannot go below: every cell of every RoI's window, once per channel.

    with TrafficCounter() as tc:     # needs TRITON_INTERPRET=1 before triton is imported
        triton_backend.forward(...)
    tc.loads / one_pass_bytes(...)   # the forward's load ratio
    tc.busiest_program_loads         # the busiest program's loads

``traffic_report()`` measures the kernels' targets on fixed workloads (the forward's
load ratio on random windows and on RPN-like FPN proposals, cells and bilinear, the busiest backward
program at K = 16 and 96 (``GROWTH_KS``), both backward modes' traffic at K = 512, C = 256);
``python -m spp_triton.devtools.load_counter`` prints it (``interpreted_report`` runs that in a
subprocess with TRITON_INTERPRET=1, for processes that run compiled kernels). Used by
tests/test_triton_traffic.py, benchmarks/speed/bench_spp_roi_pool.py and the self-test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import numpy as np
import torch

from ..geometry import (ALIGN_LEVEL, ALIGN_RATIOS, PoolSpec, WIN_X_HI, WIN_X_LO, WIN_Y_HI, WIN_Y_LO, align_table,
                       bilinear_axis, lattice_coords, window_table)
from .workloads import fpn_inputs, window_inputs

# The forward variants the load-ratio target covers: (label, pyramid, mode, sampling).
FORWARD_VARIANTS = (("nested max 1/2/3/6", (1, 2, 3, 6), "max", "cells"),
                    ("direct max 1/3/5", (1, 3, 5), "max", "cells"),
                    ("avg 1/2/3/6", (1, 2, 3, 6), "avg", "cells"),
                    ("bilinear nested max 1/2/3/6 r2", (1, 2, 3, 6), "max", "bilinear"),
                    ("bilinear nested avg 1/2/3/6 r2", (1, 2, 3, 6), "avg", "bilinear"),
                    ("bilinear direct max 1/3/5 r2", (1, 3, 5), "max", "bilinear"))


# The backward's growth target compares its busiest program at these K (6x apart).
GROWTH_KS = (16, 96)


def variant_spec(variant, scales) -> PoolSpec:
    """The PoolSpec of a FORWARD_VARIANTS entry (bilinear: sampling_ratio 2, aligned)."""
    _, pyramid, mode, sampling = variant
    return PoolSpec.make(pyramid, mode, "sppnet", scales, sampling, 2, True)


def _active_bytes(ptrs, mask) -> int:
    from triton.runtime.interpreter import _get_np_dtype

    lanes = int(np.count_nonzero(mask.data)) if mask is not None else int(np.size(ptrs.data))
    return lanes * np.dtype(_get_np_dtype(ptrs.get_element_ty())).itemsize


class TrafficCounter:
    """Counts bytes loaded, stored and atomically updated by interpreted Triton programs.

    Attributes (valid after the ``with`` block, or during it):
        loads, stores, atomics: totals in bytes.
        program_loads: {(launch, (pid0, pid1, pid2)): bytes loaded by that program},
            launch counting the kernel launches inside the block from 0.
    """

    def __init__(self):
        self.loads = self.stores = self.atomics = 0
        self.program_loads: dict = defaultdict(int)
        self.launches = 0
        self._saved = None

    def __enter__(self):
        from triton.runtime import interpreter

        if not _interpreting():  # compiled kernels would run past the hooks, counting nothing
            raise RuntimeError("TrafficCounter needs TRITON_INTERPRET=1 (set before triton is imported)")
        builder = interpreter.InterpreterBuilder
        self._saved = (builder.create_masked_load, builder.create_masked_store, builder.create_atomic_rmw,
                       interpreter.GridExecutor.__call__)
        load, store, rmw, launch = self._saved
        counter = self

        def launch_and_count(executor, *args, **kwargs):
            try:
                return launch(executor, *args, **kwargs)
            finally:
                counter.launches += 1

        def create_masked_load(b, ptrs, mask, other, cache_policy, is_volatile):
            n = _active_bytes(ptrs, mask)
            counter.loads += n
            counter.program_loads[(counter.launches, b.grid_idx)] += n
            return load(b, ptrs, mask, other, cache_policy, is_volatile)

        def create_masked_store(b, ptrs, value, mask, cache_policy):
            counter.stores += _active_bytes(ptrs, mask)
            return store(b, ptrs, value, mask, cache_policy)

        def create_atomic_rmw(b, rmw_op, ptr, val, mask, sem, scope):
            counter.atomics += _active_bytes(ptr, mask)
            return rmw(b, rmw_op, ptr, val, mask, sem, scope)

        builder.create_masked_load = create_masked_load
        builder.create_masked_store = create_masked_store
        builder.create_atomic_rmw = create_atomic_rmw
        interpreter.GridExecutor.__call__ = launch_and_count
        return self

    def __exit__(self, *exc):
        from triton.runtime import interpreter

        builder = interpreter.InterpreterBuilder
        (builder.create_masked_load, builder.create_masked_store, builder.create_atomic_rmw,
         interpreter.GridExecutor.__call__) = self._saved
        return False

    @property
    def busiest_program_loads(self) -> int:
        return max(self.program_loads.values(), default=0)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def one_pass_bytes(feats: list[torch.Tensor], rois: torch.Tensor, roi_levels: torch.Tensor, spec: PoolSpec) -> int:
    """The forward's floor: for every RoI, the cells of its window x C x the element size."""
    n_img, c = feats[0].shape[:2]
    win = window_table([tuple(f.shape[2:]) for f in feats], rois, roi_levels, spec, n_img)
    cells = (win[:, WIN_X_HI] - win[:, WIN_X_LO] + 1) * (win[:, WIN_Y_HI] - win[:, WIN_Y_LO] + 1)
    return int(cells.sum()) * c * feats[0].element_size()


def lattice_bytes(feats: list[torch.Tensor], rois: torch.Tensor, roi_levels: torch.Tensor,
                  spec: PoolSpec) -> tuple[int, int]:
    """A bilinear forward's floors: (four corner loads of every lattice point of every RoI
    x C x the element size: what sampling each lattice once costs; the distinct cells
    those corners touch, per RoI, x C x the element size: what reading each of them once
    would cost)."""
    n_img, c = feats[0].shape[:2]
    meta, box = align_table(rois, roi_levels, spec, n_img, len(feats))
    corners = distinct = 0
    for k in range(rois.shape[0]):  # a measurement, not a hot path
        h, w = feats[int(meta[k, ALIGN_LEVEL])].shape[2:]
        cells = set()
        for gi, g in enumerate(spec.sampled_grids):
            r_y, r_x = meta[k, ALIGN_RATIOS + 2 * gi], meta[k, ALIGN_RATIOS + 2 * gi + 1]
            ys = bilinear_axis(lattice_coords(box[k, 1], box[k, 3], g, r_y, torch.arange(g * int(r_y))), h)
            xs = bilinear_axis(lattice_coords(box[k, 0], box[k, 2], g, r_x, torch.arange(g * int(r_x))), w)
            corners += 4 * ys[0].numel() * xs[0].numel()
            for y in torch.cat([ys[0][ys[4]], ys[1][ys[4]]]).unique().tolist():
                cells.update((y, x) for x in torch.cat([xs[0][xs[4]], xs[1][xs[4]]]).unique().tolist())
        distinct += len(cells)
    return corners * c * feats[0].element_size(), distinct * c * feats[0].element_size()


def forward_traffic(feats, rois, roi_levels, spec: PoolSpec) -> dict:
    """Bytes the Triton forward loads and stores for one call, and its floor: the one-pass
    minimum (cells), or four corner loads per lattice point (bilinear; ``distinct`` then
    holds the bytes of the distinct cells the corners touch)."""
    from .. import triton_backend

    with TrafficCounter() as tc:
        triton_backend.forward(feats, rois, roi_levels, spec)
    row = dict(loads=tc.loads, stores=tc.stores)
    if spec.bilinear:
        floor, distinct = lattice_bytes(feats, rois, roi_levels, spec)
        row.update(distinct=distinct, distinct_ratio=tc.loads / distinct)
    else:
        floor = one_pass_bytes(feats, rois, roi_levels, spec)
    return dict(row, one_pass=floor, ratio=tc.loads / floor)


def backward_traffic(feats, rois, roi_levels, spec: PoolSpec, deterministic: bool) -> dict:
    """Bytes the Triton backward moves (all its kernels) and its busiest program's loads.
    ``zero_fill`` is the memory its zero-initialised buffers take (written by torch)."""
    from .. import torch_backend, triton_backend

    _, argmax = torch_backend.forward(feats, rois, roi_levels, spec)
    grad = torch.randn(rois.shape[0], feats[0].shape[1], spec.num_bins, generator=torch.Generator().manual_seed(0))
    with TrafficCounter() as tc:
        triton_backend.backward(grad, argmax, feats, rois, roi_levels, spec, deterministic)
    cells = sum(f.numel() for f in feats)
    zero_fill = cells * (4 + (8 if deterministic else 0))
    return dict(loads=tc.loads, stores=tc.stores, atomics=tc.atomics, zero_fill=zero_fill,
                total=tc.loads + tc.stores + tc.atomics + zero_fill, busiest_program_loads=tc.busiest_program_loads)


def traffic_report(quick: bool = False) -> dict:
    """The kernels' traffic targets, measured (needs the interpreter)."""
    k_fwd, c_fwd = (12, 8) if quick else (64, 8)
    report = {"forward": [], "backward_growth": [], "backward_cost": []}
    cases = (("random windows 3-25 cells, one stride-16 map", window_inputs(k_fwd, c_fwd, seed=1)),
             ("RPN-like proposals, 4 FPN levels (finest_scale 56)", fpn_inputs(k_fwd, c_fwd, seed=2)))
    for case, (feats, rois, levels, scales) in cases:
        for variant in FORWARD_VARIANTS:
            spec = variant_spec(variant, scales)
            report["forward"].append(dict(case=case, variant=variant[0],
                                          **forward_traffic(feats, rois, levels, spec)))
    ks = GROWTH_KS
    for mode in ("max", "avg"):
        for det in (False, True):
            busiest = []
            for k in ks:
                feats, rois, levels, scales = fpn_inputs(k, 8, seed=3, image=(400, 608))
                spec = PoolSpec.make((1, 2, 3, 6), mode, "sppnet", scales)
                busiest.append(backward_traffic(feats, rois, levels, spec, det)["busiest_program_loads"])
            report["backward_growth"].append(dict(mode=mode, deterministic=det, ks=ks, busiest=busiest,
                                                  growth=busiest[1] / busiest[0]))
    k, c = (64, 64) if quick else (512, 256)
    feats, rois, levels, scales = fpn_inputs(k, c, seed=4)
    for det in (False, True):
        spec = PoolSpec.make((1, 2, 3, 6), "max", "sppnet", scales)
        report["backward_cost"].append(dict(k=k, c=c, mode="max", deterministic=det,
                                            **backward_traffic(feats, rois, levels, spec, det)))
    return report


def format_report(report: dict) -> str:
    lines = ["Forward: bytes loaded / the floor (every load counted; target <= 1.1). The floor: the one-pass "
             "minimum (cells: every window cell once per channel), or four corner loads per lattice point "
             "(bilinear); for bilinear, also the loads / the distinct cells the corners touch", "",
             "| workload | variant | loaded MB | floor MB | ratio | / distinct cells |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in report["forward"]:
        distinct = f"{r['distinct_ratio']:.2f}" if "distinct_ratio" in r else "-"
        lines.append(f"| {r['case']} | {r['variant']} | {r['loads'] / 1e6:.3f} | {r['one_pass'] / 1e6:.3f} | "
                     f"{r['ratio']:.3f} | {distinct} |")
    lines += ["", "Backward: the busiest program's loads (of any of its launches: scatter, and for the "
              f"deterministic one the scale pre-pass and the finalize pass), K = {GROWTH_KS[0]} -> {GROWTH_KS[1]} "
              "(target: growth <= 2x)", "",
              f"| mode | scatter | K = {GROWTH_KS[0]} bytes | K = {GROWTH_KS[1]} bytes | growth |",
              "| --- | --- | --- | --- | --- |"]
    for r in report["backward_growth"]:
        lines.append(f"| {r['mode']} | {'deterministic' if r['deterministic'] else 'atomic'} | {r['busiest'][0]} | "
                     f"{r['busiest'][1]} | {r['growth']:.2f}x |")
    cost = report["backward_cost"]
    lines += ["", f"Backward traffic at K = {cost[0]['k']}, C = {cost[0]['c']} (max mode, all kernels + zero-fill)",
              "", "| scatter | loads MB | stores MB | atomics MB | zero-fill MB | total MB |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in cost:
        lines.append(f"| {'deterministic' if r['deterministic'] else 'atomic'} | {r['loads'] / 1e6:.1f} | "
                     f"{r['stores'] / 1e6:.1f} | {r['atomics'] / 1e6:.1f} | {r['zero_fill'] / 1e6:.1f} | "
                     f"{r['total'] / 1e6:.1f} |")
    lines.append(f"\ndeterministic / atomic total traffic: {cost[1]['total'] / cost[0]['total']:.2f}x")
    return "\n".join(lines)


def interpreted_report(quick: bool = False) -> dict:
    """``traffic_report`` here when interpreting, else in a subprocess with
    TRITON_INTERPRET=1 (triton reads it once, at import)."""
    if _interpreting():
        return traffic_report(quick)
    env = dict(os.environ, TRITON_INTERPRET="1", SPP_TRITON_INTERPRET_BLOCK_C="64")
    cmd = [sys.executable, "-m", "spp_triton.devtools.load_counter", "--json"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Memory traffic of the Triton kernels, counted in the interpreter.")
    p.add_argument("--quick", action="store_true", help="smaller workloads")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    a = p.parse_args(argv)
    report = interpreted_report(a.quick)
    print(json.dumps(report) if a.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
