from .spp_roi_extractor import SPPRoIExtractor
from .warped_region_extractor import WarpedRegionExtractor

__all__ = ["SPPRoIExtractor", "WarpedRegionExtractor"]
