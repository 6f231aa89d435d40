"""Realistic inputs for benchmarks, the self-test and the traffic tests.

* ``rpn_like_rois``: proposals shaped like an RPN's: sqrt(area) log-uniform in
  [32, 512] px, aspect ratio log-uniform in [1/3, 3], centres uniform, clipped.
* ``fpn_levels``: mmdet's ``finest_scale`` rule (``SingleRoIExtractor.map_roi_levels``).
* ``fpn_inputs``: FPN features of one image (strides 4-32) and such proposals.
* ``window_inputs``: one stride-16 map and RoIs whose windows are a given number of
  cells per side (the paper's single-scale setting).
"""
from __future__ import annotations

import math

import torch

FPN_STRIDES = (4, 8, 16, 32)


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


def fpn_levels(side: torch.Tensor, num_levels: int, finest_scale: float = 56) -> torch.Tensor:
    """mmdet's rule: level floor(log2(sqrt(w h) / finest_scale + 1e-6)), clamped; int64."""
    return torch.floor(torch.log2(side / finest_scale + 1e-6)).clamp(0, num_levels - 1).long()


def fpn_inputs(k: int, channels: int = 256, dtype=torch.float32, device="cpu", seed: int = 0,
               image: tuple[int, int] = (800, 1216), strides=FPN_STRIDES):
    """(feats, rois, levels, scales): FPN levels (1, C, H / s, W / s) of one image and K
    RPN-like proposals, each on the level mmdet's finest_scale = 56 rule picks."""
    g = torch.Generator().manual_seed(seed)
    h, w = image
    feats = [torch.randn(1, channels, math.ceil(h / s), math.ceil(w / s), generator=g).to(device=device, dtype=dtype)
             for s in strides]
    rois, side = rpn_like_rois(k, h, w, generator=g)
    return feats, rois.to(device), fpn_levels(side, len(strides)).to(device), tuple(1.0 / s for s in strides)


def window_inputs(k: int, channels: int = 16, lo: int = 3, hi: int = 25, dtype=torch.float32, device="cpu",
                  seed: int = 0, size: int = 64, stride: int = 16):
    """(feats, rois, levels, scales): one (1, C, size, size) map at ``stride`` and K RoIs
    whose windows under the "sppnet" projection are lo..hi cells per side (uniform)."""
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(1, channels, size, size, generator=g).to(device=device, dtype=dtype)]
    cells = torch.randint(lo, hi + 1, (k, 2), generator=g)
    first = (torch.rand(k, 2, generator=g) * (size - cells + 1).float()).floor()
    # x1 = s a + s / 2 gives lo = a; x2 = x1 + s n gives hi = a + n - 1 ("sppnet" rule).
    x1y1 = first * stride + stride / 2
    x2y2 = x1y1 + cells.float() * stride
    rois = torch.cat([torch.zeros(k, 1), x1y1, x2y2], 1).to(device)
    return feats, rois, torch.zeros(k, dtype=torch.int64, device=device), (1.0 / stride,)
