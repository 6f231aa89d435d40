"""Backend "torch": the C++ CPU kernel where it runs, pure PyTorch elsewhere.

``cpp_kernel`` (C++, built on first use) takes CPU tensors with grids up to 64;
``fallback`` takes everything else: CUDA or other devices, wider grids, a machine
where the kernel does not build (one RuntimeWarning says so), or the environment
variable ``SPP_TRITON_CPU_KERNEL=0``. Both follow the backend contract (``registry.py``)
with the same semantics, bit for bit in max mode, and deterministic backwards on CPU.
"""
from __future__ import annotations

import os

from . import cpp_kernel, fallback
from ..geometry import PoolSpec


def _kernel_enabled() -> bool:
    return os.environ.get("SPP_TRITON_CPU_KERNEL", "1") != "0"


def implementation(device, spec: PoolSpec):
    """The module that runs a call: ``cpp_kernel`` or ``fallback``."""
    if _kernel_enabled() and cpp_kernel.takes(device, spec) and cpp_kernel.available():
        return cpp_kernel
    return fallback


def forward(feats, rois, roi_levels, spec: PoolSpec, deterministic: bool = False):
    return implementation(feats[0].device, spec).forward(feats, rois, roi_levels, spec, deterministic)


def backward(grad_out, argmax, feats, rois, roi_levels, spec: PoolSpec, deterministic: bool = False):
    return implementation(grad_out.device, spec).backward(grad_out, argmax, feats, rois, roi_levels, spec,
                                                          deterministic)
