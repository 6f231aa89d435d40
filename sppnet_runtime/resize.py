"""The test pipeline's ``Resize`` (mmcv, cv2 backend, bilinear) in numpy.

``rescale_size`` is mmcv's ``rescale_size`` / ``Resize(keep_ratio=...)`` size rule, exactly.
``resize_bilinear`` follows OpenCV's ``INTER_LINEAR`` for uint8 images: the source
coordinate ``(x + 0.5) * src / dst - 0.5``, edges clamped, 11-bit fixed-point weights, a
horizontal then a vertical pass with OpenCV's SIMD rounding; an exact halving is
OpenCV's 2 x 2 area average, as ``cv2.resize`` switches to it. An unchanged size is
returned as it is (no resampling). ``tests/test_deploy.py`` measures the agreement with
``cv2.resize`` (it may differ by one grey level where OpenCV's scalar tail rounds).
"""
from __future__ import annotations

import numpy as np

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def rescale_size(width: int, height: int, rule: dict) -> tuple[int, int]:
    """(new_w, new_h) of an image under the resize ``rule`` (the model's metadata:
    ``{"scale": [w, h], "keep_ratio": bool}`` or ``{"scale_factor": f}``; ``{}``: unchanged)."""
    if not rule:
        return width, height
    if "scale_factor" in rule:
        factor = float(rule["scale_factor"])
    elif rule.get("keep_ratio", False):
        long_edge, short_edge = max(rule["scale"]), min(rule["scale"])
        factor = min(long_edge / max(height, width), short_edge / min(height, width))
    else:
        return int(rule["scale"][0]), int(rule["scale"][1])
    return int(width * factor + 0.5), int(height * factor + 0.5)


def _axis(src: int, dst: int):
    """Source index and 11-bit weights of each output position along one axis."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = f - s
    low = s < 0
    f[low], s[low] = 0, 0
    high = s >= src - 1
    f[high], s[high] = 0, src - 1
    w1 = np.rint(f * _COEF_SCALE).astype(np.int32)
    w0 = np.rint((1.0 - f) * _COEF_SCALE).astype(np.int32)
    return s, np.minimum(s + 1, src - 1), w0, w1


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, C) uint8 -> (height, width, C) uint8, as ``cv2.resize(..., INTER_LINEAR)``."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if w == 2 * width and h == 2 * height:  # cv2 uses INTER_AREA for an exact halving
        blocks = image.reshape(height, 2, width, 2, -1).astype(np.int32).sum((1, 3))
        return ((blocks + 2) >> 2).astype(np.uint8)
    xs0, xs1, xa0, xa1 = _axis(w, width)
    ys0, ys1, yb0, yb1 = _axis(h, height)
    src = image.astype(np.int32)
    rows = src[:, xs0] * xa0[None, :, None] + src[:, xs1] * xa1[None, :, None]  # (H, width, C), 22 bits
    top, bottom = rows[ys0] >> 4, rows[ys1] >> 4
    out = (((yb0[:, None, None] * top) >> 16) + ((yb1[:, None, None] * bottom) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)
