"""MMDetection 3.x integration of spatial-pyramid RoI pooling.

Configs load it with ``custom_imports = dict(imports=['mmdet_plugin'])``. Importing it
registers ``SPPRoIExtractor``, ``SPPBBoxHead`` and ``MultiScaleSPPNet`` (mmdet ``MODELS``),
``DataCheckedRunner`` (``RUNNERS``), ``ChannelsLastHook`` (``HOOKS``) and
``CheckedVOCDataset`` (``DATASETS``), counts ``spp_roi_pool`` in MMEngine's FLOP analysis,
and makes MMEngine's checkpoint loading work under torch >= 2.6 without unpickling
arbitrary code (see ``checkpoint_safety``).
"""
from . import checkpoint_safety

checkpoint_safety.install()

from . import flops  # noqa: E402,F401  (counts spp_roi_pool in mmengine's FLOP analysis)
from .bbox_head import SPPBBoxHead  # noqa: E402
from .channels_last import ChannelsLastHook  # noqa: E402
from .multiscale_detector import MultiScaleSPPNet  # noqa: E402
from .roi_extractor import SPPRoIExtractor  # noqa: E402
from .runner import DataCheckedRunner  # noqa: E402
from .voc_dataset import CheckedVOCDataset  # noqa: E402

__all__ = ["SPPRoIExtractor", "SPPBBoxHead", "MultiScaleSPPNet", "DataCheckedRunner", "CheckedVOCDataset",
           "ChannelsLastHook", "checkpoint_safety"]
