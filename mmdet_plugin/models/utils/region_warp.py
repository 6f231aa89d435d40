"""R-CNN's region crop: each window enlarged for context, warped to a fixed square.

R-CNN (Girshick et al., 2014; rbgirshick/rcnn's ``rcnn_im_crop.m`` with ``crop_mode='warp'``,
``crop_padding=16``, ``crop_size=227``) enlarges every proposal about its centre by
227 / (227 - 2 * 16), so that after warping to 227 x 227 there are 16 px of context on
each side, clips the enlarged box to the image, resizes the clipped part bilinearly
(no antialiasing) into the matching part of the output, and leaves the rest 0 (the mean
colour, after mean subtraction). This module keeps that geometry for any output size
(the context is the same fraction, 16 / 227 of the crop on each side) in continuous
coordinates: no rounding of the enlarged box to whole pixels. No mmdet import.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

RCNN_CROP_SIZE, RCNN_PADDING = 227, 16


def context_scale(crop_size: int = RCNN_CROP_SIZE, padding: float = RCNN_PADDING) -> float:
    """Factor by which a box is enlarged about its centre: crop_size / (crop_size - 2 padding)
    (227 / 195 = 1.164 for R-CNN's)."""
    if not 0 <= 2 * padding < crop_size:
        raise ValueError(f"padding must be in [0, crop_size / 2), got padding={padding}, crop_size={crop_size}")
    return crop_size / (crop_size - 2 * padding)


def context_windows(boxes: Tensor, scale: float) -> Tensor:
    """(K, 4) x1 y1 x2 y2 boxes -> the same boxes enlarged about their centres by ``scale``
    (not clipped: the part outside the image is filled with 0 by ``warp_regions``)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * scale
    return torch.cat([centre - half, centre + half], dim=1)


def warp_regions(images: Tensor, rois: Tensor, crop_size: int, scale: float) -> Tensor:
    """Crop each RoI's context window out of its image and warp it to crop_size x crop_size.

    Args:
        images: (N, C, H, W) float, mean-subtracted (0 = the mean colour).
        rois: (K, 5) float (batch_index, x1, y1, x2, y2) in pixels of ``images``, x2/y2 the
            far edges (a box over pixels 0..9 is x1 = 0, x2 = 10), as mmdet's ``bbox2roi``.
        crop_size: side S of the output.
        scale: context enlargement (``context_scale()``).

    Returns:
        (K, C, S, S), ``images``' dtype. Output pixel (i, j) of RoI k samples its context
        window (x1', y1', x2', y2') = ``context_windows`` at x = x1' + (j + 0.5) (x2' - x1') / S,
        y likewise, bilinearly between pixel centres (pixel p's centre at p + 0.5), edge
        pixels repeated within half a pixel of the border; a sample outside [0, W) x [0, H)
        is 0, as R-CNN's padding outside the image. An RoI narrower than S is enlarged,
        one wider shrunk without antialiasing, as R-CNN's ``imresize(..., 'antialiasing',
        false)``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be (K, 5) (batch_index, x1, y1, x2, y2), got shape {tuple(rois.shape)}")
    if crop_size < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    n, c, h, w = images.shape
    k = rois.shape[0]
    if k == 0:
        return images.new_zeros((0, c, crop_size, crop_size))
    windows = context_windows(rois[:, 1:].to(torch.float32), scale)
    steps = (torch.arange(crop_size, device=images.device, dtype=torch.float32) + 0.5) / crop_size
    xs = windows[:, 0:1] + steps[None] * (windows[:, 2:3] - windows[:, 0:1])  # (K, S) pixel-edge coords
    ys = windows[:, 1:2] + steps[None] * (windows[:, 3:4] - windows[:, 1:2])
    # The batch as one tall image (a view for N = 1), read by every RoI through an expanded
    # view: one grid_sample, no loop over images, no host sync. Samples are clamped to the
    # image's own outer pixel centres (the edge repeated, as padding_mode="border" would),
    # so no sample blends two images; grid_sample with align_corners=False maps -1 and 1 to
    # the outer pixel edges.
    tall = images.transpose(0, 1).reshape(1, c, n * h, w)
    xs_in = xs.clamp(0.5, w - 0.5)
    ys_in = ys.clamp(0.5, h - 0.5) + rois[:, :1].to(torch.float32) * h
    gx = (xs_in / w * 2 - 1)[:, None, :].expand(k, crop_size, crop_size)
    gy = (ys_in / (n * h) * 2 - 1)[:, :, None].expand(k, crop_size, crop_size)
    grid = torch.stack([gx, gy], dim=-1).to(images.dtype)
    crops = F.grid_sample(tall.expand(k, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                          align_corners=False)
    inside_x = (xs >= 0) & (xs < w)
    inside_y = (ys >= 0) & (ys < h)
    inside = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]
    return crops * inside.to(crops.dtype)
