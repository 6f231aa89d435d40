"""``spp_roi_pool``: the public entry point. Checks arguments, then calls the operator."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from . import checks
from .registry import resolve_backend
from .geometry import Mode
from .op import spp_roi_pool_op


def spp_roi_pool(features: Union[Tensor, Sequence[Tensor]], rois: Tensor, *,
                 spatial_scales: Union[float, Sequence[float]], pyramid: Sequence[int] = (1, 2, 3, 6),
                 mode: str = "max", projection: Optional[str] = None, sampling: str = "cells",
                 sampling_ratio: int = 2, aligned: bool = True, roi_levels: Optional[Tensor] = None,
                 backend: str = "auto", deterministic: bool = False, check_values: bool = True) -> Tensor:
    """Spatial-pyramid RoI pooling (SPPNet): pool each RoI's window into n x n grids.

    Args:
        features: (N, C, H, W) tensor, or a sequence of L such tensors (e.g. FPN levels)
            with the same N, C and dtype and their own H, W. dtype float32, float16 or
            bfloat16 (float64 too with backend="torch"). NCHW or channels-last (all levels
            alike) are read in place; gradients come back in the same layout.
        rois: (K, 5) floating tensor of (batch_index, x1, y1, x2, y2) in input pixels.
        spatial_scales: 1 / stride of each level: a float, or L floats.
        pyramid: grid sizes n, in output order; default the paper's (1, 2, 3, 6).
        mode: "max" or "avg".
        projection: sampling="cells" only: "sppnet" (paper, Appendix A; the default,
            None) or "round" (Fast R-CNN RoIPool). Refused with sampling="bilinear".
        sampling: "cells" (the paper: bins of whole feature cells) or "bilinear"
            (SPP-Align: the pyramid on RoIAlign's continuous coordinates; see below).
        sampling_ratio: sampling="bilinear" only: samples per bin and axis of the
            sampled grid (r; 0: adaptive, see below).
        aligned: sampling="bilinear" only: shift the window by -0.5 cell (mmcv RoIAlign's
            ``aligned=True``, detectron2's ROIAlignV2); False: no shift, size >= 1 cell.
        roi_levels: (K,) integer tensor, the level each RoI is pooled from; required when L > 1.
        backend: "auto" (Triton for CUDA tensors, the torch backend otherwise), "triton" or
            "torch" (the C++ CPU kernel for CPU tensors, pure PyTorch elsewhere); the table
            is ``spp_triton.registry.BACKENDS``.
        deterministic: bit-identical gradients run after run. Triton: int64 fixed-point
            atomics instead of float32 ones, each term rounded once to a step of at most
            2**(ceil(log2(K B)) - 60) times the largest |gradient| (2**-43 at K B = 10**5;
            details: ``triton_backend.backward``); the torch backward always is on CPU.
        check_values: check coordinates, batch indices and levels (one host-device sync on
            CUDA). Skipped inside torch.compile graphs. Kernels clamp indices either way,
            so unchecked bad values give wrong numbers, never out-of-bounds accesses.

    Returns:
        (K, C, B) tensor in the features' dtype, B = sum(n * n): for each pyramid entry n in
        order, its n x n bins row-major, i.e. ``out[k, c, offset_n + i * n + j]``.

    Semantics of sampling="cells" (all backends agree bit for bit in max mode). With s the
    level's scale, in float32, the window's inclusive feature indices are
    ``lo = floor((x1 + 1) * s), hi = ceil((x2 + 1) * s) - 2`` for "sppnet" and
    ``lo = floor(x1 * s + 0.5), hi = floor(x2 * s + 0.5)`` for "round" (rows alike); if
    lo > hi both become floor((lo + hi) / 2); then both are clamped to [0, W - 1]. Bin i of
    n over h = hi - lo + 1 rows covers rows ``lo + floor(i h / n)`` to
    ``lo + ceil((i + 1) h / n) - 1`` (columns alike): never empty, neighbours may share a
    row. Max: NaN propagates; the gradient goes to the first maximal element of the bin
    in row-major order (NaN counts as maximal; -0.0 equals +0.0). Avg: the mean,
    accumulated in float32; its gradient is spread evenly over the bin.

    Semantics of sampling="bilinear", SPP-Align (all backends agree bit for bit in max
    mode; the rules are ``geometry.align_windows``, ``lattice_ratio``, ``lattice_coords``
    and ``bilinear_axis``). In float32, each operation rounded, with o = 0.5 if aligned
    else 0: ``start = x1 * s - o``, ``size = (x2 * s - o) - start``, and without aligned
    ``size = max(size, 1)`` (rows alike; an inverted RoI keeps its negative size when
    aligned, as in mmcv's CUDA kernel and torchvision). The sampled grids S are
    G = max(pyramid) when every entry n divides G (a nested pyramid, e.g. 1/2/3/6), else
    every entry. Each sampled grid has r samples per bin and axis, ``r = sampling_ratio``
    or, when it is 0, ``max(ceil(size / S), 1)`` per axis (capped at 32768 // S), so its
    lattice has (S r_y) x (S r_x) points; point t of an axis lies at
    ``(start + (t // r) * b) + ((t % r + 0.5) * b) / r`` with ``b = size / S``, the
    operations of mmcv's ``roi_align`` in its order. A sample is 0 if its point lies
    beyond [-1, size] on either axis; otherwise, as in mmcv, the point is clamped (c = 0
    if c <= 0; if int(c) >= size - 1 both neighbours are the last cell), and its value is
    ``((hy hx v1 + hy lx v2) + ly hx v3) + ly lx v4`` over its four neighbouring cells, in
    float32 (float64 for float64 features; float16/bfloat16 are read as float32). Bin
    (p, q) of S holds the points [p r_y, (p + 1) r_y) x [q r_x, (q + 1) r_x); in a nested
    pyramid, bin (p, q) of grid n is the union of the fine bins [p G / n, (p + 1) G / n) x
    (columns alike), so the lattice is sampled once for all grids. Max: the bin's first
    NaN sample, else its first maximal one in row-major order of the lattice (-0.0 equals
    +0.0); a NaN result is a NaN whose payload is not specified. Avg: the sum of the
    bin's samples (float32) / their number. The gradient goes to the four corners of the
    chosen sample (max) or of every sample of the bin / their number (avg), times the
    corner weights.

    Equivalence to mmcv: grid n equals mmcv ``RoIAlign(output_size=n, spatial_scale=s,
    sampling_ratio=r * G / n, pool_mode=mode, aligned=aligned)`` for a nested pyramid
    (grid G exactly; the coarser grids' points are the same, their coordinates computed
    from G's bins may differ by float32 rounding), and ``RoIAlign(n, s, r, ...)`` per grid
    for a non-nested one. Where they differ: mmcv's max drops NaN samples (its
    ``val > maxval`` starts from -FLT_MAX on CUDA, -10000 on CPU, so a bin of samples
    below that gives that constant); mmcv's CPU kernel refuses inverted RoIs when aligned
    and reads element 0 with weight 0 for points outside the map (so a NaN there leaks);
    with sampling_ratio=0 mmcv takes ``ceil(size / n)`` samples per bin of each grid n
    (0 for an empty RoI), ours ``r * G / n`` with r = ``max(ceil(size / G), 1)``: the
    same for grid G, at least as many for the coarser grids. argmax (the op's second
    output) holds the chosen sample's lattice index ``ty * (S r_x) + tx``.
    """
    feats = checks.as_feature_list(features)
    pyramid = checks.check_pyramid(pyramid)
    mode = Mode.parse("mode", mode).label
    sampling, sampling_ratio, aligned, projection = checks.check_sampling(sampling, sampling_ratio, aligned,
                                                                          projection, pyramid)
    scales = checks.check_scales(spatial_scales, len(feats))
    entry = resolve_backend(backend, feats[0].device)
    checks.check_static(feats, rois, roi_levels, entry, pyramid)
    if check_values and not torch.compiler.is_compiling():
        checks.check_values(rois, roi_levels, feats[0].shape[0], len(feats))
    if roi_levels is None:
        roi_levels = torch.zeros(rois.shape[0], dtype=torch.int32, device=rois.device)
    out, _ = spp_roi_pool_op(feats, rois, roi_levels, list(scales), list(pyramid), mode, projection, sampling,
                             sampling_ratio, aligned, entry.name, bool(deterministic))
    return out
