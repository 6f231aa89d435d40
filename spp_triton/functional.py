"""``spp_roi_pool``: the public entry point. Checks arguments, then calls the operator."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from . import checks
from .registry import resolve_backend
from .geometry import Mode, Projection
from .op import spp_roi_pool_op


def spp_roi_pool(features: Union[Tensor, Sequence[Tensor]], rois: Tensor, *,
                 spatial_scales: Union[float, Sequence[float]], pyramid: Sequence[int] = (1, 2, 3, 6),
                 mode: str = "max", projection: str = "sppnet", roi_levels: Optional[Tensor] = None,
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
        projection: "sppnet" (paper, Appendix A) or "round" (Fast R-CNN RoIPool).
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

    Semantics (all backends agree bit for bit in max mode). With s the level's scale, in
    float32, the window's inclusive feature indices are
    ``lo = floor((x1 + 1) * s), hi = ceil((x2 + 1) * s) - 2`` for "sppnet" and
    ``lo = floor(x1 * s + 0.5), hi = floor(x2 * s + 0.5)`` for "round" (rows alike); if
    lo > hi both become floor((lo + hi) / 2); then both are clamped to [0, W - 1]. Bin i of
    n over h = hi - lo + 1 rows covers rows ``lo + floor(i h / n)`` to
    ``lo + ceil((i + 1) h / n) - 1`` (columns alike): never empty, neighbours may share a
    row. Max: NaN propagates; the gradient goes to the first maximal element of the bin
    in row-major order (NaN counts as maximal; -0.0 equals +0.0). Avg: the mean,
    accumulated in float32; its gradient is spread evenly over the bin.
    """
    feats = checks.as_feature_list(features)
    pyramid = checks.check_pyramid(pyramid)
    mode = Mode.parse("mode", mode).label
    projection = Projection.parse("projection", projection).label
    scales = checks.check_scales(spatial_scales, len(feats))
    entry = resolve_backend(backend, feats[0].device)
    checks.check_static(feats, rois, roi_levels, entry, pyramid)
    if check_values and not torch.compiler.is_compiling():
        checks.check_values(rois, roi_levels, feats[0].shape[0], len(feats))
    if roi_levels is None:
        roi_levels = torch.zeros(rois.shape[0], dtype=torch.int32, device=rois.device)
    out, _ = spp_roi_pool_op(feats, rois, roi_levels, list(scales), list(pyramid), mode,
                             projection, entry.name, bool(deterministic))
    return out
