from .multiscale_sppnet import MultiScaleSPPNet
from .rcnn import RCNN

__all__ = ["MultiScaleSPPNet", "RCNN"]
