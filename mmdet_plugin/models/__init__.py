"""Model parts, laid out as ``mmdet.models``."""
from .detectors import MultiScaleSPPNet
from .roi_heads import SPPBBoxHead, SPPRoIExtractor

__all__ = ["MultiScaleSPPNet", "SPPBBoxHead", "SPPRoIExtractor"]
