"""The backend registry of ``spp_roi_pool``: one contract, one table.

Each backend is a subpackage (``triton_backend/``, ``torch_backend/``) whose
``__init__`` exposes the contract. (Neither this file nor a folder is named ``backends``:
torch.compile skips every file whose path contains "triton/backends", which
"spp_triton/backends/..." would.)

The contract. A backend is a module with two functions::

    forward(feats, rois, roi_levels, spec, deterministic) -> (out, argmax)
    backward(grad_out, argmax, feats, rois, roi_levels, spec, deterministic) -> grads

* ``feats``: list of L tensors (N, C, H_l, W_l), one dtype and device, any strides (a
  backend may copy what it cannot read in place). In ``backward`` they carry shape,
  dtype and layout only (``op.py`` passes meta tensors; the device is grad_out's).
* ``rois``: (K, 5) floating (batch, x1, y1, x2, y2); ``roi_levels``: (K,) integer.
* ``spec``: ``geometry.PoolSpec`` (pyramid, mode, projection or the bilinear sampling
  options, scales).
* ``out``: (K, C, B) in the features' dtype; ``argmax``: (K, C, B) int32 in max mode:
  the flat index y * W_l + x of each bin's first maximal element on the RoI's level
  (cells), or the lattice index ty * (S r_x) + tx of its first maximal sample
  (bilinear); None in avg mode.
* ``grads``: L tensors shaped like ``feats``, their dtype, in ``memory_format(feats)``
  (channels-last when every level is; autograd then uses them without a copy),
  separate storages.
* ``deterministic``: bit-identical results run to run (both functions take it, so a
  backend whose forward is not deterministic can honour it too).
Arguments arrive checked (``checks.py``); semantics are those of ``spp_roi_pool``'s
docstring, and ``tests/reference.py`` is the judge.

Adding a backend:
  1. a subpackage ``spp_triton/<name>_backend/`` whose ``__init__`` exposes ``forward``
     and ``backward`` as above (its kernels and launchers in modules beside it);
  2. an entry in ``BACKENDS`` below (its dtypes, when it can run, whether "auto"
     picks it);
  3. the device its tests run on: ``BACKEND_DEVICES`` in ``tests/test_backends.py``
     (which then runs it on the shared cases against ``tests/reference.py``).
``op.py``, the argument checks and ``resolve_backend`` read the table; nothing else
changes.

Adding a pooling mode (a reduction over a bin's elements, like max and avg):
  1. a member of ``geometry.Mode`` (its value is what the kernels receive);
  2. its rule in ``tests/reference.py`` (``spp_reference`` and ``align_reference``);
  3. its branch in each backend: ``torch_backend/``: ``fallback_cells.py`` and
     ``fallback_align.py``, ``csrc/spp_cpu.h`` (the ``Mode`` enum) with
     ``csrc/spp_cpu_cells.cpp`` and ``csrc/spp_cpu_align.cpp``; ``triton_backend/``:
     ``cells_kernels.py`` and ``align_kernels.py`` (the ``MODE`` constexpr; the folds in
     ``shared_kernels.py``);
  4. its name in the tests' mode parameters (``tests/test_backends.py`` first).
The op schemas do not change: the Python op takes the mode's name, the C++ op its
integer value.

Adding a way to sample a bin (what ``sampling="bilinear"`` did; ``geometry.Sampling``):
  1. a member of ``geometry.Sampling``, its options in ``PoolSpec`` and in
     ``checks.check_sampling``, its rules in ``geometry.py`` and in
     ``spp_roi_pool``'s docstring;
  2. its reference in ``tests/reference.py`` (written without spp_triton code);
  3. its path in each backend: in ``torch_backend/`` a ``fallback_*.py`` module (called
     from ``fallback.py``) and a C++ file with its two ops (registered in
     ``csrc/spp_cpu_ops.cpp``); in ``triton_backend/`` a ``*_kernels.py`` family reusing
     ``shared_kernels``'s folds and scatter; the launchers (``launch.py``,
     ``cpp_kernel.py``) pick it by ``spec.sampling``;
  4. the op schema's arguments (``op.py``, the fake kernels, ``export/onnx_export.py``'s
     translation) and the modules' and plugin's options;
  5. its variants in ``devtools/compile_check.py`` and ``devtools/load_counter.py``
     (and the kernel file in compile_check's ``_INPUT_SOURCES``), its tests
     (``tests/test_spp_align.py`` is the model).
"""
from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def memory_format(feats) -> torch.memory_format:
    """The layout of the gradients (and the layout kernels read in place): channels-last
    when every level is channels-last contiguous and not every one is also NCHW-
    contiguous (a level that is both, such as a 1 x 1 map, reads the same either way);
    NCHW-contiguous otherwise."""
    cl = all(f.is_contiguous(memory_format=torch.channels_last) for f in feats)
    return torch.channels_last if cl and not all(f.is_contiguous() for f in feats) else torch.contiguous_format


@functools.cache  # a failed import is not retried on every call
def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_unusable(device: torch.device) -> Optional[str]:
    if not _triton_importable():
        return "backend='triton' needs the triton package (pip install triton)"
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return (f"backend='triton' needs CUDA tensors (features are on {device}); "
                "set TRITON_INTERPRET=1 to run the kernels on CPU, slowly")
    return None


@dataclass(frozen=True)
class Backend:
    """One entry of the table.

    Attributes:
        name: the value of ``backend=``.
        module: the module implementing the contract, imported on first use (so
            ``import spp_triton`` needs only torch).
        dtypes: feature dtypes it takes.
        max_levels: most feature levels per call (None: no limit).
        max_grid: largest pyramid entry n it takes (None: no limit).
        auto: whether ``backend="auto"`` picks it for a device (first match wins).
        unusable: why it cannot run on a device, or None.
    """

    name: str
    module: str
    dtypes: tuple[torch.dtype, ...]
    max_levels: Optional[int]
    max_grid: Optional[int]
    auto: Callable[[torch.device], bool]
    unusable: Callable[[torch.device], Optional[str]]

    def impl(self):
        return importlib.import_module(self.module)


BACKENDS: dict[str, Backend] = {
    # Triton keeps each grid's accumulator in registers: grids up to 16.
    "triton": Backend("triton", "spp_triton.triton_backend", FLOAT_DTYPES, max_levels=8, max_grid=16,
                      auto=lambda device: device.type == "cuda" and _triton_importable(),
                      unusable=_triton_unusable),
    "torch": Backend("torch", "spp_triton.torch_backend", FLOAT_DTYPES + (torch.float64,), max_levels=None,
                     max_grid=None,
                     auto=lambda device: True, unusable=lambda device: None),
}
CHOICES = ("auto", *BACKENDS)


def check_name(backend: str) -> None:
    if backend not in CHOICES:
        raise ValueError(f"backend must be one of {CHOICES}, got {backend!r}")


def resolve_backend(backend: str, device: torch.device) -> Backend:
    """The table's entry for ``backend``; "auto" is the first entry whose ``auto`` picks
    ``device`` (Triton for CUDA tensors when triton imports, the torch backend
    otherwise). ValueError when the backend cannot run on ``device``."""
    check_name(backend)
    if backend == "auto":
        return next(b for b in BACKENDS.values() if b.auto(device))
    entry = BACKENDS[backend]
    reason = entry.unusable(device)
    if reason:
        raise ValueError(reason)
    return entry
