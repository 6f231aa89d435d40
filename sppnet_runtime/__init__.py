"""Run a detector exported whole (``tools/export_onnx.py CONFIG CHECKPOINT --whole``) with
ONNX Runtime, numpy and Pillow only: no torch, mmcv or mmdet. To deploy, copy this folder
beside the .onnx file and ``pip install onnxruntime numpy pillow``.

    python -m sppnet_runtime model.onnx IMAGE_OR_FOLDER [--out-dir DIR] [--score-thr 0.3]

or from Python::

    from sppnet_runtime import OnnxDetector, load_image
    detector = OnnxDetector("model.onnx")
    pred = detector(load_image("photo.jpg"))  # {"labels", "scores", "bboxes"} in the image's pixels

The model file carries what the test pipeline did before the graph (the resize rule, the
padding divisor) and the class names, as ONNX metadata.
"""
from .detector import ImageReadError, ModelFileError, OnnxDetector, load_image

__all__ = ["OnnxDetector", "load_image", "ImageReadError", "ModelFileError"]
