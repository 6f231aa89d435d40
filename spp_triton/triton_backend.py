"""Triton backend of spatial-pyramid RoI pooling: launchers of ``triton_kernels``.

Same semantics as ``torch_backend`` (bit for bit in max mode: values, NaN payloads, the
sign of zero and argmax); see ``geometry.py`` for windows and bins. One launch covers
every feature level and pyramid level; nothing here loops over RoIs or levels in Python
or synchronises with the device. The only tensors built from Python values (the bin
table and the scales) are cached per device.

Importing this module imports triton; ``spp_triton`` itself does not.
"""
from __future__ import annotations

import threading

import torch
import triton

from . import triton_kernels as kern
from .geometry import PyramidPlan

_PROJ = {"sppnet": 0, "round": 1}
_cache_lock = threading.Lock()
_tables: dict = {}
_scales: dict = {}
_dummies: dict = {}


def _cached(store: dict, key, make):
    with _cache_lock:
        t = store.get(key)
        if t is None:
            t = store[key] = make()
        return t


def _bin_table(plan: PyramidPlan, device: torch.device) -> torch.Tensor:
    """(B, 3) int32 (n, p, q) of every output bin, cached per (pyramid, device)."""
    return _cached(_tables, (plan.pyramid, device),
                   lambda: torch.tensor(plan.bin_table(), dtype=torch.int32, device=device).contiguous())


def _scales_tensor(scales: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """(L,) float32 scales, cached per (scales, device)."""
    key = (tuple(float(s) for s in scales), device)
    return _cached(_scales, key, lambda: torch.tensor(key[0], dtype=torch.float32, device=device))


def _dummy_i32(device: torch.device) -> torch.Tensor:
    """A 1-element int32 tensor standing in for the unused argmax pointer in avg mode."""
    return _cached(_dummies, device, lambda: torch.zeros(1, dtype=torch.int32, device=device))


def _check_levels(num_levels: int) -> None:
    if num_levels > kern.MAX_LEVELS:
        raise ValueError(f"the Triton backend takes at most {kern.MAX_LEVELS} feature levels, "
                         f"got {num_levels}")


def _roi_inputs(rois: torch.Tensor, roi_levels: torch.Tensor, device: torch.device):
    rois32 = rois.to(device=device, dtype=torch.float32).contiguous()
    levels = roi_levels.to(device=device, dtype=torch.int32).contiguous()
    return rois32, levels


def forward(feats: list[torch.Tensor], rois: torch.Tensor, roi_levels: torch.Tensor,
            scales: tuple[float, ...], plan: PyramidPlan, mode: str, projection: str):
    """Spatial-pyramid RoI pooling forward.

    Args:
        feats: L (<= 8) tensors (N, C, H_l, W_l), one dtype (float32, float16, bfloat16),
            one device (made contiguous if they are not).
        rois: (K, 5) float tensor (batch_index, x1, y1, x2, y2) in input pixels
            (converted to float32).
        roi_levels: (K,) integer tensor, the level of each RoI (zeros for one level).
        scales: L floats, the spatial scale of each level (used as float32).
        plan: the pyramid (``PyramidPlan.make(pyramid, mode)``).
        mode: "max" or "avg". projection: "sppnet" or "round".
    Returns:
        out: (K, C, B) in the features' dtype; out[k, c, offset_n + p * n + q] pools bin
            (p, q) of the n x n grid over RoI k's window on its level (B = sum n * n).
        argmax: (K, C, B) int32 in max mode, the flat index y * W_l + x on RoI k's level
            of the bin's first maximal element in row-major order (NaN is the largest
            value, -0.0 == +0.0); out is the element at that index. None in avg mode
            (out is then the float32 mean of the bin, cast).
    """
    _check_levels(len(feats))
    feats = [f.contiguous() for f in feats]
    n_img, c = feats[0].shape[:2]
    dev = feats[0].device
    k = rois.shape[0]
    b = plan.num_bins
    is_max = mode == "max"
    out = torch.empty(k, c, b, dtype=feats[0].dtype, device=dev)
    argmax = torch.empty(k, c, b, dtype=torch.int32, device=dev) if is_max else None
    if k == 0 or c == 0:
        return out, argmax
    rois32, levels = _roi_inputs(rois, roi_levels, dev)
    heights = tuple(int(f.shape[2]) for f in feats)
    widths = tuple(int(f.shape[3]) for f in feats)
    args = (tuple(feats), heights, widths, rois32, levels, _scales_tensor(scales, dev),
            _bin_table(plan, dev), out, argmax if is_max else _dummy_i32(dev), n_img, c, b)

    def grid(meta):
        return (k, triton.cdiv(c, meta["BLOCK_C"]))

    g = plan.fine_grid if is_max else 0
    if g and triton.next_power_of_2(g * g) <= kern.MAX_FINE_COLUMNS:
        kern.spp_fwd_nested_kernel[grid](*args, NUM_LEVELS=len(feats), G=g,
                                         GG_PAD=triton.next_power_of_2(g * g), IS_MAX=True,
                                         PROJ=_PROJ[projection], enable_fp_fusion=False)
    else:  # non-nested pyramid, avg mode, or a fine grid too wide for registers
        kern.spp_fwd_direct_kernel[grid](*args, NUM_LEVELS=len(feats), G=0, GG_PAD=1, IS_MAX=is_max,
                                         PROJ=_PROJ[projection], enable_fp_fusion=False)
    return out, argmax


def backward(grad_out: torch.Tensor, argmax: torch.Tensor | None, feats: list[torch.Tensor],
             rois: torch.Tensor, roi_levels: torch.Tensor, scales: tuple[float, ...],
             plan: PyramidPlan, mode: str, projection: str, deterministic: bool) -> list[torch.Tensor]:
    """Gradient of ``forward`` with respect to each feature level.

    Args:
        grad_out: (K, C, B) float tensor, the gradient of ``out``.
        argmax: (K, C, B) int32 from ``forward`` in max mode; None (ignored) in avg mode.
        feats: L tensors (N, C, H_l, W_l) used only for shape, dtype and device (zero-stride
            stand-ins are fine).
        rois, roi_levels, scales, plan, mode, projection: as in ``forward``.
        deterministic: False: atomics, grid (K, cdiv(C, BLOCK_C)); the float32 sums may
            differ in the last bits run to run. True: one program per (channel block,
            image) adds the RoIs in order k = 0..K-1: bit-identical run to run (slower).
    Returns:
        L tensors (N, C, H_l, W_l) in the features' dtype (separate storages). Max mode:
        grad_out[k, c, ob] summed at argmax[k, c, ob] of plane (batch_k, c) on RoI k's
        level. Avg mode: grad_out[k, c, ob] / (cells of the bin) summed over the bin's
        cells. Accumulated in float32, then cast.
    """
    _check_levels(len(feats))
    n_img, c = feats[0].shape[:2]
    dtype = feats[0].dtype
    dev = grad_out.device
    shapes = [(int(f.shape[2]), int(f.shape[3])) for f in feats]
    sizes = [n_img * c * h * w for h, w in shapes]
    k = rois.shape[0]
    if k == 0 or c == 0 or n_img == 0:
        return [torch.zeros(n_img, c, h, w, dtype=dtype, device=dev) for h, w in shapes]
    level_off = tuple(sum(sizes[:i]) for i in range(len(sizes)))
    grad = torch.zeros(sum(sizes), dtype=torch.float32, device=dev)
    is_max = mode == "max"
    rois32, levels = _roi_inputs(rois, roi_levels, dev)
    if is_max:
        am = argmax.to(device=dev, dtype=torch.int32).contiguous()
    else:
        am = _dummy_i32(dev)
    b = plan.num_bins
    args = (grad, grad_out.contiguous(), am, rois32, levels, _scales_tensor(scales, dev),
            _bin_table(plan, dev), tuple(h for h, _ in shapes), tuple(w for _, w in shapes),
            level_off, n_img, c, b, k)
    meta = dict(NUM_LEVELS=len(feats), IS_MAX=is_max, PROJ=_PROJ[projection], enable_fp_fusion=False)
    if deterministic:
        kern.spp_bwd_deterministic_kernel[lambda m: (triton.cdiv(c, m["BLOCK_C"]), n_img)](*args, **meta)
    else:
        kern.spp_bwd_atomic_kernel[lambda m: (k, triton.cdiv(c, m["BLOCK_C"]))](*args, **meta)
    # Separate tensors: the op's outputs must not alias one another.
    return [p.view(n_img, c, h, w).to(dtype, copy=True)
            for p, (h, w) in zip(torch.split(grad, sizes), shapes)]
