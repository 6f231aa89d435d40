"""An independent reference for spatial-pyramid RoI pooling, in the plainest PyTorch.

Per RoI: project the corners with Python floats rounded through float32 (the
documented semantics), crop the window, and pool it with torch's adaptive pooling,
whose bins are exactly the paper's floor/ceil rule. Slow on purpose: one Python
loop per RoI and level, written without any code from spp_triton, so that every
backend is judged by the same independent rules.

* ``spp_reference``: the pooled values (float64; exact in max mode).
* ``first_max``: the argmax rule (first NaN, else first maximum, row-major).
* ``reference_grads``: the gradients, by autograd through ``spp_reference``.
* ``closest_area_reference``: the paper's scale selection, as a loop.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


def _f32(x):
    return float(np.float32(x))


def window(x1, x2, scale, size, projection):
    s = _f32(scale)
    x1, x2 = _f32(x1), _f32(x2)
    if projection == "sppnet":
        lo = math.floor(_f32(_f32(x1 + 1.0) * s))
        hi = math.ceil(_f32(_f32(x2 + 1.0) * s)) - 2
    else:
        lo = math.floor(_f32(_f32(x1 * s) + 0.5))
        hi = math.floor(_f32(_f32(x2 * s) + 0.5))
    if lo > hi:
        lo = hi = math.floor((lo + hi) / 2)
    lo = min(max(lo, 0), size - 1)
    hi = min(max(hi, 0), size - 1)
    return lo, hi


def spp_reference(features, rois, scales, pyramid=(1, 2, 3, 6), mode="max",
                  projection="sppnet", roi_levels=None):
    """features: list of (N, C, H, W); returns (K, C, B) in float64 (values exact)."""
    if isinstance(features, torch.Tensor):
        features = [features]
    if isinstance(scales, (int, float)):
        scales = [scales]
    k = rois.shape[0]
    c = features[0].shape[1]
    outs = []
    for r in range(k):
        lvl = 0 if roi_levels is None else int(roi_levels[r])
        f = features[lvl]
        b, x1, y1, x2, y2 = [float(v) for v in rois[r].double()]
        xl, xh = window(x1, x2, scales[lvl], f.shape[3], projection)
        yl, yh = window(y1, y2, scales[lvl], f.shape[2], projection)
        crop = f[int(b), :, yl:yh + 1, xl:xh + 1].double()
        parts = []
        for n in pyramid:
            pooled = F.adaptive_max_pool2d(crop, n) if mode == "max" else F.adaptive_avg_pool2d(crop, n)
            parts.append(pooled.reshape(c, n * n))
        outs.append(torch.cat(parts, dim=1))
    if not outs:
        return torch.zeros(0, c, sum(n * n for n in pyramid), dtype=torch.float64)
    return torch.stack(outs)


def bins(lo, hi, n):
    """[(start, stop)] of the n bins over the inclusive window [lo, hi]: the paper's
    floor/ceil rule, written out (start floor(i h / n), stop ceil((i + 1) h / n))."""
    h = hi - lo + 1
    return [(lo + (i * h) // n, lo + -(-((i + 1) * h) // n)) for i in range(n)]


def first_max(features, rois, scales, pyramid, projection, roi_levels):
    """Independent argmax: per bin, the first NaN if any, else the first maximum, in
    row-major order, as the flat index y * W + x on the RoI's level. (K, C, B) int64."""
    k, c = rois.shape[0], features[0].shape[1]
    out = torch.empty(k, c, sum(n * n for n in pyramid), dtype=torch.int64)
    for r in range(k):
        lvl = int(roi_levels[r])
        f = features[lvl].double()
        b, x1, y1, x2, y2 = [float(v) for v in rois[r].double()]
        xl, xh = window(x1, x2, scales[lvl], f.shape[3], projection)
        yl, yh = window(y1, y2, scales[lvl], f.shape[2], projection)
        col = 0
        for n in pyramid:
            for r0, r1 in bins(yl, yh, n):
                for c0, c1 in bins(xl, xh, n):
                    block = f[int(b), :, r0:r1, c0:c1].reshape(c, -1)
                    nan = torch.isnan(block)
                    top = torch.where(nan, -math.inf, block).amax(1, keepdim=True)
                    hit = torch.where(nan.any(1, keepdim=True), nan, block == top)
                    m = hit.int().argmax(1)  # first True
                    out[r, :, col] = (r0 + m // (c1 - c0)) * f.shape[3] + c0 + m % (c1 - c0)
                    col += 1
    return out


def reference_grads(features, rois, scales, pyramid, mode, projection, roi_levels, grad):
    """Gradients of ``spp_reference`` (autograd through it, float64) for each level."""
    leaves = [f.detach().double().requires_grad_() for f in features]
    ref = spp_reference(leaves, rois, scales, pyramid, mode, projection, roi_levels=roi_levels)
    grads = torch.autograd.grad(ref, leaves, grad.double(), allow_unused=True)
    return [torch.zeros_like(f) if g is None else g for f, g in zip(leaves, grads)]


def closest_area_reference(rois, strides, target_size, base_stride):
    """Plain Python: per RoI, the first map minimising |w h (base / t)^2 - target^2|."""
    picks = []
    for _, x1, y1, x2, y2 in rois.tolist():
        area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
        gaps = [abs(area * (base_stride / t) ** 2 - target_size ** 2) for t in strides]
        picks.append(gaps.index(min(gaps)))
    return picks
