"""``SPPRoIExtractor``: mmdet RoI extractor that pools a spatial pyramid per RoI."""
from __future__ import annotations

import inspect
from typing import Optional, Sequence

import torch
from mmdet.models.roi_heads.base_roi_head import BaseRoIHead
from mmdet.models.roi_heads.roi_extractors.base_roi_extractor import BaseRoIExtractor
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from spp_triton import SpatialPyramidRoIPool

from ...utils.scale_selection import closest_area_level

LEVEL_MAPPINGS = ("fpn", "sppnet")


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
        projection: sampling="cells" only: "sppnet" (paper, Appendix A; the default,
            None) or "round" (Fast R-CNN).
        sampling: "cells" (the paper: whole feature cells) or "bilinear" (SPP-Align: the
            pyramid on RoIAlign's continuous coordinates, ``sampling_ratio`` samples per
            bin and axis of the finest grid, 0 adaptive; ``aligned``: mmcv RoIAlign's
            half-pixel shift). See ``spp_triton.spp_roi_pool``.
        level_mapping: "fpn": mmdet's rule, level = floor(log2(sqrt(wh) / finest_scale)),
            clamped; "sppnet": the paper's scale selection
            (``scale_selection.closest_area_level``): the level on which the RoI's
            window is closest in area to ``target_size`` squared seen at
            ``base_stride`` (224 x 224 at stride 16: 14 x 14 cells). Over the maps of
            several image scales (``MultiScaleSPPNet``) this is the paper's rule itself.
        finest_scale: the "fpn" rule's scale of level 0.
        target_size, base_stride: the "sppnet" rule's target window side in pixels and
            the stride it is meant at.
        backend: "auto", "triton" or "torch" (see ``spp_triton.spp_roi_pool``).
        roi_layer: ignored if None; accepted so configs derived from mmdet's
            ``SingleRoIExtractor`` can set it to None explicitly.
        roi_scale_factor: every RoI is scaled about its centre by this before pooling
            (its level is chosen before scaling) when ``forward`` is given none. mmdet's
            ``StandardRoIHead`` never passes one, so this is how a config reaches it:
            ``227 / 195`` adds R-CNN's context (16/227 of the crop on each side).

    Returns from forward: (K, C, B) features.
    """

    def __init__(self, out_channels: int, featmap_strides: Sequence[int],
                 pyramid: Sequence[int] = (1, 2, 3, 6), mode: str = "max",
                 projection: Optional[str] = None, level_mapping: str = "fpn", finest_scale: int = 56,
                 target_size: float = 224.0, base_stride: float = 16.0, backend: str = "auto",
                 roi_layer: Optional[dict] = None, sampling: str = "cells", sampling_ratio: int = 2,
                 aligned: bool = True, roi_scale_factor: Optional[float] = None, init_cfg=None) -> None:
        BaseModule.__init__(self, init_cfg=init_cfg)  # the base would build mmcv roi_layers
        _refuse_shared_head()
        if roi_layer is not None:
            raise ValueError("SPPRoIExtractor pools with spp_triton; set roi_layer=None "
                             f"(got {roi_layer!r}) and configure pyramid/mode/projection or "
                             "sampling/sampling_ratio/aligned instead")
        if roi_scale_factor is not None and not roi_scale_factor > 0:
            raise ValueError(f"roi_scale_factor must be positive, got {roi_scale_factor!r}")
        if level_mapping not in LEVEL_MAPPINGS:
            raise ValueError(f"level_mapping must be one of {LEVEL_MAPPINGS}, got {level_mapping!r}")
        self.out_channels = out_channels
        self.featmap_strides = list(featmap_strides)
        self.level_mapping = level_mapping
        self.finest_scale = finest_scale
        self.target_size, self.base_stride = float(target_size), float(base_stride)
        self.roi_scale_factor = roi_scale_factor
        self.roi_layers = None
        self.pool = SpatialPyramidRoIPool(pyramid=pyramid,
                                          spatial_scales=[1.0 / s for s in self.featmap_strides],
                                          mode=mode, projection=projection, backend=backend, sampling=sampling,
                                          sampling_ratio=sampling_ratio, aligned=aligned)

    @property
    def num_bins(self) -> int:
        return self.pool.num_bins

    def map_roi_levels(self, rois: Tensor, num_levels: int) -> Tensor:
        """(K, 5) rois -> (K,) int64 level indices in [0, num_levels)."""
        if self.level_mapping == "sppnet":
            return closest_area_level(rois, self.featmap_strides[:num_levels], self.target_size, self.base_stride)
        w = (rois[:, 3] - rois[:, 1]).clamp(min=0)
        h = (rois[:, 4] - rois[:, 2]).clamp(min=0)
        levels = torch.floor(torch.log2(torch.sqrt(w * h) / self.finest_scale + 1e-6))
        return levels.clamp(min=0, max=num_levels - 1).long()

    def forward(self, feats: Sequence[Tensor], rois: Tensor,
                roi_scale_factor: Optional[float] = None) -> Tensor:
        """Pools every RoI from its level into the spatial pyramid.

        Args:
            feats: the neck's levels, (N, C, H_l, W_l) each, finest first; only the
                first ``len(featmap_strides)`` are used.
            rois: (K, 5) (batch_index, x1, y1, x2, y2) in input pixels (``bbox2roi``).
            roi_scale_factor: if given (else the constructor's), every RoI is scaled
                about its centre by it before pooling (as in mmdet's
                ``SingleRoIExtractor``); the level is chosen from the RoI before
                scaling, as mmdet does.

        Returns:
            (K, C, B) in the features' dtype, B = sum(n * n for n in pyramid): for each
            grid n, its n x n bins row-major. One ``spp_roi_pool`` call for all levels.
        """
        feats = list(feats[:self.num_inputs])
        levels = self.map_roi_levels(rois, len(feats)) if len(feats) > 1 else None
        if roi_scale_factor is None:
            roi_scale_factor = self.roi_scale_factor
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        # Every level gets a (possibly all-zero) gradient from the op's backward, so DDP
        # with find_unused_parameters=False sees all FPN parameters used.
        return self.pool(feats, rois, levels)

    def extra_repr(self) -> str:
        return (f"featmap_strides={self.featmap_strides}, level_mapping={self.level_mapping!r}, "
                f"finest_scale={self.finest_scale}, target_size={self.target_size}, base_stride={self.base_stride}"
                + (f", roi_scale_factor={self.roi_scale_factor}" if self.roi_scale_factor is not None else ""))


SHARED_HEAD_MESSAGE = (
    "SPPRoIExtractor cannot feed roi_head.shared_head: it pools each RoI into a (K, C, B) "
    "pyramid vector, and a shared conv head (e.g. mmdet's C4 ResLayer) needs (K, C, h, w) maps. "
    "For SPP after a shared head, keep a map extractor (SingleRoIExtractor with RoIAlign or "
    "RoIPool, e.g. output_size=14) and set bbox_head=dict(type='SPPBBoxHead', "
    "in_channels=<the shared head's output channels>): SPPBBoxHead pools each RoI's map with the "
    "whole-map pyramid (the paper's SPP layer on the last conv layer). Or drop shared_head and "
    "pool the backbone's map directly, as configs/sppnet/sppnet_r50-c4_1scale_voc0712.py does.")


def _refuse_shared_head() -> None:
    """Raises when this extractor is being built inside an mmdet RoI head that has a
    shared head. mmdet builds the shared head first, then the extractor from the RoI
    head's ``init_bbox_head``; a child module has no other way to see its parent while
    the model is built, so the RoI head is looked up among the few calling frames."""
    frame = inspect.currentframe()
    try:
        for _ in range(8):  # SPPRoIExtractor.__init__, build_from_cfg, Registry.build, init_bbox_head
            frame = frame.f_back
            if frame is None:
                return
            owner = frame.f_locals.get("self")
            if isinstance(owner, BaseRoIHead):
                if owner.with_shared_head:
                    raise ValueError(SHARED_HEAD_MESSAGE)
                return
    finally:
        del frame  # frames in locals keep their callers alive
