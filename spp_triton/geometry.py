"""Argument checks and the shared geometry of spatial-pyramid RoI pooling.

Everything here is plain PyTorch and runs before any kernel. The Triton kernels
recompute the same windows in-kernel with the same float32 operations, so the two
backends agree bit for bit in max mode (see ``roi_windows``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TORCH_ONLY_DTYPES = (torch.float64,)
PROJECTIONS = ("sppnet", "round")
MODES = ("max", "avg")
BACKENDS = ("auto", "triton", "torch")
# |coordinate| bound: beyond 2**24 float32 cannot hold integer pixels, and the
# bound keeps every projected index inside int32 for scales up to 32.
MAX_ABS_COORD = float(2**24)
MAX_SCALE = 32.0


@dataclass(frozen=True)
class PyramidPlan:
    """How a pyramid is computed.

    Attributes:
        pyramid: grid sizes in output order, e.g. (1, 2, 3, 6).
        num_bins: B = sum(n * n).
        fine_grid: G when every entry divides max(pyramid) and the mode is max:
            the kernel reduces the G x G fine bins once, then every level's bins
            are exact unions of fine bins. 0 when levels are pooled directly.
    """

    pyramid: tuple[int, ...]
    num_bins: int
    fine_grid: int

    @staticmethod
    def make(pyramid: Sequence[int], mode: str) -> "PyramidPlan":
        pyramid = tuple(int(n) for n in pyramid)
        fine = max(pyramid)
        nested = mode == "max" and all(fine % n == 0 for n in pyramid)
        return PyramidPlan(pyramid, sum(n * n for n in pyramid), fine if nested else 0)

    def bin_table(self) -> list[tuple[int, int, int]]:
        """(n, row, col) of every output bin, in output order."""
        return [(n, p, q) for n in self.pyramid for p in range(n) for q in range(n)]


def check_pyramid(pyramid: Sequence[int]) -> tuple[int, ...]:
    if isinstance(pyramid, int) or not isinstance(pyramid, Sequence):
        raise TypeError(f"pyramid must be a sequence of ints, got {pyramid!r}")
    if len(pyramid) == 0:
        raise ValueError("pyramid must not be empty")
    for n in pyramid:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"pyramid entries must be ints >= 1, got {tuple(pyramid)!r}")
    return tuple(pyramid)


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def as_feature_list(features) -> list[torch.Tensor]:
    if isinstance(features, torch.Tensor):
        return [features]
    if not isinstance(features, Sequence) or len(features) == 0:
        raise TypeError("features must be a (N, C, H, W) tensor or a non-empty sequence of them")
    feats = list(features)
    for i, f in enumerate(feats):
        if not isinstance(f, torch.Tensor):
            raise TypeError(f"features[{i}] must be a tensor, got {type(f).__name__}")
    return feats


def check_scales(spatial_scales, num_levels: int) -> tuple[float, ...]:
    if isinstance(spatial_scales, (int, float)) and not isinstance(spatial_scales, bool):
        scales = (float(spatial_scales),)
    elif isinstance(spatial_scales, Sequence):
        scales = tuple(float(s) for s in spatial_scales)
    else:
        raise TypeError(f"spatial_scales must be a float or a sequence of floats, got {spatial_scales!r}")
    if len(scales) != num_levels:
        raise ValueError(f"spatial_scales has {len(scales)} entries but features has {num_levels} levels")
    for s in scales:
        if not (math.isfinite(s) and 0.0 < s <= MAX_SCALE):
            raise ValueError(f"spatial_scales must be finite and in (0, {MAX_SCALE}], got {scales}")
    return scales


def check_static(feats: list[torch.Tensor], rois: torch.Tensor, roi_levels, backend: str) -> None:
    """Checks that need no data: shapes, dtypes, devices. Raises TypeError/ValueError."""
    first = feats[0]
    for i, f in enumerate(feats):
        if f.dim() != 4:
            raise ValueError(f"features[{i}] must be 4-D (N, C, H, W), got shape {tuple(f.shape)}")
        if f.shape[0] != first.shape[0] or f.shape[1] != first.shape[1]:
            raise ValueError(
                f"all feature levels must share N and C: features[0] is {tuple(first.shape)}, "
                f"features[{i}] is {tuple(f.shape)}")
        if f.dtype != first.dtype:
            raise TypeError(f"all feature levels must share a dtype: {first.dtype} vs {f.dtype} (features[{i}])")
        if f.device != first.device:
            raise ValueError(f"features[{i}] is on {f.device} but features[0] is on {first.device}")
        if f.shape[2] < 1 or f.shape[3] < 1:
            raise ValueError(f"features[{i}] has an empty spatial size {tuple(f.shape)}")
    allowed = SUPPORTED_DTYPES + (TORCH_ONLY_DTYPES if backend == "torch" else ())
    if first.dtype not in allowed:
        raise TypeError(f"features dtype {first.dtype} is not supported by backend {backend!r}; "
                        f"supported: {allowed}")
    if not isinstance(rois, torch.Tensor):
        raise TypeError(f"rois must be a tensor, got {type(rois).__name__}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must have shape (K, 5) as (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    if not rois.is_floating_point():
        raise TypeError(f"rois must be a floating tensor, got {rois.dtype}")
    if rois.device != first.device:
        raise ValueError(f"rois is on {rois.device} but features are on {first.device}")
    if roi_levels is None:
        if len(feats) > 1:
            raise ValueError(f"roi_levels is required when features has {len(feats)} levels")
        return
    if not isinstance(roi_levels, torch.Tensor):
        raise TypeError(f"roi_levels must be a tensor, got {type(roi_levels).__name__}")
    if roi_levels.dtype.is_floating_point or roi_levels.dtype.is_complex or roi_levels.dtype == torch.bool:
        raise TypeError(f"roi_levels must be an integer tensor, got {roi_levels.dtype}")
    if roi_levels.shape != (rois.shape[0],):
        raise ValueError(f"roi_levels must have shape ({rois.shape[0]},) to match rois, got {tuple(roi_levels.shape)}")
    if roi_levels.device != first.device:
        raise ValueError(f"roi_levels is on {roi_levels.device} but features are on {first.device}")


def check_values(rois: torch.Tensor, roi_levels, num_images: int, num_levels: int) -> None:
    """Checks that read the data (one host-device sync on CUDA)."""
    if rois.shape[0] == 0:
        return
    coords = rois[:, 1:]
    batch = rois[:, 0]
    bad_coord = ~(coords.abs() <= MAX_ABS_COORD)  # also catches NaN
    bad_batch = (batch != batch.floor()) | (batch < 0) | (batch >= num_images) | ~torch.isfinite(batch)
    flags = [bad_coord.any(), bad_batch.any()]
    if roi_levels is not None:
        flags.append(((roi_levels < 0) | (roi_levels >= num_levels)).any())
    found = torch.stack(flags).tolist()  # the one sync
    if found[0]:
        k = int(bad_coord.any(1).nonzero()[0, 0])
        raise ValueError(f"rois coordinates must be finite with |x| <= {MAX_ABS_COORD:.0f}; "
                         f"rois[{k}] = {rois[k].tolist()}")
    if found[1]:
        k = int(bad_batch.nonzero()[0, 0])
        raise ValueError(f"rois[:, 0] must hold integer batch indices in [0, {num_images}); "
                         f"rois[{k}, 0] = {batch[k].item()}")
    if len(found) > 2 and found[2]:
        k = int(((roi_levels < 0) | (roi_levels >= num_levels)).nonzero()[0, 0])
        raise ValueError(f"roi_levels must be in [0, {num_levels}); roi_levels[{k}] = {int(roi_levels[k])}")


def _project(lo_coord: torch.Tensor, hi_coord: torch.Tensor, scale: torch.Tensor, projection: str):
    """Float32 corner projection; the Triton kernels do the same operations in order."""
    if projection == "sppnet":
        lo = torch.floor((lo_coord + 1.0) * scale)
        hi = torch.ceil((hi_coord + 1.0) * scale) - 2.0
    else:
        lo = torch.floor(lo_coord * scale + 0.5)
        hi = torch.floor(hi_coord * scale + 0.5)
    return lo.to(torch.int64), hi.to(torch.int64)


def _collapse_and_clamp(lo: torch.Tensor, hi: torch.Tensor, size: torch.Tensor):
    mid = (lo + hi) >> 1  # floor((lo + hi) / 2), also for negatives
    inverted = lo > hi
    lo = torch.where(inverted, mid, lo)
    hi = torch.where(inverted, mid, hi)
    upper = size - 1
    return lo.clamp(min=0).minimum(upper), hi.clamp(min=0).minimum(upper)


def roi_windows(rois: torch.Tensor, roi_levels: torch.Tensor, scales: torch.Tensor,
                heights: torch.Tensor, widths: torch.Tensor, projection: str):
    """Inclusive feature windows of every RoI on its level.

    Args:
        rois: (K, 5) float32 (batch_index, x1, y1, x2, y2) in input pixels.
        roi_levels: (K,) int64 level of each RoI.
        scales, heights, widths: (L,) float32 / int64 per level.
    Returns:
        (x_lo, x_hi, y_lo, y_hi): four (K,) int64 tensors, 0 <= lo <= hi < size.
    """
    s = scales[roi_levels]
    x_lo, x_hi = _project(rois[:, 1], rois[:, 3], s, projection)
    y_lo, y_hi = _project(rois[:, 2], rois[:, 4], s, projection)
    x_lo, x_hi = _collapse_and_clamp(x_lo, x_hi, widths[roi_levels])
    y_lo, y_hi = _collapse_and_clamp(y_lo, y_hi, heights[roi_levels])
    return x_lo, x_hi, y_lo, y_hi


def bin_bounds(lo: torch.Tensor, hi: torch.Tensor, n: int):
    """Inclusive [start, end] of the n bins over windows [lo, hi] (paper, Appendix A).

    Args:
        lo, hi: (K,) int64. Returns two (K, n) int64 tensors.
    """
    size = (hi - lo + 1)[:, None]
    i = torch.arange(n, device=lo.device)
    start = lo[:, None] + (i * size) // n
    end = lo[:, None] + ((i + 1) * size + n - 1) // n - 1
    return start, end
