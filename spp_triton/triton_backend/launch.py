"""Backend "triton": launchers of ``cells_kernels`` and ``align_kernels`` (the contract of
``registry.py``; shared kernels in ``shared_kernels``).

Same semantics as the torch backend, bit for bit in max mode (values, NaN payloads, the
sign of zero, argmax); see ``geometry.py`` and ``spp_roi_pool``'s docstring. One launch
covers every feature level and every pyramid grid; nothing here loops over RoIs or
levels in Python or synchronises with the device. Features are read in place when
every level is NCHW-contiguous or every level is channels-last; gradients come back in
the same layout. (Levels in mixed or other layouts are made NCHW-contiguous first.)

Importing this module imports triton; ``spp_triton`` itself does not.
"""
from __future__ import annotations

import math
import threading

import torch
import triton

from . import align_kernels, cells_kernels, shared_kernels
from ..registry import memory_format
from ..geometry import Mode, PoolSpec

_cache_lock = threading.Lock()
_scales: dict = {}
_dummies: dict = {}


def _cached(store: dict, key, make):
    with _cache_lock:
        t = store.get(key)
        if t is None:
            t = store[key] = make()
        return t


def _scales_tensor(scales: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """(L,) float32 scales, cached per (scales, device): no host-to-device copy per call."""
    key = (tuple(float(s) for s in scales), device)
    return _cached(_scales, key, lambda: torch.tensor(key[0], dtype=torch.float32, device=device))


def _dummy_i32(device: torch.device) -> torch.Tensor:
    """A 1-element int32 tensor standing in for an unused pointer."""
    return _cached(_dummies, device, lambda: torch.zeros(1, dtype=torch.int32, device=device))


def _readable(feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], bool]:
    """The levels as the kernels read them, and whether that is channels-last (no copy
    for all-NCHW or all-channels-last levels; others are made NCHW-contiguous)."""
    if memory_format(feats) == torch.channels_last:
        return feats, True
    return [f.contiguous() for f in feats], False


def _roi_inputs(rois: torch.Tensor, roi_levels: torch.Tensor, device: torch.device):
    rois32 = rois.to(device=device, dtype=torch.float32).contiguous()
    levels = roi_levels.to(device=device, dtype=torch.int32).contiguous()
    return rois32, levels


def forward(feats: list[torch.Tensor], rois: torch.Tensor, roi_levels: torch.Tensor, spec: PoolSpec,
            deterministic: bool = False):
    """Spatial-pyramid RoI pooling forward (the backend contract, ``registry.py``).

    Args:
        feats: L (<= 8) tensors (N, C, H_l, W_l), one dtype (float32, float16, bfloat16),
            one device; read in place when all are NCHW-contiguous or all channels-last.
        rois: (K, 5) float tensor (batch_index, x1, y1, x2, y2) in input pixels
            (converted to float32).
        roi_levels: (K,) integer tensor, the level of each RoI (zeros for one level).
        spec: pyramid (grids up to registry.BACKENDS["triton"].max_grid = 16, checked
            before), mode, projection or sampling options, the L spatial scales (float32).
        deterministic: ignored (the forward is deterministic).
    Returns:
        out: (K, C, B) in the features' dtype; out[k, c, offset_n + p * n + q] pools bin
            (p, q) of the n x n grid over RoI k's window on its level (B = sum n * n).
        argmax: (K, C, B) int32 in max mode, the flat index y * W_l + x on RoI k's level
            of the bin's first maximal element in row-major order (NaN is the largest
            value, -0.0 == +0.0); out is the element at that index. Bilinear: the lattice
            index of the bin's first maximal sample; out is that sample. None in avg mode
            (out is then the float32 mean of the bin, cast).
    """
    feats, cl = _readable(feats)
    n_img, c = feats[0].shape[:2]
    dev = feats[0].device
    k = rois.shape[0]
    is_max = spec.mode == Mode.MAX
    out = torch.empty(k, c, spec.num_bins, dtype=feats[0].dtype, device=dev)
    argmax = torch.empty(k, c, spec.num_bins, dtype=torch.int32, device=dev) if is_max else None
    if k == 0 or c == 0:
        return out, argmax
    rois32, levels = _roi_inputs(rois, roi_levels, dev)
    fine = spec.fine_grid
    fine_pad = triton.next_power_of_2(fine) if fine else 1  # <= 16: registry max_grid

    def grid(meta):
        return (k, triton.cdiv(c, meta["BLOCK_C"]))

    if spec.bilinear:
        kernel, runtime, options = align_kernels.spp_align_fwd_tuned, (spec.sampling_ratio, int(spec.aligned)), {}
    else:
        kernel, runtime, options = cells_kernels.spp_fwd_tuned, (), dict(PROJ=int(spec.projection))
    kernel[grid](
        tuple(feats), tuple(int(f.shape[2]) for f in feats), tuple(int(f.shape[3]) for f in feats),
        rois32, levels, _scales_tensor(spec.scales, dev), out, argmax if is_max else _dummy_i32(dev),
        n_img, c, *runtime, NUM_LEVELS=len(feats), **shared_kernels.pyramid_constexprs(spec.pyramid), FINE=fine,
        FINE_PAD=fine_pad, MODE=int(spec.mode), CHANNELS_LAST=cl, enable_fp_fusion=False, **options)
    return out, argmax


def backward(grad_out: torch.Tensor, argmax: torch.Tensor | None, feats: list[torch.Tensor],
             rois: torch.Tensor, roi_levels: torch.Tensor, spec: PoolSpec,
             deterministic: bool = False) -> list[torch.Tensor]:
    """Gradient of ``forward`` with respect to each feature level (the backend contract).

    Args:
        grad_out: (K, C, B) float tensor, the gradient of ``out`` (read as float32).
        argmax: (K, C, B) int32 from ``forward`` in max mode; None (ignored) in avg mode.
        feats: L tensors (N, C, H_l, W_l) giving shape, dtype and layout only (meta
            tensors are fine).
        rois, roi_levels, spec: as in ``forward``.
        deterministic: False: float32 atomics, whose sums may differ in the last bits run
            to run. True: int64 fixed-point atomics, bit-identical run to run. Each term is
            rounded once to a step of 2**-s, s set per call so that the largest possible
            sum (K * B terms of the largest finite |grad_out|) fits 62 bits: the step is at
            most 2**(ceil(log2(K B)) - 60) of max |grad_out| (2**-43 at K B = 10**5), finer
            than float32 rounding near the largest gradients; terms below half a step are
            dropped.
            Non-finite terms are summed apart (NaN and +-inf as IEEE sums give them).
    Returns:
        L tensors (N, C, H_l, W_l) in the features' dtype and layout (separate storages).
        Max mode: grad_out[k, c, ob] summed at argmax[k, c, ob] of plane (batch_k, c) on
        RoI k's level. Avg mode: grad_out[k, c, ob] / (cells of the bin) summed over the
        bin's cells. Bilinear: the same, at the four corners of the chosen sample (max) or
        of every sample of the bin / their number (avg), times the corner weights.
        Accumulated in float32 (or fixed point), then rounded once.
    """
    fmt = memory_format(feats)
    cl = fmt == torch.channels_last
    n_img, c = feats[0].shape[:2]
    dtype = feats[0].dtype
    dev = grad_out.device
    k = rois.shape[0]

    def zeros(dt):
        return [torch.empty(f.shape, dtype=dt, device=dev, memory_format=fmt).zero_() for f in feats]

    if k == 0 or c == 0 or n_img == 0:
        return zeros(dtype)
    direct = dtype == torch.float32  # accumulate straight into the outputs
    outs = zeros(dtype) if direct else [torch.empty(f.shape, dtype=dtype, device=dev, memory_format=fmt)
                                        for f in feats]
    grads = outs if direct else zeros(torch.float32)
    accs = zeros(torch.int64) if deterministic else grads
    rois32, levels = _roi_inputs(rois, roi_levels, dev)
    # float32 for every features dtype: the kernels read it as float32 anyway, and one
    # grad_out dtype keeps the backward kernels at one compiled variant per config (a
    # float16 / bfloat16 gradient costs one elementwise cast of K x C x B).
    grad_out = grad_out.to(torch.float32).contiguous()
    is_max = spec.mode == Mode.MAX
    am = argmax.to(device=dev, dtype=torch.int32).contiguous() if is_max else _dummy_i32(dev)
    # A constexpr: only the deterministic kernels read it, so only they specialise on it
    # (one compile per power of two of K * B); the atomic path keeps one variant.
    headroom = math.ceil(math.log2(max(k * spec.num_bins, 2))) + 1 if deterministic else 0
    exp = torch.zeros(1, dtype=torch.int32, device=dev) if deterministic else _dummy_i32(dev)
    if deterministic:
        block = 4096
        shared_kernels.abs_max_exponent_kernel[(triton.cdiv(grad_out.numel(), block),)](
            grad_out, grad_out.numel(), exp, BLOCK=block)

    def grid(meta):
        return (k, triton.cdiv(c, meta["BLOCK_C"]))

    if spec.bilinear:
        kernel, runtime = align_kernels.spp_align_bwd_tuned, (spec.sampling_ratio, int(spec.aligned))
        options = dict(FINE=spec.fine_grid)
    else:
        kernel, runtime, options = cells_kernels.spp_bwd_tuned, (), dict(PROJ=int(spec.projection))
    kernel[grid](
        tuple(grads), tuple(accs), exp, grad_out, am, rois32, levels, _scales_tensor(spec.scales, dev),
        tuple(int(f.shape[2]) for f in feats), tuple(int(f.shape[3]) for f in feats), n_img, c, *runtime,
        NUM_LEVELS=len(feats), **shared_kernels.pyramid_constexprs(spec.pyramid),
        B_PAD=triton.next_power_of_2(spec.num_bins), MODE=int(spec.mode), CHANNELS_LAST=cl,
        DETERMINISTIC=bool(deterministic), HEADROOM=headroom, enable_fp_fusion=False, **options)
    if deterministic or not direct:
        block = 1024
        numels = tuple(o.numel() for o in outs)
        shared_kernels.finalize_kernel[(triton.cdiv(max(numels), block), len(outs))](
            tuple(grads), tuple(accs), tuple(outs), numels, exp, NUM_LEVELS=len(outs),
            DETERMINISTIC=bool(deterministic), HEADROOM=headroom, BLOCK=block)
    return outs
