"""``SpatialPyramidRoIPool``: the nn.Module around ``spp_roi_pool``."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import Tensor, nn

from . import checks
from .registry import check_name
from .functional import spp_roi_pool
from .geometry import Mode, Projection


class SpatialPyramidRoIPool(nn.Module):
    """Spatial-pyramid RoI pooling layer (SPPNet). See ``spp_triton.spp_roi_pool``.

    forward(features, rois, roi_levels=None) -> (K, C, B), B = sum(n * n for n in pyramid).
    """

    def __init__(self, pyramid: Sequence[int] = (1, 2, 3, 6),
                 spatial_scales: Union[float, Sequence[float]] = 1.0 / 16, mode: str = "max",
                 projection: str = "sppnet", backend: str = "auto", deterministic: bool = False):
        super().__init__()
        self.pyramid = checks.check_pyramid(pyramid)
        Mode.parse("mode", mode)
        Projection.parse("projection", projection)
        check_name(backend)
        n_levels = 1 if isinstance(spatial_scales, (int, float)) else len(spatial_scales)
        self.spatial_scales = checks.check_scales(spatial_scales, n_levels)
        self.mode, self.projection = mode, projection
        self.backend, self.deterministic = backend, deterministic

    @property
    def num_bins(self) -> int:
        return sum(n * n for n in self.pyramid)

    def forward(self, features, rois: Tensor, roi_levels: Optional[Tensor] = None) -> Tensor:
        return spp_roi_pool(features, rois, spatial_scales=self.spatial_scales, pyramid=self.pyramid,
                            mode=self.mode, projection=self.projection, roi_levels=roi_levels,
                            backend=self.backend, deterministic=self.deterministic)

    def extra_repr(self) -> str:
        return (f"pyramid={self.pyramid}, bins={self.num_bins}, spatial_scales={self.spatial_scales}, "
                f"mode={self.mode!r}, projection={self.projection!r}, backend={self.backend!r}, "
                f"deterministic={self.deterministic}")
