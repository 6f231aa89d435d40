from .spp_bbox_head import SPPBBoxHead

__all__ = ["SPPBBoxHead"]
