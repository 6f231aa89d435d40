"""Run a detector exported whole (``tools/export_onnx.py CONFIG CHECKPOINT --whole``) with
ONNX Runtime, numpy and Pillow only: no torch, mmcv or mmdet. To deploy, copy this folder
and ``imagery/`` (reading, windows, merging, writing) beside the .onnx file and
``pip install onnxruntime numpy pillow`` (``rasterio`` too, to read GeoTIFFs window by
window and write GeoJSON).

    python -m sppnet_runtime model.onnx IMAGE_OR_FOLDER [--out-dir DIR] [--score-thr 0.3]

or from Python::

    from imagery import load_image, open_image
    from sppnet_runtime import OnnxDetector
    detector = OnnxDetector("model.onnx")
    pred = detector(load_image("photo.jpg"))  # {"labels", "scores", "bboxes"} in the image's pixels
    # a large photograph, in windows at its own resolution (the config's, stored in the model)
    with open_image("orthophoto.tif") as image:
        pred = detector.detect_sliced(image, detector.slicing)

The model file carries what the test pipeline did before the graph (the resize rule, the
padding divisor), the class names, the cap on boxes per image and the config's windows
for large images (``sliced_infer_cfg``), as ONNX metadata. This package is "model in,
boxes out"; images, windows and outputs are ``imagery``'s, as for ``tools/infer.py``.
"""
from imagery.read import ImageReadError, load_image

from .detector import ModelFileError, OnnxDetector

__all__ = ["OnnxDetector", "load_image", "ImageReadError", "ModelFileError"]
