"""RPN-like proposals shared by the benchmarks: sqrt(area) log-uniform in [32, 512] px,
aspect ratio log-uniform in [1/3, 3], centres uniform over the image, clipped to it."""
from __future__ import annotations

import math

import torch


def rpn_like_rois(k: int, height: int, width: int, generator: torch.Generator, draw: int | None = None):
    """Returns (rois (k, 5) float32 with batch index 0, side (k,) = sqrt(w * h) before clipping).

    ``draw`` > k draws that many and keeps the first k, so runs of different k share RoIs.
    """
    g = generator
    n = max(k, draw or k)
    side = torch.exp(torch.empty(n).uniform_(math.log(32), math.log(512), generator=g))
    ratio = torch.exp(torch.empty(n).uniform_(math.log(1 / 3), math.log(3), generator=g))
    bw, bh = side * ratio.sqrt(), side / ratio.sqrt()
    cx, cy = torch.rand(n, generator=g) * width, torch.rand(n, generator=g) * height
    rois = torch.stack([torch.zeros(n), cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    rois[:, 1::2] = rois[:, 1::2].clamp(0, width - 1)
    rois[:, 2::2] = rois[:, 2::2].clamp(0, height - 1)
    return rois[:k].contiguous(), side[:k]
