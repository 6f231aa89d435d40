"""The paper's scale-selection rule, defined once.

SPP-net pools each candidate window at the single image scale where the window's scaled
area is closest to 224 x 224 pixels (He et al., section 4.2). ``SPPRoIExtractor`` applies
it to any set of feature maps: the levels of one image (``level_mapping="sppnet"``) and
the maps of several image scales (``MultiScaleSPPNet``), each map described by its
effective stride in input pixels.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor


def closest_area_level(rois: Tensor, featmap_strides: Sequence[float], target_size: float = 224.0,
                       base_stride: float = 16.0) -> Tensor:
    """The map on which each RoI's window is closest in area to ``target_size`` squared.

    A map of effective stride ``t`` (input pixels per cell) shows the image at scale
    ``base_stride / t`` of the input, for a network of stride ``base_stride``; a RoI of
    w x h input pixels covers ``w h (base_stride / t) ** 2`` pixels of that scale. The
    chosen map minimises ``|w h (base_stride / t) ** 2 - target_size ** 2|``; ties go to
    the first map in ``featmap_strides`` order.

    Args:
        rois: (K, 5) (batch_index, x1, y1, x2, y2) in input pixels; w = max(x2 - x1, 0),
            h alike (mmdet's convention).
        featmap_strides: the L maps' effective strides; fractional for image scales
            (stride 16 at a scale of 0.75 is 21.33 input pixels per cell).
        target_size: the side of the target window in pixels of the chosen scale.
        base_stride: the network's stride at which ``target_size`` is meant.

    Returns:
        (K,) int64 map indices in [0, L).
    """
    w = (rois[:, 3] - rois[:, 1]).clamp(min=0)
    h = (rois[:, 4] - rois[:, 2]).clamp(min=0)
    # Compared in cells, where the target is one number: (target / base_stride) ** 2.
    strides = rois.new_tensor([float(t) for t in featmap_strides])
    cells = (w * h)[:, None] / strides[None, :] ** 2
    target_cells = (target_size / base_stride) ** 2
    return (cells - target_cells).abs().argmin(dim=1)  # argmin returns the first minimum
