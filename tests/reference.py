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


# ---------------------------------------------------------------- sampling="bilinear"
# The documented rule of SPP-Align (spp_roi_pool's docstring), one RoI, grid, bin and
# sample at a time, in numpy float32 scalars (each operation rounded, no fused
# multiply-add), so max-mode values are exact.
_F = np.float32


def align_window(lo, hi, scale, aligned):
    """(start, size) of a RoI's continuous window along one axis."""
    s, off = _F(scale), _F(0.5 if aligned else 0.0)
    start = _F(_F(lo) * s) - off
    size = _F(_F(_F(hi) * s) - off) - start
    return start, (size if aligned else max(size, _F(1.0)))


def align_ratio(size, grid, sampling_ratio):
    """Samples per bin along an axis: sampling_ratio, or ceil(size / grid) in [1, 32768 // grid]."""
    if sampling_ratio > 0:
        return sampling_ratio
    return int(min(max(math.ceil(_F(size / _F(grid))), 1), 32768 // grid))


def lattice_point(start, size, grid, r, t):
    """Coordinate of point t of the lattice of ``grid`` bins with r samples per bin."""
    step = _F(size / _F(grid))
    p, i = divmod(t, r)
    return _F(start + _F(_F(p) * step)) + _F(_F(_F(i) + _F(0.5)) * step) / _F(r)


def bilinear_corners(y, x, height, width):
    """[(row, column, weight)] of the four corners of a sample, [] outside the map."""
    def axis(c, size):
        if c < -1 or c > size:
            return None
        c = _F(0.0) if c <= 0 else c
        low = int(c)
        if low >= size - 1:
            low = high = size - 1
            c = _F(low)
        else:
            high = low + 1
        frac = _F(c - _F(low))
        return low, high, _F(_F(1.0) - frac), frac

    ay, ax = axis(y, height), axis(x, width)
    if ay is None or ax is None:
        return []
    (yl, yh, hy, ly), (xl, xh, hx, lx) = ay, ax
    return [(yl, xl, _F(hy * hx)), (yl, xh, _F(hy * lx)), (yh, xl, _F(ly * hx)), (yh, xh, _F(ly * lx))]


def _align_bins(rois, r_idx, lvl, shape, scales, pyramid, sampling_ratio, aligned):
    """For every output bin of RoI ``r_idx``, in output order: the list of its samples as
    (lattice index, corners), in row-major order of the lattice."""
    h, w = shape
    _, x1, y1, x2, y2 = [float(v) for v in rois[r_idx]]
    sx, sw = align_window(x1, x2, scales[lvl], aligned)
    sy, sh = align_window(y1, y2, scales[lvl], aligned)
    g = max(pyramid)
    nested = all(g % n == 0 for n in pyramid)
    out = []
    for n in pyramid:
        grid = g if nested else n  # the lattice the grid's points lie on
        ry, rx = align_ratio(sh, grid, sampling_ratio), align_ratio(sw, grid, sampling_ratio)
        per_y, per_x = (grid // n) * ry, (grid // n) * rx  # lattice points per bin of n
        for p in range(n):
            for q in range(n):
                samples = []
                for ty in range(p * per_y, (p + 1) * per_y):
                    y = lattice_point(sy, sh, grid, ry, ty)
                    for tx in range(q * per_x, (q + 1) * per_x):
                        x = lattice_point(sx, sw, grid, rx, tx)
                        samples.append((ty * grid * rx + tx, bilinear_corners(y, x, h, w)))
                out.append(samples)
    return out


def align_reference(features, rois, scales, pyramid=(1, 2, 3, 6), mode="max", sampling_ratio=2, aligned=True,
                    roi_levels=None):
    """SPP-Align by the documented rule. Returns (out (K, C, B) float64: the float32 (float64
    for float64 features) values, exact in max mode; chosen (K, C, B) int64: the lattice
    index of each bin's first NaN sample, else its first maximal one (max mode))."""
    if isinstance(features, torch.Tensor):
        features = [features]
    if isinstance(scales, (int, float)):
        scales = [scales]
    k, c = rois.shape[0], features[0].shape[1]
    nb = sum(n * n for n in pyramid)
    calc = np.float64 if features[0].dtype == torch.float64 else np.float32
    maps = [f.detach().cpu().to(torch.float64 if calc is np.float64 else torch.float32).numpy() for f in features]
    out = np.zeros((k, c, nb), np.float64)
    chosen = np.zeros((k, c, nb), np.int64)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf inputs propagate as IEEE says
        _align_loop(maps, rois, scales, pyramid, mode, sampling_ratio, aligned, roi_levels, calc, out, chosen)
    return torch.from_numpy(out), torch.from_numpy(chosen)


def _align_loop(maps, rois, scales, pyramid, mode, sampling_ratio, aligned, roi_levels, calc, out, chosen):
    k, c = out.shape[:2]
    for r in range(k):
        lvl = 0 if roi_levels is None else int(roi_levels[r])
        img = maps[lvl][int(rois[r, 0])]
        for b, samples in enumerate(_align_bins(rois, r, lvl, img.shape[1:], scales, pyramid, sampling_ratio, aligned)):
            best, best_idx, total = None, np.zeros(c, np.int64), np.zeros(c, np.float64)
            for idx, corners in samples:
                val = np.zeros(c, calc)
                for i, (yy, xx, wt) in enumerate(corners):
                    term = (calc(wt) * img[:, yy, xx]).astype(calc)
                    val = term if i == 0 else (val + term).astype(calc)
                total += val
                if best is None:
                    best, best_idx = val.copy(), np.full(c, idx)
                    continue
                take = (np.isnan(val) & ~np.isnan(best)) | (~np.isnan(best) & (val > best))
                best = np.where(take, val, best)
                best_idx = np.where(take, idx, best_idx)
            out[r, :, b] = best if mode == "max" else total / len(samples)
            chosen[r, :, b] = best_idx


def align_reference_grads(features, rois, scales, pyramid, mode, sampling_ratio, aligned, roi_levels, grad):
    """Gradients of ``align_reference`` for each level (float64): max mode sends each
    bin's gradient to its chosen sample's four corners times their weights; avg mode to
    every sample's corners times weight / samples in the bin."""
    _, chosen = align_reference(features, rois, scales, pyramid, mode, sampling_ratio, aligned, roi_levels)
    grads = [np.zeros(tuple(f.shape), np.float64) for f in features]
    g = grad.double().numpy()
    for r in range(rois.shape[0]):
        lvl = 0 if roi_levels is None else int(roi_levels[r])
        b_img = int(rois[r, 0])
        target = grads[lvl][b_img]
        bins = _align_bins(rois, r, lvl, target.shape[1:], scales, pyramid, sampling_ratio, aligned)
        for b, samples in enumerate(bins):
            if mode == "max":
                by_idx = dict(samples)
                for ch in range(target.shape[0]):
                    for yy, xx, wt in by_idx[int(chosen[r, ch, b])]:
                        target[ch, yy, xx] += g[r, ch, b] * float(wt)
            else:
                for _, corners in samples:
                    for yy, xx, wt in corners:
                        target[:, yy, xx] += g[r, :, b] * float(wt) / len(samples)
    return [torch.from_numpy(x) for x in grads]
