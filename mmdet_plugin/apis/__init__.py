"""Inference on images of any size, laid out as ``mmdet.apis``: ``SlicedInferencer`` runs an
mmdet detector through ``imagery``'s windows (shared with the ONNX runtime), which also
reads the images and writes the outputs of ``tools/infer.py``."""
from imagery.merge import MERGE_RULES, merge_detections
from imagery.windows import SliceSettings, window_grid

from .sliced_inference import SlicedInferencer

__all__ = ["MERGE_RULES", "merge_detections", "SlicedInferencer", "SliceSettings", "window_grid"]
