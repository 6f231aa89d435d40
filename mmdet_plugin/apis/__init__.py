"""Inference on images of any size, laid out as ``mmdet.apis``: ``SlicedInferencer`` (native-
resolution windows, batched, merged across seams), ``merge_detections`` (from ``sppnet_runtime``, shared with the ONNX runtime) and the writers of
``tools/infer.py``'s outputs (JSON in pixels, pictures, GeoJSON in map coordinates)."""
from sppnet_runtime.merge_detections import MERGE_RULES, merge_detections
from sppnet_runtime.windows import SliceSettings, window_grid

from .outputs import draw_boxes, prediction_record, write_geojson, write_json
from .sliced_inference import SlicedInferencer

__all__ = ["MERGE_RULES", "merge_detections", "SlicedInferencer", "SliceSettings", "window_grid", "draw_boxes",
           "prediction_record", "write_geojson", "write_json"]
