"""``SPPBBoxHead``: fc6, fc7, classifier and box regressor over a pyramid vector."""
from __future__ import annotations

from typing import Sequence

from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.registry import MODELS
from spp_triton import SpatialPyramidPool
from torch import Tensor


@MODELS.register_module()
class SPPBBoxHead(ConvFCBBoxHead):
    """The paper's detection head: fc6 takes the C x B spatial-pyramid vector.

    Input (K, C, B) from ``SPPRoIExtractor``, or (K, C, h, w) per-RoI maps from a
    shared head (mmdet's C4 ``ResLayer`` after a ``SingleRoIExtractor``), which it first
    pools with the whole-map pyramid (``spp_triton.SpatialPyramidPool``, max): the
    paper's SPP layer on top of the last conv layer. Then flattened to K x (C * B), then
    ``num_fcs`` shared fully connected layers of ``fc_out_channels`` (the paper's fc6
    and fc7, 4096 wide there), then mmdet's classifier and box regressor with all the
    usual losses, coders and post-processing of ``ConvFCBBoxHead``.

    Args:
        pyramid: must match the extractor's; fixes B = sum(n * n).
        in_channels: C.
        num_fcs: shared fully connected layers (2 = fc6, fc7).
        fc_out_channels: their width.
        Other keyword arguments go to ``ConvFCBBoxHead`` (num_classes, bbox_coder,
        loss_cls, loss_bbox, reg_class_agnostic, ...).
    """

    def __init__(self, pyramid: Sequence[int] = (1, 2, 3, 6), in_channels: int = 256,
                 num_fcs: int = 2, fc_out_channels: int = 1024, **kwargs) -> None:
        self.pyramid = tuple(pyramid)
        num_bins = sum(n * n for n in self.pyramid)
        # BBoxHead sizes fc6 as in_channels * roi_feat_area; a 1 x B "feature size"
        # gives exactly C * B inputs without reshaping the pyramid vector.
        super().__init__(num_shared_convs=0, num_shared_fcs=num_fcs, num_cls_convs=0,
                         num_cls_fcs=0, num_reg_convs=0, num_reg_fcs=0,
                         roi_feat_size=(1, num_bins), in_channels=in_channels,
                         fc_out_channels=fc_out_channels, **kwargs)
        self.whole_map_pool = SpatialPyramidPool(self.pyramid)

    def forward(self, x: Tensor) -> tuple:
        """(K, C, B) pyramid vectors, or (K, C, h, w) per-RoI maps -> (cls_score,
        bbox_pred), as ``ConvFCBBoxHead``.

        Checks first that the input is what this head was built for: a mismatch of the
        extractor's pyramid or channels would otherwise surface as a shape error inside
        fc6, far from the config lines that cause it.
        """
        num_bins = sum(n * n for n in self.pyramid)
        if x.dim() == 4 and x.shape[1] == self.in_channels:
            x = self.whole_map_pool(x)
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[2] != num_bins:
            raise ValueError(
                f"SPPBBoxHead(pyramid={self.pyramid}, in_channels={self.in_channels}) expects "
                f"(K, {self.in_channels}, {num_bins}) pyramid vectors from SPPRoIExtractor or "
                f"(K, {self.in_channels}, h, w) maps from a shared head, got {tuple(x.shape)}: set "
                "bbox_head.pyramid to the extractor's pyramid and bbox_head.in_channels to the "
                "channels of its input")
        return super().forward(x)
