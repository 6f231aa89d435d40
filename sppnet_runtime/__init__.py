"""Run a detector exported whole (``tools/export_onnx.py CONFIG CHECKPOINT --whole``) with
ONNX Runtime, numpy and Pillow only: no torch, mmcv or mmdet. To deploy, copy this folder
beside the .onnx file and ``pip install onnxruntime numpy pillow``.

    python -m sppnet_runtime model.onnx IMAGE_OR_FOLDER [--out-dir DIR] [--score-thr 0.3]

or from Python::

    from sppnet_runtime import OnnxDetector, load_image
    detector = OnnxDetector("model.onnx")
    pred = detector(load_image("photo.jpg"))  # {"labels", "scores", "bboxes"} in the image's pixels
    # a large photograph, in windows at its own resolution (the config's, stored in the model)
    pred = detector.detect_sliced(load_image("orthophoto.tif"), detector.slicing)

The model file carries what the test pipeline did before the graph (the resize rule, the
padding divisor), the class names and the config's windows for large images
(``sliced_infer_cfg``), as ONNX metadata. ``windows`` and ``merge_detections`` are the
sliced inference of ``tools/infer.py`` (mmdet_plugin imports them from here).
"""
from .detector import ImageReadError, ModelFileError, OnnxDetector, load_image

__all__ = ["OnnxDetector", "load_image", "ImageReadError", "ModelFileError"]
