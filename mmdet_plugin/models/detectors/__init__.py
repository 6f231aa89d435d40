from .multiscale_sppnet import MultiScaleSPPNet

__all__ = ["MultiScaleSPPNet"]
