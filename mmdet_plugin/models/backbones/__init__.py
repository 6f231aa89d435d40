from .efficientnet_lite import EfficientNetLite

__all__ = ["EfficientNetLite"]
