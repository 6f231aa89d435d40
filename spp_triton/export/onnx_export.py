"""ONNX export of ``spp_triton::spp_roi_pool``: cells max mode exact in ONNX Runtime,
SPP-Align (``sampling="bilinear"``) within float32 rounding.

Usage (needs the ``[export]`` extra: onnx, onnxruntime, onnxscript)::

    from spp_triton.export import onnx_export
    onnx_export.export(model, (feats, rois, levels), "model.onnx", dynamic_shapes=...)
    # or, with torch.onnx.export directly:
    torch.onnx.export(model, args, "model.onnx", dynamo=True,
                      custom_translation_table=onnx_export.custom_translation_table())
    onnx_export.check_inputs(session, feed)  # errors naming the input, before session.run

This module imports onnxscript at the top: import it only when exporting (``import
spp_triton`` does not import it).

How the op becomes standard ONNX (``_translate``), per feature level l:

1. The level's RoIs: ``NonZero(levels == l)`` and ``Gather`` (levels clamped into
   [0, L) as the backends do; skipped when L == 1).
2. Their windows with ``geometry.roi_windows``'s rules, operation for operation: the
   float32 projection ("sppnet" or "round"), the cast to int64, the collapse of
   inverted windows to floor((lo + hi) / 2), the clamp to [0, size - 1] with the size
   read from the map's dynamic shape.
3. Every bin's inclusive bounds with ``geometry.bin_bounds``'s integer rule
   (``lo + floor(i h / n)`` to ``lo + ceil((i + 1) h / n) - 1``), for all grids at once.
4. One ``MaxRoiPool(pooled_shape=(1, 1), spatial_scale=1)`` over K_l * B boxes, one
   box per bin, whose corners are those integer bounds (exact in float32). A 1 x 1
   pool covers exactly its box, so the bins are ours for every grid and window size;
   asking ``MaxRoiPool`` for an n x n grid instead would use its own float32 bin rule
   (``floor(i * float(h) / n)``), which differs from ours for some n and h (e.g. n = 7).
5. The pooled (K_l * B, C, 1, 1) become (K_l, B, C); the levels are concatenated,
   scattered back into RoI order (``ScatterND``) and transposed to (K, C, B).

Three behaviours of ONNX Runtime's CPU ``MaxRoiPool`` (1.32, checked in
``tests/test_export.py``) are corrected so that the result is our op's:

* Ties: it keeps the *last* maximal element in row-major order (``std::max(x, y)``
  with the new element first), ours the first; the values differ only for +0.0 vs
  -0.0. The map is fed flipped in H and W (boxes mirrored), so its last is our first.
* NaN: it drops a NaN unless the NaN is the last element visited; ours propagates.
* All -inf: it starts from -FLT_MAX, so a bin of -inf gives -FLT_MAX; ours -inf.
  Both are fixed by pooling an indicator map (2 at NaN, 0 at -inf, 1 elsewhere) over
  the same boxes and turning its bin maximum into NaN / -inf / the value. That second
  pool would about double the graph's time, so it runs only where needed: each level
  wraps it in an ONNX ``If`` (``_nonfinite_bins``) whose condition is that the map's
  sum (one ``ReduceSum``, O(N C H W)) is NaN or +-inf. A NaN or a -inf anywhere makes
  the sum non-finite in any summation order, so the test never misses one; a +inf, or
  finite values whose sum overflows float32, take the pass needlessly (still exact).
  Cost: on finite maps, one ReduceSum per level over ``assume_finite=True``; on a level
  holding a NaN or a -inf, the second pool (measured: README, "Deploy").
  ``assume_finite=True`` drops the test and the pass, for models whose features hold
  no NaN and no -inf (then it changes nothing).

Exactness: the ONNX Runtime output equals the PyTorch op's bit for bit, +-0.0, +-inf
and -FLT_MAX included (float32; float16 / bfloat16 features are pooled in float32,
exact for a max), with one exception: where the op returns a NaN (the bin's first NaN,
its payload and sign), the graph returns a NaN too, but with the payload and sign
ONNX Runtime's arithmetic gives it.

``sampling="bilinear"`` (``_align_level``), per level: avg mode is one ONNX
``RoiAlign(mode="avg")`` per grid, ``coordinate_transformation_mode`` set explicitly
("half_pixel" for aligned, "output_half_pixel" otherwise; ORT's default contradicts the
spec, onnx/onnx#4487) and ``sampling_ratio = r * G / n`` for grid n of a nested pyramid
(r for a non-nested one): the op's samples, each coordinate computed from grid n's bins
(within float32 rounding of the lattice's). Max mode cannot use ``RoiAlign``: its max is
the largest of each sample's four weighted corners, not of the samples (onnx/onnx#4764).
The lattice is built with standard ops instead (``_sample_lattice``: the window, the
lattice coordinates and mmcv's bilinear rule with the op's float32 operations; four
``Gather`` of corner rows; ``((w1 v1 + w2 v2) + w3 v3) + w4 v4``), reduced per bin with
``ReduceMax`` (a NaN sample makes the bin NaN: an ``IsNaN`` pass, dropped with
``assume_finite=True``) and for a nested pyramid's coarser grids once more over the fine
bins. Measured in ``tests/test_export.py``: within float32 rounding of the op (max mode
bit-exact on the cases tested).

Not exported (``OnnxExportError`` at export, naming the option): cells ``mode="avg"`` (a
float32 sum depends on its order, and no standard ONNX op sums in ours, so the result
could not be exact), ``sampling_ratio=0`` with bilinear sampling (its lattice has a size
per RoI), float64 features (ONNX Runtime's ``MaxRoiPool`` is float32 only).
The op's second output (argmax, for the backward) is emitted as an empty (0,) int32
tensor: inference does not use it, and a graph that did would fail on its shape rather
than compute with wrong indices.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import torch
from onnx import TensorProto
from onnxscript import FLOAT, ir, script
from onnxscript import opset18 as op

from ..geometry import Mode, PoolSpec, Projection

_POOLED_IN_FLOAT32 = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16)


class OnnxExportError(ValueError):
    """An option of ``spp_roi_pool`` that has no exact ONNX translation."""


def custom_translation_table(assume_finite: bool = False) -> dict[Callable, Callable]:
    """``{torch.ops.spp_triton.spp_roi_pool.default: translation}`` for
    ``torch.onnx.export(..., dynamo=True, custom_translation_table=...)``.

    Args:
        assume_finite: leave out the run-time test and the second pool that make NaN
            and all -inf bins exact (see the module docstring); then a bin's NaN may be
            dropped and a bin of -inf gives -3.4028235e38. Default False: exact for every
            input, the second pool running only on levels that hold a NaN or an inf.
    """
    def translation(features, rois, roi_levels, spatial_scales, pyramid, mode, projection, sampling,
                    sampling_ratio, aligned, backend, deterministic):
        return _translate(features, rois, roi_levels, spatial_scales, pyramid, mode, projection, sampling,
                          sampling_ratio, aligned, assume_finite)

    return {torch.ops.spp_triton.spp_roi_pool.default: translation}


def export(model: torch.nn.Module, args: tuple, path: str | os.PathLike | None = None, *,
           dynamic_shapes: Any = None, assume_finite: bool = False, **kwargs):
    """``torch.onnx.export(model, args, path, dynamo=True)`` with this module's translation.

    Args:
        model, args, dynamic_shapes: as for ``torch.export.export`` (e.g. a
            ``torch.export.Dim`` on the RoIs' first axis for a dynamic K).
        path: where to write the .onnx file; None writes nothing.
        assume_finite: see ``custom_translation_table``.
        kwargs: further ``torch.onnx.export`` keywords (``input_names``, ``output_names``...).
    Returns:
        The ``torch.onnx.ONNXProgram`` (``.model_proto`` holds the graph).
    Raises:
        OnnxExportError: the model uses an option without an exact translation.
    """
    kwargs.setdefault("external_data", False)  # one self-contained file
    return torch.onnx.export(model, args, path, dynamo=True, dynamic_shapes=dynamic_shapes,
                             custom_translation_table=custom_translation_table(assume_finite), **kwargs)


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def check_inputs(session, feed: dict) -> None:
    """Checks ``feed`` ({input name: numpy array}) against an ONNX Runtime session's
    inputs before ``session.run``: ValueError naming the input on a missing or unknown
    name, a wrong rank, a wrong static size or a wrong dtype. ONNX Runtime checks ranks
    and sizes itself, but its dtype error does not say which input is wrong.
    """
    expected = {i.name: i for i in session.get_inputs()}
    missing, unknown = sorted(set(expected) - set(feed)), sorted(set(feed) - set(expected))
    if missing or unknown:
        raise ValueError(f"ONNX inputs: missing {missing}, unknown {unknown}; the model takes {list(expected)}")
    for name, value in feed.items():
        spec, value = expected[name], np.asarray(value)
        if value.ndim != len(spec.shape):
            raise ValueError(f"ONNX input {name!r} must have rank {len(spec.shape)} (shape {spec.shape}), "
                             f"got shape {value.shape}")
        for axis, (want, got) in enumerate(zip(spec.shape, value.shape)):
            if isinstance(want, int) and want != got:
                raise ValueError(f"ONNX input {name!r} must have size {want} on axis {axis} "
                                 f"(shape {spec.shape}), got shape {value.shape}")
        want = _ORT_TYPES.get(spec.type)
        if want is not None and value.dtype != want:
            raise ValueError(f"ONNX input {name!r} must be {np.dtype(want).name}, got {value.dtype}")


def _const(values, dtype) -> Any:
    return op.Constant(value=ir.tensor(np.asarray(values, dtype=dtype)))


def _translate(features: Sequence, rois, roi_levels, spatial_scales: Sequence[float], pyramid: Sequence[int],
               mode: str, projection: str, sampling: str, sampling_ratio: int, aligned: bool, assume_finite: bool):
    """The ONNX graph of the op; returns (out (K, C, B), empty (0,) int32)."""
    spec = PoolSpec.make(pyramid, mode, projection, spatial_scales, sampling, sampling_ratio, aligned)
    if spec.bilinear and spec.sampling_ratio == 0:
        raise OnnxExportError(
            "spp_roi_pool sampling='bilinear' with sampling_ratio=0 (adaptive) has no ONNX translation: its "
            "lattice has a size per RoI, and ONNX's RoiAlign adapts per grid, not on one lattice; export with "
            "a fixed sampling_ratio (e.g. 2)")
    if not spec.bilinear and spec.mode != Mode.MAX:
        raise OnnxExportError(
            f"spp_roi_pool mode={mode!r} has no exact ONNX translation (a float32 sum depends on its "
            "order, and no standard ONNX op sums in the order of the PyTorch kernels); export with "
            "mode='max'")
    dtype = features[0].dtype
    if dtype not in _POOLED_IN_FLOAT32:
        raise OnnxExportError(f"spp_roi_pool features of dtype {dtype} cannot be exported exactly: "
                              "ONNX Runtime's MaxRoiPool (and this translation's bilinear sampling) is float32 "
                              "only; use float32, float16 or bfloat16 features")
    rois = op.Cast(rois, to=ir.DataType.FLOAT)  # the backends project in float32 too
    num_levels = len(features)
    if num_levels > 1:  # the backends clamp levels into range (window_table)
        levels = op.Clip(op.Cast(roi_levels, to=ir.DataType.INT64), _const(0, np.int64),
                         _const(num_levels - 1, np.int64))
    pieces, order = [], []
    for lvl, (feat, scale) in enumerate(zip(features, spatial_scales)):
        if dtype != ir.DataType.FLOAT:
            feat = op.Cast(feat, to=ir.DataType.FLOAT)  # exact both ways for a max
        if num_levels > 1:
            idx = op.Reshape(op.NonZero(op.Equal(levels, _const(lvl, np.int64))), _const([-1], np.int64))
            level_rois = op.Gather(rois, idx, axis=0)
            order.append(idx)
        else:
            level_rois = rois
        if spec.bilinear:
            pieces.append(_align_level(feat, level_rois, float(scale), spec, assume_finite))
        else:
            pieces.append(_pool_level(feat, level_rois, float(scale), pyramid, spec.projection, assume_finite))
    if num_levels > 1:
        pooled = op.Concat(*pieces, axis=0)  # (K, B, C), level by level
        zeros = op.ConstantOfShape(op.Shape(pooled), value=ir.tensor(np.zeros(1, np.float32)))
        pooled = op.ScatterND(zeros, op.Unsqueeze(op.Concat(*order, axis=0), _const([1], np.int64)), pooled)
    else:
        pooled = pieces[0]
    out = op.Transpose(pooled, perm=[0, 2, 1])
    if dtype != ir.DataType.FLOAT:
        out = op.Cast(out, to=dtype)
    return out, _const(np.zeros(0, np.int32), np.int32)


def _pool_level(feat, rois, scale: float, pyramid: Sequence[int], proj: Projection, assume_finite: bool):
    """(K_l, 5) float32 RoIs on one (N, C, H, W) float32 map -> (K_l, B, C) bin maxima."""
    batch, x1, y1, x2, y2 = op.Split(rois, axis=1, num_outputs=5)  # (K_l, 1) each
    s = _const(scale, np.float32)
    height = op.Shape(feat, start=2, end=3)
    width = op.Shape(feat, start=3, end=4)
    x_lo, x_hi = _window(x1, x2, s, width, proj)
    y_lo, y_hi = _window(y1, y2, s, height, proj)
    # Every bin in output order: grid n, then row i, then column j (row-major).
    n_b = np.array([n for n in pyramid for _ in range(n * n)], np.int64)
    i_b = np.array([i for n in pyramid for i in range(n) for _ in range(n)], np.int64)
    j_b = np.array([j for n in pyramid for _ in range(n) for j in range(n)], np.int64)
    xs, xe = _bins(x_lo, x_hi, i=j_b, n=n_b)  # (K_l, B) inclusive column bounds
    ys, ye = _bins(y_lo, y_hi, i=i_b, n=n_b)
    # Mirrored boxes on the map flipped in H and W (ties: see the module docstring).
    one = _const(1, np.int64)
    last_x, last_y = op.Sub(width, one), op.Sub(height, one)
    xs, xe = op.Sub(last_x, xe), op.Sub(last_x, xs)
    ys, ye = op.Sub(last_y, ye), op.Sub(last_y, ys)
    num_bins = len(n_b)
    corners = [op.Cast(v, to=ir.DataType.FLOAT) for v in (xs, ys, xe, ye)]  # integers < 2**24: exact
    batch = op.Expand(batch, op.Shape(xs))
    boxes = op.Reshape(op.Concat(*[op.Unsqueeze(v, _const([2], np.int64)) for v in [batch, *corners]], axis=2),
                       _const([-1, 5], np.int64))  # (K_l * B, 5)
    flipped = op.Slice(feat, _const([-1, -1], np.int64), _const([np.iinfo(np.int64).min] * 2, np.int64),
                       _const([2, 3], np.int64), _const([-1, -1], np.int64))
    pooled = op.MaxRoiPool(flipped, boxes, pooled_shape=[1, 1], spatial_scale=1.0)  # (K_l * B, C, 1, 1)
    if not assume_finite:
        pooled = _nonfinite_bins(pooled, flipped, boxes)
    channels = op.Shape(feat, start=1, end=2)
    rows = op.Shape(rois, start=0, end=1)
    return op.Reshape(pooled, op.Concat(rows, _const([num_bins], np.int64), channels, axis=0))


@script(default_opset=op)
def _nonfinite_bins(pooled: FLOAT[...], flipped: FLOAT[...], boxes: FLOAT[...]) -> FLOAT[...]:
    """Makes NaN and all -inf bins of ``pooled`` (``MaxRoiPool(flipped, boxes)``) exact.

    An ONNX function holding one ``If`` (onnxscript compiles the Python ``if`` on a
    tensor into it; torch.onnx's optimizer inlines the function into the graph): the
    second pool runs only when the map's sum is NaN or +-inf; otherwise the bins are
    already exact and pass through unchanged.
    """
    # A NaN or a -inf anywhere makes the sum NaN or -inf, whatever the summation order
    # (a non-finite partial sum stays non-finite); a +inf or a sum overflowing float32
    # run the pass needlessly, which is still exact. One read of the map, no temporaries.
    total = op.ReduceSum(flipped, keepdims=0)
    if op.Or(op.IsNaN(total), op.IsInf(total)):
        # 2 where NaN, 0 where -inf, 1 elsewhere: its bin maximum m says which rule applies.
        indicator = op.Add(op.Cast(op.IsNaN(flipped), to=TensorProto.FLOAT),
                           op.Cast(op.Not(op.IsInf(flipped, detect_positive=0)), to=TensorProto.FLOAT))
        m = op.MaxRoiPool(indicator, boxes, pooled_shape=[1, 1], spatial_scale=1.0)
        # pooled - sqrt(1 - m) / m: minus +0 at m = 1 (keeps every value, -0.0 too),
        # -FLT_MAX - inf = -inf at m = 0, NaN at m = 2. Arithmetic, not Equal/Where:
        # those cost ORT several times more on (K * B * C) tensors.
        exact = op.Sub(pooled, op.Div(op.Sqrt(op.Sub(op.Constant(value_float=1.0), m)), m))
    else:
        exact = op.Identity(pooled)
    return exact


def _window(lo_coord, hi_coord, s, size, proj: Projection):
    """``geometry._project`` then ``_collapse_and_clamp``: the same float32 operations in
    the same order, then int64. (K_l, 1) float32 corners -> (K_l, 1) int64 lo, hi."""
    if proj == Projection.SPPNET:
        lo = op.Floor(op.Mul(op.Add(lo_coord, _const(1.0, np.float32)), s))
        hi = op.Sub(op.Ceil(op.Mul(op.Add(hi_coord, _const(1.0, np.float32)), s)), _const(2.0, np.float32))
    else:
        lo = op.Floor(op.Add(op.Mul(lo_coord, s), _const(0.5, np.float32)))
        hi = op.Floor(op.Add(op.Mul(hi_coord, s), _const(0.5, np.float32)))
    lo, hi = op.Cast(lo, to=ir.DataType.INT64), op.Cast(hi, to=ir.DataType.INT64)
    total = op.Add(lo, hi)
    # floor(total / 2) for negative totals too: Mod(fmod=0) takes the divisor's sign,
    # so total - Mod(total, 2) is even and integer Div is exact on it.
    two = _const(2, np.int64)
    mid = op.Div(op.Sub(total, op.Mod(total, two)), two)
    inverted = op.Greater(lo, hi)
    lo, hi = op.Where(inverted, mid, lo), op.Where(inverted, mid, hi)
    zero, upper = _const(0, np.int64), op.Sub(size, _const(1, np.int64))
    return op.Min(op.Max(lo, zero), upper), op.Min(op.Max(hi, zero), upper)


def _bins(lo, hi, i: np.ndarray, n: np.ndarray):
    """``geometry.bin_bounds`` for every bin at once: (K_l, 1) int64 windows and (B,)
    bin indices i and grids n -> (K_l, B) int64 inclusive [start, end]. The numerators
    are >= 0, so ONNX's truncating integer Div is the floor."""
    size = op.Add(op.Sub(hi, lo), _const(1, np.int64))
    n_c = _const(n, np.int64)
    start = op.Add(lo, op.Div(op.Mul(_const(i, np.int64), size), n_c))
    stop = op.Div(op.Add(op.Mul(_const(i + 1, np.int64), size), _const(n - 1, np.int64)), n_c)
    return start, op.Sub(op.Add(lo, stop), _const(1, np.int64))


# ---------------------------------------------------------------- sampling="bilinear"
def _align_level(feat, rois, scale: float, spec: PoolSpec, assume_finite: bool):
    """(K_l, 5) float32 RoIs on one (N, C, H, W) float32 map -> (K_l, B, C), SPP-Align.

    avg: one ONNX ``RoiAlign`` per grid (``coordinate_transformation_mode`` set explicitly:
    ORT's default contradicts the spec, onnx/onnx#4487), sampling ``r * G / n`` per bin of
    a nested pyramid's grid n, r of a non-nested one: the op's samples, each coordinate
    within float32 rounding. max: ONNX's ``RoiAlign`` max is not a max over samples (it
    takes the largest of the four weighted corners, onnx/onnx#4764), so the lattice is
    built with standard ops (``_sample_lattice``) and reduced with ``ReduceMax``.
    """
    if spec.mode == Mode.AVG:
        batch = op.Cast(op.Reshape(op.Slice(rois, _const([0], np.int64), _const([1], np.int64),
                                            _const([1], np.int64)), _const([-1], np.int64)), to=ir.DataType.INT64)
        boxes = op.Slice(rois, _const([1], np.int64), _const([5], np.int64), _const([1], np.int64))
        g = spec.fine_grid
        parts = []
        for n in spec.pyramid:
            pooled = op.RoiAlign(feat, boxes, batch, coordinate_transformation_mode=(
                "half_pixel" if spec.aligned else "output_half_pixel"), mode="avg", output_height=n,
                output_width=n, sampling_ratio=spec.sampling_ratio * (g // n if g else 1), spatial_scale=scale)
            shape = op.Concat(op.Shape(pooled, start=0, end=2), _const([n * n], np.int64), axis=0)
            parts.append(op.Transpose(op.Reshape(pooled, shape), perm=[0, 2, 1]))  # (K_l, n * n, C)
        return op.Concat(*parts, axis=1)
    parts = []
    for s in spec.sampled_grids:  # G once (a nested pyramid), or every grid in order
        fine = _sample_lattice(feat, rois, scale, spec, s, assume_finite)  # (K_l, S, S, C)
        for n in (spec.pyramid if spec.fine_grid else (s,)):
            grid = fine
            if n != s:  # an exact union of fine bins
                f = s // n
                grid = _reduce_max(op.Reshape(fine, op.Concat(op.Shape(fine, start=0, end=1),
                                                              _const([n, f, n, f], np.int64),
                                                              op.Shape(fine, start=3, end=4), axis=0)),
                                   [2, 4], assume_finite)
            parts.append(op.Reshape(grid, op.Concat(op.Shape(grid, start=0, end=1), _const([n * n], np.int64),
                                                    op.Shape(grid, start=3, end=4), axis=0)))
    return op.Concat(*parts, axis=1)


def _reduce_max(x, axes: list[int], assume_finite: bool):
    """ReduceMax over ``axes``; a NaN anywhere gives NaN (ORT's ReduceMax may drop it)."""
    top = op.ReduceMax(x, _const(axes, np.int64), keepdims=0)
    if assume_finite:
        return top
    has_nan = op.ReduceMax(op.Cast(op.IsNaN(x), to=ir.DataType.FLOAT), _const(axes, np.int64), keepdims=0)
    return op.Where(op.Cast(has_nan, to=ir.DataType.BOOL), _const(np.nan, np.float32), top)


def _lattice_axis(start, size, cells, s: int, r: int):
    """``geometry.lattice_coords`` then ``bilinear_axis`` for the (K_l, 1) windows: (K_l, S r)
    (low int64, high int64, w_low, w_high, inside bool), the same float32 operations."""
    t = np.arange(s * r)
    p = _const((t // r).astype(np.float32), np.float32)
    i = _const((t % r).astype(np.float32), np.float32)
    step = op.Div(size, _const(float(s), np.float32))
    coord = op.Add(op.Add(start, op.Mul(p, step)),
                   op.Div(op.Mul(op.Add(i, _const(0.5, np.float32)), step), _const(float(r), np.float32)))
    cells_f = op.Cast(cells, to=ir.DataType.FLOAT)
    inside = op.And(op.GreaterOrEqual(coord, _const(-1.0, np.float32)), op.LessOrEqual(coord, cells_f))
    c = op.Where(op.LessOrEqual(coord, _const(0.0, np.float32)), _const(0.0, np.float32), coord)
    c = op.Min(c, cells_f)  # only outside points exceed it (their values are not used)
    low = op.Cast(c, to=ir.DataType.INT64)  # truncation: c >= 0
    last = op.Sub(cells, _const(1, np.int64))
    edge = op.GreaterOrEqual(low, last)
    low = op.Where(edge, last, low)
    high = op.Where(edge, low, op.Add(low, _const(1, np.int64)))
    c = op.Where(edge, op.Cast(low, to=ir.DataType.FLOAT), c)
    w_high = op.Sub(c, op.Cast(low, to=ir.DataType.FLOAT))
    return low, high, op.Sub(_const(1.0, np.float32), w_high), w_high, inside


def _sample_lattice(feat, rois, scale: float, spec: PoolSpec, s: int, assume_finite: bool):
    """(K_l, S, S, C) bin maxima of grid S's (S r) x (S r) lattice: the four corners of every
    point gathered from the map as (N H W, C) rows, ``((w1 v1 + w2 v2) + w3 v3) + w4 v4``,
    0 outside the map, then ``ReduceMax`` over each bin's r x r samples."""
    r = spec.sampling_ratio
    batch, x1, y1, x2, y2 = op.Split(rois, axis=1, num_outputs=5)  # (K_l, 1) each
    sc = _const(scale, np.float32)
    off = _const(0.5 if spec.aligned else 0.0, np.float32)
    axes = []
    for lo, hi, cells in ((y1, y2, op.Shape(feat, start=2, end=3)), (x1, x2, op.Shape(feat, start=3, end=4))):
        start = op.Sub(op.Mul(lo, sc), off)
        size = op.Sub(op.Sub(op.Mul(hi, sc), off), start)
        if not spec.aligned:
            size = op.Max(size, _const(1.0, np.float32))
        axes.append(_lattice_axis(start, size, cells, s, r))
    (yl, yh, hy, ly, iny), (xl, xh, hx, lx, inx) = axes
    height, width = op.Shape(feat, start=2, end=3), op.Shape(feat, start=3, end=4)
    rows = op.Reshape(op.Transpose(feat, perm=[0, 2, 3, 1]), op.Concat(_const([-1], np.int64),
                                                                        op.Shape(feat, start=1, end=2), axis=0))
    image = op.Mul(op.Cast(batch, to=ir.DataType.INT64), op.Mul(height, width))  # (K_l, 1)
    inside = op.And(op.Unsqueeze(iny, _const([2], np.int64)), op.Unsqueeze(inx, _const([1], np.int64)))
    val = None
    for y, x, wy, wx in ((yl, xl, hy, hx), (yl, xh, hy, lx), (yh, xl, ly, hx), (yh, xh, ly, lx)):
        cell = op.Add(op.Unsqueeze(op.Add(image, op.Mul(y, width)), _const([2], np.int64)),
                      op.Unsqueeze(x, _const([1], np.int64)))  # (K_l, P, P)
        cell = op.Where(inside, cell, _const(0, np.int64))
        weight = op.Mul(op.Unsqueeze(wy, _const([2], np.int64)), op.Unsqueeze(wx, _const([1], np.int64)))
        term = op.Mul(op.Unsqueeze(weight, _const([3], np.int64)), op.Gather(rows, cell, axis=0))  # (K_l, P, P, C)
        val = term if val is None else op.Add(val, term)
    val = op.Where(op.Unsqueeze(inside, _const([3], np.int64)), val, _const(0.0, np.float32))
    split = op.Reshape(val, op.Concat(op.Shape(val, start=0, end=1), _const([s, r, s, r], np.int64),
                                      op.Shape(val, start=3, end=4), axis=0))
    return _reduce_max(split, [2, 4], assume_finite)
