"""Backend "triton": the Triton kernels for CUDA tensors (or any tensors under
``TRITON_INTERPRET=1``).

* ``launch``: the backend contract (``registry.py``): argument packing, autotuned
  launches, one launch for all pyramid and feature levels;
* ``cells_kernels`` (``sampling="cells"``) and ``align_kernels`` (``"bilinear"``): the two
  ``@triton.jit`` kernel families, forward and backward;
* ``shared_kernels``: what both families use (RoI programs, packed max keys, the tile
  fold, coarse bins, the scatter, the deterministic backward's pre-pass and finalize).

Importing this package imports triton. (Not named ``backends``: torch.compile skips
every file whose path contains "triton/backends".)
"""
from .launch import backward, forward

__all__ = ["forward", "backward"]
