"""MMDetection 3.x integration of spatial-pyramid RoI pooling.

Configs load it with ``custom_imports = dict(imports=['mmdet_plugin'])``. Importing it
registers ``SPPRoIExtractor``, ``SPPBBoxHead``, ``MultiScaleSPPNet``, the R-CNN baseline
(``RCNN`` with ``WarpedRegionExtractor``) and the pretrained ``EfficientNetLite`` backbone
(mmdet ``MODELS``),
``DataCheckedRunner`` (``RUNNERS``), ``ChannelsLastHook`` (``HOOKS``), ``VOCSizeMetric``
(``METRICS``: VOC AP per object-size bin) and
``CheckedVOCDataset`` (``DATASETS``), counts ``spp_roi_pool`` in MMEngine's FLOP analysis,
and makes MMEngine's checkpoint loading work under torch >= 2.6 without unpickling
arbitrary code (see ``engine.checkpoint_safety``).

The layout mirrors mmdet's own: ``models/`` (``backbones``, ``detectors``, ``roi_heads/roi_extractors``,
``roi_heads/bbox_heads``, ``utils``), ``datasets/`` (the checked VOC dataset, the
synthetic data set's generator, tiling, large-image reading), ``apis/`` (sliced inference on
images of any size, ``tools/infer.py``'s outputs), ``engine/`` (the runner, ``hooks``, checkpoint loading,
FLOP counting).
"""
from .engine import checkpoint_safety

checkpoint_safety.install()

from .datasets import CheckedVOCDataset  # noqa: E402
from .engine import ChannelsLastHook, DataCheckedRunner, flops  # noqa: E402,F401  (flops: the FLOP handle)
from .evaluation import VOCSizeMetric  # noqa: E402
from .models import RCNN, EfficientNetLite, MultiScaleSPPNet, SPPBBoxHead, SPPRoIExtractor, WarpedRegionExtractor  # noqa: E402,E501

__all__ = ["EfficientNetLite", "SPPRoIExtractor", "SPPBBoxHead", "MultiScaleSPPNet", "RCNN", "WarpedRegionExtractor", "DataCheckedRunner", "CheckedVOCDataset",
           "ChannelsLastHook", "VOCSizeMetric", "checkpoint_safety"]
