"""``SpatialPyramidRoIPool``: the nn.Module around ``spp_roi_pool``."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import Tensor, nn

from . import checks
from .registry import check_name
from .functional import spp_roi_pool
from .geometry import Mode


class SpatialPyramidRoIPool(nn.Module):
    """Spatial-pyramid RoI pooling layer (SPPNet). See ``spp_triton.spp_roi_pool``.

    forward(features, rois, roi_levels=None) -> (K, C, B), B = sum(n * n for n in pyramid).
    """

    def __init__(self, pyramid: Sequence[int] = (1, 2, 3, 6),
                 spatial_scales: Union[float, Sequence[float]] = 1.0 / 16, mode: str = "max",
                 projection: Optional[str] = None, backend: str = "auto", deterministic: bool = False,
                 sampling: str = "cells", sampling_ratio: int = 2, aligned: bool = True):
        super().__init__()
        self.pyramid = checks.check_pyramid(pyramid)
        Mode.parse("mode", mode)
        checks.check_sampling(sampling, sampling_ratio, aligned, projection, self.pyramid)
        check_name(backend)
        n_levels = 1 if isinstance(spatial_scales, (int, float)) else len(spatial_scales)
        self.spatial_scales = checks.check_scales(spatial_scales, n_levels)
        self.mode, self.projection = mode, projection
        self.sampling, self.sampling_ratio, self.aligned = sampling, sampling_ratio, aligned
        self.backend, self.deterministic = backend, deterministic

    @property
    def num_bins(self) -> int:
        return sum(n * n for n in self.pyramid)

    def forward(self, features, rois: Tensor, roi_levels: Optional[Tensor] = None) -> Tensor:
        return spp_roi_pool(features, rois, spatial_scales=self.spatial_scales, pyramid=self.pyramid,
                            mode=self.mode, projection=self.projection, sampling=self.sampling,
                            sampling_ratio=self.sampling_ratio, aligned=self.aligned, roi_levels=roi_levels,
                            backend=self.backend, deterministic=self.deterministic)

    def extra_repr(self) -> str:
        if self.sampling == "bilinear":
            geometry = f"sampling='bilinear', sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        else:
            geometry = f"sampling='cells', projection={self.projection or 'sppnet'!r}"
        return (f"pyramid={self.pyramid}, bins={self.num_bins}, spatial_scales={self.spatial_scales}, "
                f"mode={self.mode!r}, {geometry}, backend={self.backend!r}, deterministic={self.deterministic}")
