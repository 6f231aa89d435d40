"""Argument checks of ``spp_roi_pool``: plain PyTorch, run before any kernel.

Each error names the argument and says what was expected. ``check_static`` reads
shapes, dtypes and devices only; ``check_values`` reads the data (one host-device sync
on CUDA, skipped with ``check_values=False`` and inside compiled graphs).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .registry import Backend
from .geometry import MAX_ABS_COORD, MAX_LATTICE, MAX_SCALE, Projection, Sampling


def check_pyramid(pyramid: Sequence[int]) -> tuple[int, ...]:
    if isinstance(pyramid, int) or not isinstance(pyramid, Sequence):
        raise TypeError(f"pyramid must be a sequence of ints, got {pyramid!r}")
    if len(pyramid) == 0:
        raise ValueError("pyramid must not be empty")
    for n in pyramid:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"pyramid entries must be ints >= 1, got {tuple(pyramid)!r}")
    return tuple(pyramid)


def check_sampling(sampling, sampling_ratio, aligned, projection, pyramid: tuple[int, ...]):
    """(sampling, sampling_ratio, aligned, projection) as the op takes them: names, an
    int, a bool and "sppnet" when ``projection`` is None. ``projection`` rounds a RoI's
    corners onto whole cells, so it is refused with ``sampling="bilinear"``, whose
    window is continuous; ``sampling_ratio`` and ``aligned`` are bilinear's only."""
    kind = Sampling.parse("sampling", sampling)
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio must be an int (samples per bin and axis; 0: adaptive), "
                        f"got {sampling_ratio!r}")
    if sampling_ratio < 0:
        raise ValueError(f"sampling_ratio must be >= 0 (samples per bin and axis; 0: adaptive), got {sampling_ratio}")
    if sampling_ratio * max(pyramid) > MAX_LATTICE:
        raise ValueError(f"sampling_ratio * max(pyramid) must be <= {MAX_LATTICE} lattice points per axis, got "
                         f"{sampling_ratio} * {max(pyramid)}")
    if not isinstance(aligned, bool):
        raise TypeError(f"aligned must be a bool, got {aligned!r}")
    if kind == Sampling.BILINEAR and projection is not None:
        raise ValueError(f"projection={projection!r} applies to sampling='cells' only: it rounds a RoI's corners "
                         "onto whole feature cells, while sampling='bilinear' pools the continuous window "
                         "(aligned=True: mmcv RoIAlign's half-pixel shift); drop projection")
    proj = Projection.parse("projection", "sppnet" if projection is None else projection)
    return kind.label, sampling_ratio, aligned, proj.label


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


def check_static(feats: list[torch.Tensor], rois: torch.Tensor, roi_levels, backend: Backend,
                 pyramid: tuple[int, ...]) -> None:
    """Checks that need no data: shapes, dtypes, devices, the backend's limits. Raises
    TypeError/ValueError."""
    first = feats[0]
    if backend.max_grid is not None and max(pyramid) > backend.max_grid:
        raise ValueError(f"backend {backend.name!r} takes pyramid entries up to {backend.max_grid}, got "
                         f"{tuple(pyramid)}; use backend='torch' for wider grids")
    if backend.max_levels is not None and len(feats) > backend.max_levels:
        raise ValueError(f"backend {backend.name!r} takes at most {backend.max_levels} feature levels, "
                         f"got {len(feats)}")
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
        if f.shape[2] * f.shape[3] > torch.iinfo(torch.int32).max:
            raise ValueError(f"features[{i}] has {f.shape[2] * f.shape[3]} cells per plane; argmax is "
                             "int32, so at most 2**31 - 1 are supported")
    if first.dtype not in backend.dtypes:
        raise TypeError(f"features dtype {first.dtype} is not supported by backend {backend.name!r}; "
                        f"supported: {backend.dtypes}")
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
