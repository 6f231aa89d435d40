"""``SPPRoIExtractor``: mmdet RoI extractor that pools a spatial pyramid per RoI."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmdet.models.roi_heads.roi_extractors.base_roi_extractor import BaseRoIExtractor
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from spp_triton import SpatialPyramidRoIPool

LEVEL_MAPPINGS = ("fpn", "sppnet")
# The paper pools each window at the scale where it covers closest to 224 x 224
# pixels; at stride 16 that is a 14 x 14 cell window.
_SPPNET_TARGET_CELLS = (224 / 16) ** 2


@MODELS.register_module()
class SPPRoIExtractor(BaseRoIExtractor):
    """Pools every RoI from one feature level into a (1x1, 2x2, 3x3, 6x6...) pyramid.

    One ``spp_triton.spp_roi_pool`` call covers all levels and all pyramid grids (no
    Python loop over levels, unlike ``SingleRoIExtractor``), and ``roi_layer`` is not
    needed.

    Args:
        out_channels: C of the input feature maps (and of the output).
        featmap_strides: stride of each input level, e.g. [4, 8, 16, 32].
        pyramid: grid sizes n, output bins B = sum(n * n).
        mode: "max" (paper) or "avg".
        projection: "sppnet" (paper, Appendix A) or "round" (Fast R-CNN).
        level_mapping: "fpn": mmdet's rule, level = floor(log2(sqrt(wh) / finest_scale)),
            clamped; "sppnet": the level on which the RoI's window is closest in area
            to a 224 x 224 window seen at stride 16 (14 x 14 cells), the paper's
            multi-scale rule carried from image scales to feature levels.
        finest_scale: the "fpn" rule's scale of level 0.
        backend: "auto", "triton" or "torch" (see ``spp_triton.spp_roi_pool``).
        roi_layer: ignored if None; accepted so configs derived from mmdet's
            ``SingleRoIExtractor`` can set it to None explicitly.

    Returns from forward: (K, C, B) features.
    """

    def __init__(self, out_channels: int, featmap_strides: Sequence[int],
                 pyramid: Sequence[int] = (1, 2, 3, 6), mode: str = "max",
                 projection: str = "sppnet", level_mapping: str = "fpn", finest_scale: int = 56,
                 backend: str = "auto", roi_layer: Optional[dict] = None, init_cfg=None) -> None:
        BaseModule.__init__(self, init_cfg=init_cfg)  # the base would build mmcv roi_layers
        if roi_layer is not None:
            raise ValueError("SPPRoIExtractor pools with spp_triton; set roi_layer=None "
                             f"(got {roi_layer!r}) and configure pyramid/mode/projection instead")
        if level_mapping not in LEVEL_MAPPINGS:
            raise ValueError(f"level_mapping must be one of {LEVEL_MAPPINGS}, got {level_mapping!r}")
        self.out_channels = out_channels
        self.featmap_strides = list(featmap_strides)
        self.level_mapping = level_mapping
        self.finest_scale = finest_scale
        self.roi_layers = None
        self.pool = SpatialPyramidRoIPool(pyramid=pyramid,
                                          spatial_scales=[1.0 / s for s in self.featmap_strides],
                                          mode=mode, projection=projection, backend=backend)

    @property
    def num_bins(self) -> int:
        return self.pool.num_bins

    def map_roi_levels(self, rois: Tensor, num_levels: int) -> Tensor:
        """(K, 5) rois -> (K,) int64 level indices in [0, num_levels)."""
        w = (rois[:, 3] - rois[:, 1]).clamp(min=0)
        h = (rois[:, 4] - rois[:, 2]).clamp(min=0)
        if self.level_mapping == "fpn":
            scale = torch.sqrt(w * h)
            levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
            return levels.clamp(min=0, max=num_levels - 1).long()
        strides = rois.new_tensor(self.featmap_strides[:num_levels])
        cells = (w * h)[:, None] / strides[None, :] ** 2  # (K, L) window areas in cells
        return (cells - _SPPNET_TARGET_CELLS).abs().argmin(dim=1)

    def forward(self, feats: Sequence[Tensor], rois: Tensor,
                roi_scale_factor: Optional[float] = None) -> Tensor:
        """Pools every RoI from its level into the spatial pyramid.

        Args:
            feats: the neck's levels, (N, C, H_l, W_l) each, finest first; only the
                first ``len(featmap_strides)`` are used.
            rois: (K, 5) (batch_index, x1, y1, x2, y2) in input pixels (``bbox2roi``).
            roi_scale_factor: if given, every RoI is scaled about its centre by it
                before pooling (as in mmdet's ``SingleRoIExtractor``); the level is
                chosen from the RoI before scaling, as mmdet does.

        Returns:
            (K, C, B) in the features' dtype, B = sum(n * n for n in pyramid): for each
            grid n, its n x n bins row-major. One ``spp_roi_pool`` call for all levels.
        """
        feats = list(feats[:self.num_inputs])
        levels = self.map_roi_levels(rois, len(feats)) if len(feats) > 1 else None
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        # Every level gets a (possibly all-zero) gradient from the op's backward, so DDP
        # with find_unused_parameters=False sees all FPN parameters used.
        return self.pool(feats, rois, levels)

    def extra_repr(self) -> str:
        return (f"featmap_strides={self.featmap_strides}, level_mapping={self.level_mapping!r}, "
                f"finest_scale={self.finest_scale}")
