"""FLOPs of ``spp_triton::spp_roi_pool`` in MMEngine's complexity analysis.

MMEngine's ``FlopAnalyzer`` (behind ``get_model_complexity_info`` and so behind mmdet's
``tools/analysis_tools/get_flops.py``, ``mim run mmdet get_flops CONFIG``) traces the
model with ``torch.jit`` and counts each graph node through a handle keyed by the node's
kind; a kind without a handle counts 0. Importing ``mmdet_plugin`` registers
``spp_roi_pool_flop_jit`` under ``"spp_triton::spp_roi_pool"`` in MMEngine's default
table (and the output's K x C x B values in its activation table), so every analyzer
built afterwards counts the SPP stage. In its tables the operator is ``spp_roi_pool``.

What is counted for ``sampling="bilinear"`` (SPP-Align): ``bilinear_flops``. For
``sampling="cells"``, the paper's pooling: for each RoI, channel and output bin, with n the number of feature cells in the bin (the operator's window and
bin rules, ``spp_triton.geometry.window_table`` and ``bin_bounds``):

- ``mode="max"``: n - 1 comparisons;
- ``mode="avg"``: n - 1 additions and 1 division, n operations.

Each bin is counted over its own cells, as the operator is defined (the kernels reduce
the finest grid once and take coarser max bins as unions of it, which needs fewer
comparisons; that is how they run, not what the layer computes). Nothing else is
counted: not the window projection, not index arithmetic. Over a grid of n x n bins a
window of h x w cells holds R_n(h) R_n(w) cells in all, R_n(h) = sum_i (ceil((i + 1) h /
n) - floor(i h / n)) >= h (neighbouring bins share a row where n does not divide h), so
one call counts

    C * sum over RoIs k, grids n of (R_n(h_k) R_n(w_k) - n^2 if max else R_n(h_k) R_n(w_k)).

Where the windows come from: they depend on the RoIs' coordinates and levels, which a
jit trace does not keep (only shapes). So the handle finds the ``JitModelAnalysis``
that calls it (MMEngine's ``_analyze``, among the calling frames), runs that analyzer's
model once more on its inputs under ``torch.no_grad`` with a ``TorchFunctionMode`` that
records the arguments of every ``spp_roi_pool`` call (buffers restored afterwards), and
counts the i-th ``spp_roi_pool`` node of the graph from the i-th recorded call: exact,
for the inputs analysed. Where there is no such analyzer (another counter calls the
handle), or the recorded calls do not match the graph's (their number, K, pyramid, mode
or the maps' shapes differ), it estimates every window as ``ESTIMATE_WINDOW`` cells
(14 x 14: SPP-net's 224 x 224-pixel RoI at stride 16) and warns.
"""
from __future__ import annotations

import sys
import warnings
import weakref
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from spp_triton.geometry import (ALIGN_RATIOS, WIN_X_HI, WIN_X_LO, WIN_Y_HI, WIN_Y_LO, Mode, PoolSpec, align_table,
                                 bin_bounds, window_table)

OP_NAME = "spp_triton::spp_roi_pool"
# Window side, in cells, assumed where the RoIs' values are unknown.
ESTIMATE_WINDOW = 14
# Calls recorded per analyzer (one re-run of its model each).
_RECORDS: "weakref.WeakKeyDictionary[Any, list[dict]]" = weakref.WeakKeyDictionary()


def _op():
    return torch.ops.spp_triton.spp_roi_pool.default


def _arg_names() -> list[str]:
    """The operator's argument names in schema order (pyramid and mode are found by
    name, whatever arguments come between)."""
    return [a.name for a in _op()._schema.arguments]


def _cells_over_bins(lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    """(K,) int64: R_n, the cells of the n bins over each window [lo, hi], summed."""
    start, end = bin_bounds(lo, hi, n)
    return (end - start + 1).sum(1)


def cells_flops(feature_shapes, rois: torch.Tensor, roi_levels: torch.Tensor, spatial_scales, pyramid,
                mode: str, projection: str) -> int:
    """Comparisons (max) or additions and divisions (avg) of one ``sampling="cells"``
    call, from its real arguments (see the module docstring).

    Args:
        feature_shapes: (N, C, H, W) of every level.
        rois: (K, 5); roi_levels: (K,) integer; the rest as ``spp_triton.spp_roi_pool``.
    """
    spec = PoolSpec.make(pyramid, mode, projection, spatial_scales)
    table = window_table([(int(s[2]), int(s[3])) for s in feature_shapes], rois, roi_levels, spec,
                         int(feature_shapes[0][0]))
    per_bin = 1 if spec.mode == Mode.MAX else 0
    total = 0
    for n in spec.pyramid:
        cells = _cells_over_bins(table[:, WIN_Y_LO], table[:, WIN_Y_HI], n) * \
            _cells_over_bins(table[:, WIN_X_LO], table[:, WIN_X_HI], n)
        total += int(cells.sum()) - per_bin * n * n * rois.shape[0]
    return total * int(feature_shapes[0][1])


# Per lattice point and channel, the bilinear sample ((w1 v1 + w2 v2) + w3 v3) + w4 v4.
SAMPLE_FLOPS = 7


def _bilinear_count(points, pyramid, fine_grid, grids, mode, num_rois: int) -> int:
    """Per channel: SAMPLE_FLOPS per lattice point, then per bin of every grid its points
    - 1 comparisons (max) or its points operations (avg). ``points[g]`` is the (summed
    over RoIs) lattice size of sampled grid ``grids[g]``; a nested pyramid's grids all
    cover the one lattice, a non-nested one's grid covers its own."""
    per_bin = 1 if Mode.parse("mode", mode) == Mode.MAX else 0
    total = 0
    for g, s in enumerate(grids):
        users = pyramid if fine_grid else (s,)
        total += SAMPLE_FLOPS * points[g] + sum(points[g] - per_bin * n * n * num_rois for n in users)
    return total


def bilinear_flops(call: dict) -> int:
    """FLOPs of one ``sampling="bilinear"`` call (SPP-Align), times C: for each lattice
    point of each sampled grid (``PoolSpec.sampled_grids``; (S r_y) x (S r_x) points per
    RoI, r from ``geometry.lattice_ratio``) 4 multiplies and 3 additions for its sample,
    then for each bin of each pyramid grid its samples - 1 comparisons (max) or its
    samples operations (avg: additions and the division). Exact from the real RoIs (with
    a fixed sampling_ratio the count does not depend on them). The weights' products,
    shared by the channels, are not counted.

    Args:
        call: the call's arguments by schema name (``features`` as their shapes).
    """
    shapes = call["features"]
    spec = PoolSpec.make(call["pyramid"], call["mode"], "sppnet", call["spatial_scales"], "bilinear",
                         call["sampling_ratio"], call["aligned"])
    rois = call["rois"]
    levels = call["roi_levels"]
    if levels is None:
        levels = torch.zeros(rois.shape[0], dtype=torch.int64)
    meta, _ = align_table(rois, levels, spec, int(shapes[0][0]), len(shapes))
    points = [int((meta[:, ALIGN_RATIOS + 2 * g] * meta[:, ALIGN_RATIOS + 2 * g + 1]).sum()) * s * s
              for g, s in enumerate(spec.sampled_grids)]
    return _bilinear_count(points, spec.pyramid, spec.fine_grid, spec.sampled_grids, spec.mode,
                           rois.shape[0]) * int(shapes[0][1])


def call_flops(call: dict) -> int:
    """FLOPs of one call, given its arguments by schema name (``features``: shapes)."""
    if call.get("sampling", "cells") == "bilinear":
        return bilinear_flops(call)
    levels = call["roi_levels"]
    if levels is None:
        levels = torch.zeros(call["rois"].shape[0], dtype=torch.int64)
    return cells_flops(call["features"], call["rois"], levels, call["spatial_scales"], call["pyramid"],
                       call["mode"], call.get("projection") or "sppnet")


def estimated_flops(feature_shapes, num_rois: int, pyramid, mode: str, sampling: str = "cells",
                    sampling_ratio: int = 2) -> int:
    """The count of ``num_rois`` RoIs whose windows are all ESTIMATE_WINDOW cells square
    (bilinear with a fixed sampling_ratio: exact, the lattice does not depend on them)."""
    if sampling == "bilinear":
        spec = PoolSpec.make(pyramid, mode, "sppnet", [1.0], "bilinear", sampling_ratio)
        ratios = [sampling_ratio or max(-(-ESTIMATE_WINDOW // s), 1) for s in spec.sampled_grids]
        points = [num_rois * (r * s) ** 2 for r, s in zip(ratios, spec.sampled_grids)]
        return _bilinear_count(points, spec.pyramid, spec.fine_grid, spec.sampled_grids, spec.mode,
                               num_rois) * int(feature_shapes[0][1])
    lo = torch.zeros(1, dtype=torch.int64)
    hi = lo + ESTIMATE_WINDOW - 1
    per_bin = 1 if Mode.parse("mode", mode) == Mode.MAX else 0
    per_roi = sum(int(_cells_over_bins(lo, hi, n)) ** 2 - per_bin * n * n for n in pyramid)
    return per_roi * num_rois * int(feature_shapes[0][1])


# ---------------------------------------------------------------- the jit handle
def _bind(args, kwargs) -> dict:
    """A call's arguments by schema name; tensors of ``features`` become their shapes."""
    call = dict(zip(_arg_names(), args), **kwargs)
    call["features"] = [tuple(f.shape) for f in call["features"]]
    return call


class _Recorder(TorchFunctionMode):
    """Records the arguments of every ``spp_roi_pool`` call made under it."""

    def __init__(self):
        super().__init__()
        self.calls: list[dict] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _op():
            self.calls.append(_bind(args, kwargs))
        return func(*args, **kwargs)


def _calling_analysis():
    """The mmengine ``JitModelAnalysis`` whose ``_analyze`` called the handle, or None."""
    from mmengine.analysis.jit_analysis import JitModelAnalysis

    frame = sys._getframe(1)
    for _ in range(6):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, JitModelAnalysis):
            return owner
        frame = frame.f_back
    return None


def recorded_calls(analysis) -> list[dict]:
    """The ``spp_roi_pool`` calls of ``analysis``'s model on its inputs, in order (the
    model runs once per analysis, under no_grad; its buffers are restored)."""
    if analysis in _RECORDS:
        return _RECORDS[analysis]
    model, inputs = analysis._model, analysis._inputs
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    recorder = _Recorder()
    try:
        with torch.no_grad(), recorder:
            model(*(inputs if isinstance(inputs, tuple) else (inputs,)))
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    _RECORDS[analysis] = recorder.calls
    return recorder.calls


def _constant(value):
    """A traced constant (or list of constants) as a Python value; None if not constant."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        items = [_constant(v) for v in node.inputs()]
        return None if any(i is None for i in items) else items
    return None


def _node_index(outputs) -> int:
    """Which ``spp_roi_pool`` node of its graph, in order, produced ``outputs``."""
    block = outputs[0].node().owningBlock()
    while block.owningNode() is not None:
        block = block.owningNode().owningBlock()
    uniques = [next(n.outputs()).unique() for n in block.findAllNodes(OP_NAME)]
    return uniques.index(outputs[0].unique())


def spp_roi_pool_flop_jit(inputs: list, outputs: list) -> int:
    """MMEngine FLOP handle of ``spp_triton::spp_roi_pool`` (see the module docstring for
    what is counted and where the windows come from)."""
    from mmengine.analysis.jit_handles import get_shape

    node = dict(zip(_arg_names(), inputs))
    shapes = [tuple(get_shape(f)) for f in node["features"].node().inputs()]
    num_rois = get_shape(node["rois"])[0]
    pyramid, mode = _constant(node["pyramid"]), _constant(node["mode"])
    sampling = _constant(node["sampling"]) if "sampling" in node else "cells"
    ratio = _constant(node["sampling_ratio"]) if "sampling_ratio" in node else 2
    analysis = _calling_analysis()
    calls = recorded_calls(analysis) if analysis is not None else []
    index = _node_index(outputs)
    if index < len(calls):
        call = calls[index]
        if (call["features"], call["rois"].shape[0], list(call["pyramid"]), call["mode"]) == \
                (shapes, num_rois, list(pyramid), mode):
            return call_flops(call)
    warnings.warn(f"{OP_NAME}: the RoIs' windows are unknown here (no MMEngine analysis among the callers, or "
                  f"its model's calls do not match the traced graph); estimating each of the {num_rois} "
                  f"windows as {ESTIMATE_WINDOW} x {ESTIMATE_WINDOW} cells", stacklevel=2)
    return estimated_flops(shapes, num_rois, pyramid, mode, sampling, ratio)


def register() -> None:
    """Adds the handles to MMEngine's default FLOP and activation tables (idempotent)."""
    try:
        from mmengine.analysis import complexity_analysis as tables
        from mmengine.analysis.jit_handles import generic_activation_jit

        tables._DEFAULT_SUPPORTED_FLOP_OPS[OP_NAME] = spp_roi_pool_flop_jit
        tables._DEFAULT_SUPPORTED_ACT_OPS[OP_NAME] = generic_activation_jit()
    except (ImportError, AttributeError) as e:  # another mmengine layout: counting only is lost
        warnings.warn(f"mmdet_plugin.engine.flops: could not register the {OP_NAME} FLOP handle with mmengine ({e}); "
                      "its FLOPs count 0 in get_flops")


register()
