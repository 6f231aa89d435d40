"""Model parts, laid out as ``mmdet.models``."""
from .backbones import EfficientNetLite
from .detectors import MultiScaleSPPNet
from .roi_heads import SPPBBoxHead, SPPRoIExtractor

__all__ = ["EfficientNetLite", "MultiScaleSPPNet", "SPPBBoxHead", "SPPRoIExtractor"]
