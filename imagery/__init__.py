"""Images of any size for a detector, without torch: read with mmdet's pixels, cut into
windows, boxes merged across seams, outputs written. ``tools/infer.py`` (mmdet) and
``python -m sppnet_runtime`` (ONNX Runtime) share it, as do the data tools that cut
photographs into training tiles (``mmdet_plugin.datasets.tile_voc``, ``trees``).

* ``read``: ``open_image`` / ``load_image`` (Pillow; TIFFs window by window through
  rasterio), ``ImageReadError``.
* ``windows``: ``SliceSettings``, ``choose_slicing``, ``window_grid`` and
  ``detect_in_windows``, the one loop over a large image's windows.
* ``merge``: ``merge_detections``, boxes of different windows merged (nms, ios, join).
* ``outputs``: the JSON, pictures and GeoJSON written per image.
* ``cli``: the options and the per-image loop both command-line tools share.

Needs numpy and Pillow; rasterio where installed.
"""
from .merge import MERGE_RULES, merge_detections
from .read import ArrayImage, Image, ImageReadError, load_image, open_image
from .windows import SliceSettings, choose_slicing, detect_in_windows, window_grid

__all__ = ["MERGE_RULES", "merge_detections", "ArrayImage", "Image", "ImageReadError", "load_image", "open_image",
           "SliceSettings", "choose_slicing", "detect_in_windows", "window_grid"]
