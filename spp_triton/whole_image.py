"""The whole-image SPP layer (paper, section 2): any (H, W) map -> a fixed-length vector.

``spatial_pyramid_pool`` and the ``SpatialPyramidPool`` module pool every map as one
window covering all of it, through the same operator as ``spp_roi_pool`` (same backends,
same bin rule, same gradients): each map is a level, each image of it one RoI. A list of
maps of different sizes, the paper's multi-size training, is therefore one launch.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor, nn

from . import checks
from .functional import spp_roi_pool
from .geometry import Mode
from .registry import check_name


def whole_map_rois(feats: list[Tensor], extent: int = 1) -> tuple[Tensor, Tensor]:
    """One RoI per image and map, covering the map: (L * N, 5) rois and (L * N,) levels,
    map-major, (0, 0, W - extent, H - extent) at scale 1. ``extent=1`` for cells: with
    projection "round", (0, 0, W - 1, H - 1) projects onto exactly [0, W - 1] x
    [0, H - 1]. ``extent=0`` for aligned bilinear sampling: (0, 0, W, H) is the window
    [-0.5, W - 0.5], cell i's centre at i (``extent=1`` without aligned: [0, W - 1]).
    Built on the maps' device without a host sync."""
    n, dev = feats[0].shape[0], feats[0].device
    # Filled on the device (a tensor made from a Python list would be a blocking copy).
    images = torch.arange(n, dtype=torch.float32, device=dev).repeat(len(feats))
    right = torch.cat([torch.full((n,), float(f.shape[3] - extent), device=dev) for f in feats])
    bottom = torch.cat([torch.full((n,), float(f.shape[2] - extent), device=dev) for f in feats])
    zeros = torch.zeros_like(images)
    rois = torch.stack([images, zeros, zeros, right, bottom], 1)
    levels = torch.arange(len(feats), dtype=torch.int32, device=dev).repeat_interleave(n)
    return rois, levels


def spatial_pyramid_pool(features: Union[Tensor, Sequence[Tensor]], *, pyramid: Sequence[int] = (1, 2, 3, 6),
                         mode: str = "max", backend: str = "auto", deterministic: bool = False,
                         sampling: str = "cells", sampling_ratio: int = 2, aligned: bool = True) -> Tensor:
    """Spatial pyramid pooling of whole maps (He et al., section 2.3).

    Args:
        features: (N, C, H, W) tensor, or a sequence of L such maps with the same N, C,
            dtype and device and any H, W each (e.g. the conv5 maps of images of
            different sizes). Any layout; gradients come back in the maps' layout.
        pyramid, mode, backend, deterministic, sampling, sampling_ratio, aligned: as in
            ``spp_triton.spp_roi_pool``. With sampling="bilinear" the window is the whole
            map, [-0.5, W - 0.5] when aligned (cell centres at integers), [0, W - 1]
            otherwise.

    Returns:
        (N, C, B) for a tensor; (L * N, C, B) for a sequence, map-major
        (``out[l * N + n]`` is image n of map l). B = sum(n * n); for each grid n its
        n x n bins row-major.

    Bins follow the paper's Appendix A rule over the whole map: bin i of n over H rows
    covers rows floor(i H / n) to ceil((i + 1) H / n) - 1 (columns alike), so every cell is
    in some bin of every grid, for any size. (Section 2.3's "window ceil(a / n), stride
    floor(a / n)" can miss the last rows, e.g. a = 10, n = 6 covers rows 0-6 only.)
    Max: NaN propagates, gradient to the first maximal element; avg: float32 mean.
    """
    feats = checks.as_feature_list(features)
    for i, f in enumerate(feats):  # before whole_map_rois reads H and W
        if f.dim() != 4:
            raise ValueError(f"features[{i}] must be 4-D (N, C, H, W), got shape {tuple(f.shape)}")
    bilinear = sampling == "bilinear"
    rois, levels = whole_map_rois(feats, extent=0 if bilinear and aligned is True else 1)
    return spp_roi_pool(feats, rois, spatial_scales=[1.0] * len(feats), pyramid=pyramid, mode=mode,
                        projection=None if bilinear else "round", sampling=sampling, sampling_ratio=sampling_ratio,
                        aligned=aligned, roi_levels=levels if len(feats) > 1 else None, backend=backend,
                        deterministic=deterministic, check_values=False)  # the rois are right by construction


class SpatialPyramidPool(nn.Module):
    """The whole-image SPP layer: (N, C, H, W) -> (N, C, B) for any H, W; a list of L maps
    -> (L * N, C, B) in one launch. See ``spatial_pyramid_pool``."""

    def __init__(self, pyramid: Sequence[int] = (1, 2, 3, 6), mode: str = "max", backend: str = "auto",
                 deterministic: bool = False, sampling: str = "cells", sampling_ratio: int = 2, aligned: bool = True):
        super().__init__()
        self.pyramid = checks.check_pyramid(pyramid)
        Mode.parse("mode", mode)
        checks.check_sampling(sampling, sampling_ratio, aligned, None, self.pyramid)
        check_name(backend)
        self.mode, self.backend, self.deterministic = mode, backend, deterministic
        self.sampling, self.sampling_ratio, self.aligned = sampling, sampling_ratio, aligned

    @property
    def num_bins(self) -> int:
        return sum(n * n for n in self.pyramid)

    def forward(self, features: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        return spatial_pyramid_pool(features, pyramid=self.pyramid, mode=self.mode, backend=self.backend,
                                    deterministic=self.deterministic, sampling=self.sampling,
                                    sampling_ratio=self.sampling_ratio, aligned=self.aligned)

    def extra_repr(self) -> str:
        bilinear = f", sampling_ratio={self.sampling_ratio}, aligned={self.aligned}" if self.sampling == "bilinear" \
            else ""
        return (f"pyramid={self.pyramid}, bins={self.num_bins}, mode={self.mode!r}, sampling={self.sampling!r}"
                f"{bilinear}, backend={self.backend!r}, deterministic={self.deterministic}")
