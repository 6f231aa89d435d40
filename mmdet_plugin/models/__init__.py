"""Model parts, laid out as ``mmdet.models``."""
from .backbones import EfficientNetLite
from .detectors import RCNN, MultiScaleSPPNet
from .roi_heads import SPPBBoxHead, SPPRoIExtractor, WarpedRegionExtractor

__all__ = ["EfficientNetLite", "MultiScaleSPPNet", "RCNN", "SPPBBoxHead", "SPPRoIExtractor", "WarpedRegionExtractor"]
