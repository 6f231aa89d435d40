"""``WarpedRegionExtractor``: R-CNN's per-region features, as an mmdet RoI extractor."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from ...utils.region_warp import RCNN_CROP_SIZE, RCNN_PADDING, context_scale, warp_regions


@MODELS.register_module()
class WarpedRegionExtractor(BaseModule):
    """Each RoI cropped from the image with context, warped, and run through the conv net.

    R-CNN's feature extraction (see ``mmdet_plugin.models.utils.region_warp`` for the crop):
    the box enlarged about its centre so that ``padding_fraction`` of the crop is context
    on each side (R-CNN: 16 / 227), warped bilinearly to ``crop_size`` squared, the crops
    run through ``conv`` in chunks of ``chunk_size`` (so that the 2,000 crops of an image
    at test time never sit in memory at once, as image tensors or as conv maps), and each
    crop's last map returned whole; ``SPPBBoxHead`` pools it with the paper's pyramid.

    ``conv`` is the detector's backbone, attached by ``RCNN`` with ``attach_conv`` (kept out
    of this module's parameters: it is trained, frozen and saved as the detector's
    ``backbone``, under the same names as in SPP-net's configs).

    Args:
        crop_size: side of the warped crop in pixels (R-CNN: 227).
        padding_fraction: context on each side as a fraction of the crop (R-CNN: 16 / 227).
        chunk_size: crops per conv call.
        featmap_strides: [1]: the "feature map" this extractor reads is the image batch.

    Forward: ``feats`` = (images,), (N, 3, H, W) as the data preprocessor gives them; rois
    (K, 5) (batch_index, x1, y1, x2, y2) in those pixels. Returns (K, C, h, w), the conv
    net's last output for each crop (C = its channels, h = w = crop_size / stride rounded
    up), in RoI order.
    """

    def __init__(self, crop_size: int = RCNN_CROP_SIZE, padding_fraction: float = RCNN_PADDING / RCNN_CROP_SIZE,
                 chunk_size: int = 256, featmap_strides: Sequence[int] = (1, ), init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(crop_size) != crop_size or crop_size < 1:
            raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
        if int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if list(featmap_strides) != [1]:
            raise ValueError(f"WarpedRegionExtractor reads the image itself: featmap_strides must be [1], "
                             f"got {list(featmap_strides)}")
        self.crop_size, self.chunk_size = int(crop_size), int(chunk_size)
        self.padding_fraction = float(padding_fraction)
        self.scale = context_scale(self.crop_size, self.padding_fraction * self.crop_size)
        self.featmap_strides = [1]
        self._conv: Optional[Callable[[Tensor], Sequence[Tensor]]] = None

    @property
    def num_inputs(self) -> int:
        return 1

    def attach_conv(self, conv: Callable[[Tensor], Sequence[Tensor]]) -> None:
        """The network each crop goes through; its last output is the crop's feature map.
        Stored outside ``_modules`` so that its parameters stay the detector's backbone's."""
        self.__dict__["_conv"] = conv

    def forward(self, feats: Sequence[Tensor], rois: Tensor, roi_scale_factor: Optional[float] = None) -> Tensor:
        if self._conv is None:
            raise RuntimeError("WarpedRegionExtractor has no conv net: it is built by the RCNN detector, "
                               "which attaches its backbone")
        if roi_scale_factor is not None:
            raise ValueError("WarpedRegionExtractor enlarges windows by its own padding_fraction; "
                             "roi_scale_factor is not supported")
        images = feats[0]
        maps = []
        for start in range(0, rois.shape[0], self.chunk_size):
            crops = warp_regions(images, rois[start:start + self.chunk_size], self.crop_size, self.scale)
            maps.append(self._conv(crops)[-1])
        if not maps:
            probe = self._conv(images.new_zeros((1, images.shape[1], self.crop_size, self.crop_size)))[-1]
            return probe.new_zeros((0, *probe.shape[1:]))
        return torch.cat(maps) if len(maps) > 1 else maps[0]

    def extra_repr(self) -> str:
        return f"crop_size={self.crop_size}, padding_fraction={self.padding_fraction:.4f}, chunk_size={self.chunk_size}"
