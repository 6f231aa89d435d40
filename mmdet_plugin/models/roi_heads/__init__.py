from .bbox_heads import SPPBBoxHead
from .roi_extractors import SPPRoIExtractor, WarpedRegionExtractor

__all__ = ["SPPBBoxHead", "SPPRoIExtractor", "WarpedRegionExtractor"]
