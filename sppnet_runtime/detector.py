"""``OnnxDetector``: image -> detections with ONNX Runtime (see the package docstring)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .merge_detections import merge_detections
from .resize import rescale_size, resize_bilinear
from .windows import SliceSettings, window_grid

FORMAT = "sppnet-whole-detector/1"


class ModelFileError(ValueError):
    """The file is not a detector exported whole by tools/export_onnx.py --whole."""


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names it."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file, decoded by Pillow (as mmcv's OpenCV decodes
    JPEG and PNG: the same pixels on the files tested)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty")
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageReadError(f"{path}: cannot read the image ({err})") from None
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageReadError(f"{path}: the image has no pixels")
    return rgb


def pad_to(image: np.ndarray, divisor: int) -> np.ndarray:
    """Zero-pads (H, W, 3) at the bottom and right to multiples of ``divisor``."""
    h, w = image.shape[:2]
    out = np.zeros((-(-h // divisor) * divisor, -(-w // divisor) * divisor, 3), np.uint8)
    out[:h, :w] = image
    return out


class OnnxDetector:
    """A whole exported detector in an ONNX Runtime session.

    Args:
        path: the .onnx file written by ``tools/export_onnx.py --whole``.
        threads: ONNX Runtime's intra-op threads (None: its default, every core).
    Attributes:
        classes: label names; resize: the test pipeline's resize rule; score_thr: the
        config's rcnn score threshold (boxes below it are not output); slicing: the
        config's windows for large images (``sliced_infer_cfg``), or None.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({err})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a whole detector exported by tools/export_onnx.py --whole "
                                 f"(metadata format {meta.get('format')!r}, expected {FORMAT!r})")
        self.classes = json.loads(meta["classes"])
        self.resize = json.loads(meta["resize"])
        self.pad_divisor = json.loads(meta["pad_size_divisor"])
        self.score_thr = json.loads(meta["score_thr"])
        self.palette = json.loads(meta["palette"]) if "palette" in meta else None
        slicing = json.loads(meta.get("slicing", "null"))  # files exported before slicing have none
        self.slicing = SliceSettings(**slicing) if slicing else None

    def prepare(self, rgb: np.ndarray, native: bool = False) -> dict[str, np.ndarray]:
        """The graph's inputs for an (H, W, 3) uint8 RGB image: the test pipeline's resize
        (none if ``native``: a window of sliced inference), the padding, the image size and
        mmdet's scale factor."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        new_w, new_h = (w, h) if native else rescale_size(w, h, self.resize)
        resized = rgb if (new_w, new_h) == (w, h) else resize_bilinear(rgb, new_w, new_h)
        return {"image": pad_to(resized, self.pad_divisor) if self.pad_divisor > 1 else np.ascontiguousarray(resized),
                "image_size": np.array([new_h, new_w], np.int64),
                "scale_factor": np.array([new_w / w, new_h / h], np.float64)}

    def __call__(self, rgb: np.ndarray, native: bool = False) -> dict[str, np.ndarray]:
        """{"labels" (D,) int64, "scores" (D,) float32, "bboxes" (D, 4) float32 x1, y1,
        x2, y2 in the image's pixels}, by descending score: the whole image, resized as the
        config's test pipeline resizes it (as mmdet's ``inference_detector``), or at its own
        resolution if ``native``."""
        boxes, scores, labels = self.session.run(None, self.prepare(rgb, native))
        return {"labels": labels, "scores": scores, "bboxes": boxes}

    def detect_sliced(self, rgb: np.ndarray, settings: SliceSettings | None, progress=None) -> dict:
        """Detections on a large image in windows at its own resolution, as
        ``mmdet_plugin.apis.SlicedInferencer`` (``tools/infer.py``) does: ``settings.tile``
        px windows every ``tile - overlap`` px (the last ones ending at the edge), each
        window's boxes moved into the image's pixels, merged across seams by
        ``settings.merge``. An image no larger than a tile, or ``settings`` None, runs whole
        through ``__call__``.

        Args:
            rgb: (H, W, 3) uint8 RGB.
            settings: the windows (``self.slicing`` is the model's default).
            progress: called as ``progress(done, total)`` after each window, or None.
        Returns:
            ``__call__``'s dict plus ``windows``, the number of windows run."""
        h, w = rgb.shape[:2]
        if settings is None or settings.fits_one_window(w, h):
            return dict(self(rgb), windows=1)
        windows = window_grid(w, h, settings.tile, settings.overlap)
        parts = []
        for k, (x0, y0, ww, wh) in enumerate(windows, 1):
            pred = self(rgb[y0:y0 + wh, x0:x0 + ww], native=True)  # prepare copies the view once (padding)
            pred["bboxes"] = pred["bboxes"] + np.array([x0, y0, x0, y0], np.float32)
            parts.append(pred)
            if progress is not None:
                progress(k, len(windows))
        boxes, scores, labels = merge_detections(np.concatenate([p["bboxes"] for p in parts]).reshape(-1, 4),
                                                 np.concatenate([p["scores"] for p in parts]),
                                                 np.concatenate([p["labels"] for p in parts]),
                                                 settings.merge, settings.merge_thr)
        return {"labels": labels, "scores": scores, "bboxes": boxes, "windows": len(windows)}
