"""An independent reference for spatial-pyramid RoI pooling, in the plainest PyTorch.

Per RoI: project the corners with Python floats rounded through float32 (the
documented semantics), crop the window, and pool it with torch's adaptive pooling,
whose bins are exactly the paper's floor/ceil rule. Slow on purpose: one Python
loop per RoI and level, written without any code from spp_triton.
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
