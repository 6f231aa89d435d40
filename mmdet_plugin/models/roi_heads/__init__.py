from .bbox_heads import SPPBBoxHead
from .roi_extractors import SPPRoIExtractor

__all__ = ["SPPBBoxHead", "SPPRoIExtractor"]
