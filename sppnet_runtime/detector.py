"""``OnnxDetector``: image -> detections with ONNX Runtime (see the package docstring)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from imagery.read import ArrayImage, Image
from imagery.windows import SliceSettings, detect_in_windows

from .resize import rescale_size, resize_bilinear

FORMAT = "sppnet-whole-detector/1"


class ModelFileError(ValueError):
    """The file is not a detector exported whole by tools/export_onnx.py --whole."""


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
        # Idle pool threads sleep, not spin: on 2 threads 0.71x the time with other jobs on the cores, 0.98x
        # without (benchmarks/results/onnx_tuning.md, docs/deploy.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({err})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a whole detector exported by tools/export_onnx.py --whole "
                                 f"(metadata format {meta.get('format')!r}, expected {FORMAT!r})")
        try:
            self.classes = json.loads(meta["classes"])
            self.resize = json.loads(meta["resize"])
            self.pad_divisor = json.loads(meta["pad_size_divisor"])
            self.score_thr = json.loads(meta["score_thr"])
        except KeyError as err:
            raise ModelFileError(f"{path}: its metadata lacks {err.args[0]!r}: export it again with "
                                 "tools/export_onnx.py --whole") from None
        self.palette = json.loads(meta["palette"]) if "palette" in meta else None
        # Files exported before these keys have none: no windows, no known cap.
        slicing = json.loads(meta.get("slicing", "null"))
        self.slicing = SliceSettings(**slicing) if slicing else None
        cap = json.loads(meta.get("max_per_img", "null"))
        self.max_per_img = cap if cap and cap > 0 else None

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

    def detect_sliced(self, image: np.ndarray | Image, settings: SliceSettings | None, progress=None) -> dict:
        """Detections on an image of any size in windows at its own resolution, exactly as
        ``tools/infer.py`` cuts and merges them (``imagery.windows.detect_in_windows``): an
        image no larger than a window runs as one window, unresized; ``settings`` None runs
        it whole through ``__call__`` (resized by the model's rule).

        Args:
            image: (H, W, 3) uint8 RGB, or an ``imagery.read.Image`` (a GeoTIFF is then read
                window by window, and windows without data are skipped).
            settings: the windows (``self.slicing`` is the model's default).
            progress: called as ``progress(done, total)`` after each window, or None.
        Returns:
            ``__call__``'s dict plus ``windows`` (run), ``skipped`` (without data),
            ``capped`` (windows that returned ``max_per_img`` boxes) and ``seconds``."""
        if isinstance(image, np.ndarray):
            image = ArrayImage(image)
        return detect_in_windows(image, settings, self.detect, progress=progress, max_per_window=self.max_per_img)

    def detect(self, windows: list[np.ndarray], native: bool) -> list[dict]:
        """``__call__`` on each window: the ``detect`` of ``imagery.windows.detect_in_windows``
        (``workers.WindowPool.detect`` is the same, over processes)."""
        return [self(w, native) for w in windows]
