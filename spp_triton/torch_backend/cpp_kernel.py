"""The C++ CPU kernels (``csrc/``): their loader and the backend contract on top.

The kernels are built on first use with ``torch.utils.cpp_extension.load`` (-O3 -fopenmp
-ffp-contract=off, plus -mavx2 -mfma on CPUs that have them; gcc + ninja, offline;
20-60 s once, then torch's extension cache reuses them, keyed by the sources' hash) and
registered as ``torch.ops.spp_triton_cpu.{forward,backward}`` (``sampling="cells"``,
``csrc/spp_cpu_cells.cpp``) and ``align_{forward,backward}`` (``sampling="bilinear"``,
``csrc/spp_cpu_align.cpp``); shared parts in ``csrc/spp_cpu.h``, registration in
``csrc/spp_cpu_ops.cpp``. -ffp-contract=off keeps the compiler from fusing a multiply
and an add into one rounding, so bilinear samples round as in the other backends. ``available()`` says whether it built;
a failure is reported once, as a RuntimeWarning, and ``dispatch`` then uses the
pure-PyTorch path.

``forward``/``backward`` follow the backend contract (``registry.py``) for CPU tensors.
The windows come from ``geometry.window_table`` (cells) or ``geometry.align_table``
(bilinear: window, samples per bin), so those rules are defined in Python only; the C++
code applies the bin rule, or the lattice and bilinear rules. Backward is always deterministic (each channel's
gradient planes belong to one thread, which adds the RoIs in order). Design and measured
figures: the comments in ``csrc/*.cpp`` and ``benchmarks/results/``.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

from ..registry import memory_format
from ..geometry import Mode, PoolSpec, align_table, window_table

# Largest grid size the kernel takes (it keeps bin bounds on the stack).
MAX_GRID = 64

_lock = threading.Lock()
_state: bool | None = None  # None: not tried yet
_error: str | None = None


def _simd_flags() -> list[str]:
    """AVX2 + FMA when this CPU has them (the kernel is built on the machine that runs
    it): the channel loops then take 8 floats at a time instead of SSE2's 4, ~1.4x."""
    if platform.machine().lower() in ("x86_64", "amd64") and \
            torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        return ["-mavx2", "-mfma"]
    return []


def available() -> bool:
    """Builds/loads the kernel once per process; False (and one warning) on failure."""
    global _state, _error
    with _lock:
        if _state is not None:
            return _state
        try:
            from torch.utils import cpp_extension

            path = os.environ.get("PATH", "")
            venv_bin = os.path.dirname(sys.executable)
            if shutil.which("ninja") is None and venv_bin not in path.split(os.pathsep):
                os.environ["PATH"] = venv_bin + os.pathsep + path  # the venv's ninja
            csrc = Path(__file__).resolve().parent / "csrc"
            sources = [str(csrc / f) for f in ("spp_cpu_cells.cpp", "spp_cpu_align.cpp", "spp_cpu_ops.cpp")]
            cpp_extension.load(name="spp_triton_cpu", sources=sources,
                               extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off", *_simd_flags()],
                               extra_ldflags=["-fopenmp"], extra_include_paths=[str(csrc)],
                               is_python_module=False, verbose=False)
            torch.ops.spp_triton_cpu.forward  # noqa: B018  (raises if not registered)
            _state = True
        except Exception as exc:  # no compiler, no ninja, read-only cache, ...
            _error = f"{type(exc).__name__}: {exc}"
            warnings.warn("spp_triton: could not build the C++ CPU kernel "
                          f"({_error.splitlines()[0][:300]}); using the much slower "
                          "pure-PyTorch path", RuntimeWarning, stacklevel=3)
            _state = False
        return _state


def takes(device: torch.device, spec: PoolSpec) -> bool:
    """Whether the kernel can run this call (CPU tensors, grids up to ``MAX_GRID``)."""
    return device.type == "cpu" and max(spec.pyramid) <= MAX_GRID


def _require(device: torch.device, spec: PoolSpec) -> None:
    if not takes(device, spec):
        raise ValueError(f"the C++ kernel takes CPU tensors and grids up to {MAX_GRID}; "
                         f"got {device} and pyramid {spec.pyramid}")
    if not available():
        raise RuntimeError(f"spp_triton: the C++ CPU kernel is unavailable: {_error}")


def forward(feats, rois, roi_levels, spec: PoolSpec, deterministic: bool = False):
    """The backend contract's forward (``registry.py``), for CPU tensors. Features are
    read in place in NCHW or channels-last layout (others are made contiguous)."""
    _require(feats[0].device, spec)
    n_img, c = feats[0].shape[:2]
    if rois.shape[0] == 0:
        empty = feats[0].new_empty(0, c, spec.num_bins)
        return empty, (empty.to(torch.int32) if spec.mode == Mode.MAX else None)
    cl = memory_format(feats) == torch.channels_last
    if spec.bilinear:
        meta, box = align_table(rois, roi_levels, spec, n_img, len(feats))
        out, argmax = torch.ops.spp_triton_cpu.align_forward(list(feats), meta, box, list(spec.pyramid),
                                                             list(spec.sampled_grids), spec.fine_grid,
                                                             int(spec.mode), cl)
        return out, (argmax if spec.mode == Mode.MAX else None)
    win = window_table([tuple(f.shape[2:]) for f in feats], rois, roi_levels, spec, n_img)
    out, argmax = torch.ops.spp_triton_cpu.forward(list(feats), win, list(spec.pyramid), spec.fine_grid,
                                                   int(spec.mode), cl)
    return out, (argmax if spec.mode == Mode.MAX else None)


def backward(grad_out, argmax, feats, rois, roi_levels, spec: PoolSpec, deterministic: bool = False):
    """The backend contract's backward (``registry.py``); always deterministic."""
    _require(grad_out.device, spec)
    n_img, c = feats[0].shape[:2]
    dtype = feats[0].dtype
    shapes = [tuple(f.shape[2:]) for f in feats]
    if rois.shape[0] == 0:
        return [torch.empty(n_img, c, h, w, dtype=dtype, memory_format=memory_format(feats)).zero_()
                for h, w in shapes]
    am = argmax if spec.mode == Mode.MAX else torch.empty(0, dtype=torch.int32)
    level_hw = [d for s in shapes for d in s]
    cl = memory_format(feats) == torch.channels_last
    if spec.bilinear:
        meta, box = align_table(rois, roi_levels, spec, n_img, len(feats))
        return list(torch.ops.spp_triton_cpu.align_backward(grad_out.to(dtype), am, meta, box, level_hw, n_img,
                                                            list(spec.pyramid), list(spec.sampled_grids),
                                                            spec.fine_grid, int(spec.mode), cl))
    win = window_table(shapes, rois, roi_levels, spec, n_img)
    return list(torch.ops.spp_triton_cpu.backward(grad_out.to(dtype), am, win, level_hw, n_img, list(spec.pyramid),
                                                  int(spec.mode), cl))
