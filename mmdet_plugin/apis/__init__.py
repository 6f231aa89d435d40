"""Inference on images of any size, laid out as ``mmdet.apis``: ``SlicedInferencer`` (native-
resolution windows, batched, merged across seams), ``merge_detections`` and the writers of
``tools/infer.py``'s outputs (JSON in pixels, pictures, GeoJSON in map coordinates)."""
from .merge_detections import MERGE_RULES, merge_detections
from .outputs import draw_boxes, prediction_record, write_geojson, write_json
from .sliced_inference import SlicedInferencer, SliceSettings, window_grid

__all__ = ["MERGE_RULES", "merge_detections", "SlicedInferencer", "SliceSettings", "window_grid", "draw_boxes",
           "prediction_record", "write_geojson", "write_json"]
