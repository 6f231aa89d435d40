"""Spatial-pyramid RoI pooling (SPPNet) in Triton, with an exact PyTorch path.

Importing this package needs only torch: triton is imported when the Triton backend
is first used. ``import spp_triton`` registers ``torch.ops.spp_triton.spp_roi_pool``.
"""
from .functional import spp_roi_pool
from .module import SpatialPyramidRoIPool

__all__ = ["spp_roi_pool", "SpatialPyramidRoIPool"]
__version__ = "0.1.0"
