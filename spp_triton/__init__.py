"""Spatial-pyramid RoI pooling (SPPNet) in Triton, with an exact PyTorch path.

Importing this package needs only torch: triton is imported when the Triton backend
is first used. ``import spp_triton`` registers ``torch.ops.spp_triton.spp_roi_pool``.

* ``spp_roi_pool`` / ``SpatialPyramidRoIPool``: a pyramid per region of interest.
* ``spatial_pyramid_pool`` / ``SpatialPyramidPool``: a pyramid per whole map (the
  paper's SPP layer for images of any size), through the same operator.
* ``spp_triton.onnx_export``: the operator's exact ONNX translation (imported on its
  own; needs the ``[export]`` extra).
"""
from .functional import spp_roi_pool
from .module import SpatialPyramidRoIPool
from .whole_image import SpatialPyramidPool, spatial_pyramid_pool

__all__ = ["spp_roi_pool", "SpatialPyramidRoIPool", "spatial_pyramid_pool", "SpatialPyramidPool"]
__version__ = "0.1.0"
