"""Backend "torch": a C++ CPU kernel, and the same semantics in pure PyTorch elsewhere.

* ``dispatch``: the backend contract (``registry.py``): the C++ kernel where it runs,
  the fallback otherwise;
* ``cpp_kernel`` with ``csrc/``: the C++ kernels (built on first use), cells and bilinear;
* ``fallback`` (contract entry), ``fallback_cells`` and ``fallback_align``: pure PyTorch,
  for CUDA and other devices, wider grids, or a machine where the kernel does not build.
"""
from .dispatch import backward, forward, implementation

__all__ = ["forward", "backward", "implementation"]
