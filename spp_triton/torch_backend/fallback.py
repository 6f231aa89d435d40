"""Spatial-pyramid RoI pooling in pure PyTorch: the backend contract without C++.

``dispatch`` runs it when the C++ kernel (``cpp_kernel``) cannot run: on non-CPU
tensors, for grids wider than the kernel takes, when the kernel does not build, or with
``SPP_TRITON_CPU_KERNEL=0``. Same semantics, bit for bit in max mode. This module is the
contract's entry (empty RoI lists, determinism, the gradients' layout); the pooling is in
``fallback_cells`` (``sampling="cells"``) and ``fallback_align`` (``"bilinear"``).

Backward on CPU is deterministic: serial ``index_add_`` and elementwise ops (no BLAS,
whose sums need not be bit-reproducible). On CUDA ``index_add_`` adds with atomics, so
``deterministic=True`` runs it under ``torch.use_deterministic_algorithms``.
"""
from __future__ import annotations

import torch

from ..geometry import Mode, PoolSpec, window_table
from ..registry import memory_format
from . import fallback_align, fallback_cells


def forward(feats, rois, roi_levels, spec: PoolSpec, deterministic: bool = False):
    """The backend contract's forward (``registry.py``); any device, any strides."""
    n_img, c = feats[0].shape[:2]
    if rois.shape[0] == 0:
        empty = feats[0].new_empty(0, c, spec.num_bins)
        return empty, (empty.to(torch.int32) if spec.mode == Mode.MAX else None)
    if spec.bilinear:
        return fallback_align.forward(feats, rois, roi_levels, spec)
    win = window_table([tuple(f.shape[2:]) for f in feats], rois, roi_levels, spec, n_img)
    if spec.mode == Mode.MAX:
        return fallback_cells.forward_max(feats, win, spec)
    return fallback_cells.forward_avg(feats, win, spec), None


def backward(grad_out, argmax, feats, rois, roi_levels, spec: PoolSpec, deterministic: bool = False):
    """The backend contract's backward (``registry.py``); deterministic on CPU, and on
    other devices with ``deterministic=True``."""
    n_img, c = feats[0].shape[:2]
    dtype = feats[0].dtype
    shapes = [tuple(f.shape[2:]) for f in feats]
    fmt = memory_format(feats)
    if rois.shape[0] == 0:
        return [torch.empty(n_img, c, h, w, dtype=dtype, device=grad_out.device, memory_format=fmt).zero_()
                for h, w in shapes]
    # index_add_ is serial on CPU; elsewhere torch's deterministic mode orders its atomics.
    strict = deterministic and grad_out.device.type != "cpu" and not torch.are_deterministic_algorithms_enabled()
    if strict:
        torch.use_deterministic_algorithms(True)
    try:
        if spec.bilinear:
            grads = fallback_align.backward(grad_out, argmax, shapes, n_img, c, dtype, rois, roi_levels, spec)
        else:
            win = window_table(shapes, rois, roi_levels, spec, n_img)
            grads = fallback_cells.backward(grad_out, argmax, win, shapes, n_img, c, dtype, spec)
    finally:
        if strict:
            torch.use_deterministic_algorithms(False)
    return [g.contiguous(memory_format=fmt) for g in grads]  # the fallback copies; the kernels do not
