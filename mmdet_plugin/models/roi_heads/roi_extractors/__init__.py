from .spp_roi_extractor import SPPRoIExtractor

__all__ = ["SPPRoIExtractor"]
