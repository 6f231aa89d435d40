"""Spatial-pyramid RoI pooling (SPPNet) in Triton, with an exact PyTorch path.

Importing this package needs only torch: triton is imported when the Triton backend
is first used. ``import spp_triton`` registers ``torch.ops.spp_triton.spp_roi_pool``.

* ``spp_roi_pool`` / ``SpatialPyramidRoIPool``: a pyramid per region of interest.
* ``spatial_pyramid_pool`` / ``SpatialPyramidPool``: a pyramid per whole map (the
  paper's SPP layer for images of any size), through the same operator.
* ``spp_triton.export.onnx_export``: the operator's exact ONNX translation (imported on its
  own; needs the ``[export]`` extra).

Layout: the public API and the backend contract at the top (``functional``, ``module``,
``whole_image``, ``op``, ``registry``, ``checks``, ``geometry``); one subpackage per
backend (``triton_backend``, ``torch_backend``: C++ CPU kernel and pure-PyTorch fallback);
``export``; ``devtools`` (compile_check, load_counter, selftest, workloads).
"""
from .functional import spp_roi_pool
from .module import SpatialPyramidRoIPool
from .whole_image import SpatialPyramidPool, spatial_pyramid_pool

__all__ = ["spp_roi_pool", "SpatialPyramidRoIPool", "spatial_pyramid_pool", "SpatialPyramidPool"]
__version__ = "0.1.0"

# Paths that earlier releases documented and that moved into subpackages. A module-level
# __getattr__ (PEP 562) keeps them importable without importing their extras eagerly.
_MOVED = {"onnx_export": "spp_triton.export.onnx_export"}


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'spp_triton' has no attribute {name!r}")
