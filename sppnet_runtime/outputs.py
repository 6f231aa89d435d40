"""What a detector's run writes per image, shared by ``tools/infer.py`` (mmdet) and
``python -m sppnet_runtime`` (ONNX Runtime), with numpy and Pillow only.

* ``prediction_record``: mmdet's ``DetInferencer`` JSON (``labels``, ``scores``, ``bboxes``
  as x1, y1, x2, y2 in the image's pixels) plus ``classes`` (label names) and ``image``.
* ``draw_record``: the image with the boxes above a score threshold, their class and score.
* ``list_images`` and ``vis_name``: which files of IMAGE_OR_FOLDER run, and the picture's name.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(path: Path) -> list[Path]:
    """The image (by suffix) or the folder's images, sorted; ValueError naming IMAGE_OR_FOLDER."""
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"IMAGE_OR_FOLDER {path} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [path]
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"IMAGE_OR_FOLDER {path} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        return images
    raise ValueError(f"IMAGE_OR_FOLDER {path} does not exist")


def vis_name(path: Path) -> str:
    """The picture's file name: the image's, as PNG for a TIFF."""
    return path.with_suffix(".png").name if path.suffix.lower() in (".tif", ".tiff") else path.name


def shrink(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(``rgb`` resized so that its longer side is at most ``max_side``, the scale used)."""
    from PIL import Image

    scale = min(1.0, max_side / max(rgb.shape[:2]))
    if scale == 1.0:
        return rgb, scale
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size)), scale


def prediction_record(pred: dict, classes, image: Path) -> dict:
    """The JSON-ready dict of one image's detections."""
    labels = [int(v) for v in pred["labels"]]
    return dict(labels=labels, scores=[float(v) for v in pred["scores"]],
                bboxes=[[float(v) for v in box] for box in np.asarray(pred["bboxes"]).reshape(-1, 4)],
                classes=[classes[i] if 0 <= i < len(classes) else str(i) for i in labels], image=str(image))


def write_json(record: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def draw_record(rgb: np.ndarray, record: dict, path: Path, score_thr: float, palette=None,
                scale: float = 1.0) -> Path:
    """Draws the record's boxes scoring above ``score_thr`` on a copy of ``rgb`` ((H, W, 3)
    uint8, the image shrunk by ``scale`` if it was) and saves it to ``path``."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(rgb)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(2 * max(canvas.size) / 1000))
    for box, score, label, name in zip(record["bboxes"], record["scores"], record["labels"], record["classes"]):
        if score <= score_thr:
            continue
        colour = tuple(palette[label % len(palette)]) if palette else (255, 64, 64)
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        draw.text((x1 + 2, y1 + 1), f"{name} {score:.2f}", fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
