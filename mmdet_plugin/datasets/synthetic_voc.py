"""A small, deterministic VOC-format detection data set for the demo and the tests.

Five shape classes whose identity is the outline, not the colour, size or texture:
objects span 12 to 150 px and aspect ratios 1:3 to 3:1, on cluttered textured
backgrounds with unlabelled distractors, and later objects partly occlude earlier
ones (an object less than 40 % visible is marked difficult, which the VOC metric
ignores). Output layout is VOC's:

    ROOT/VOCsynth/Annotations/*.xml
    ROOT/VOCsynth/JPEGImages/*.jpg
    ROOT/VOCsynth/ImageSets/Main/{trainval,test}.txt
    ROOT/VOCsynth/ImageSets/Main/{train,val}.txt    (trainval split: its last fifth is val)

(The folder is not called VOC2007: mmdet's VOC metric would then print VOC's class names.)

Every image is drawn from its own RNG seeded by (seed, index), so the data set is the
same on every machine. Usage: ``python -m mmdet_plugin.datasets.synthetic_voc data/synth_voc``.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("ellipse", "rectangle", "triangle", "cross", "ring")
IMAGE_SIZE = (256, 256)  # width, height
MIN_VISIBLE = 0.4


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """A random colour texture: noise at a random scale, optionally striped."""
    cells = rng.integers(2, 16)
    noise = rng.random((cells, cells, 3))
    noise = np.asarray(Image.fromarray((noise * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                       dtype=np.float32) / 255
    tex = base[None, None, :] * (0.6 + 0.4 * noise)
    if rng.random() < 0.5:
        period = rng.uniform(3, 14)
        angle = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        stripes = 0.5 + 0.5 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
        tex = tex * (0.75 + 0.25 * stripes[..., None])
    return np.clip(tex, 0, 1)


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = _texture(rng, h, w, rng.uniform(0.2, 0.9, 3))
    canvas = Image.fromarray((img * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(4, 12)):  # clutter: lines and irregular blobs, unlabelled
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            pts = [tuple(rng.uniform(0, [w, h])) for _ in range(rng.integers(2, 5))]
            draw.line(pts, fill=colour, width=int(rng.integers(1, 5)))
        else:
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 30)
            n = int(rng.integers(5, 9))
            pts = [(cx + r * rng.uniform(0.4, 1.2) * math.cos(2 * math.pi * i / n),
                    cy + r * rng.uniform(0.4, 1.2) * math.sin(2 * math.pi * i / n)) for i in range(n)]
            draw.polygon(pts, fill=colour)
    return np.asarray(canvas, dtype=np.float32) / 255


def _shape_mask(cls: str, w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """A binary mask of size (w, h) whose tight box is the whole canvas."""
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    if cls == "ellipse":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
    elif cls == "rectangle":
        d.rectangle([0, 0, w - 1, h - 1], fill=255)
    elif cls == "triangle":
        apex = rng.uniform(0.2, 0.8) * (w - 1)
        if rng.random() < 0.5:
            d.polygon([(apex, 0), (w - 1, h - 1), (0, h - 1)], fill=255)
        else:
            d.polygon([(0, 0), (w - 1, 0), (apex, h - 1)], fill=255)
    elif cls == "cross":
        tw, th = max(2, int(w * rng.uniform(0.25, 0.4))), max(2, int(h * rng.uniform(0.25, 0.4)))
        x0, y0 = (w - tw) // 2, (h - th) // 2
        d.rectangle([x0, 0, x0 + tw - 1, h - 1], fill=255)
        d.rectangle([0, y0, w - 1, y0 + th - 1], fill=255)
    elif cls == "ring":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
        f = rng.uniform(0.45, 0.65)
        iw, ih = w * f, h * f
        d.ellipse([(w - iw) / 2, (h - ih) / 2, (w + iw) / 2, (h + ih) / 2], fill=0)
    return mask


def draw_image(seed: int, index: int, size=IMAGE_SIZE):
    """Returns (uint8 HxWx3 image, objects) with objects as dicts: name, box
    (x1, y1, x2, y2) in 0-based inclusive pixels, difficult."""
    rng = np.random.default_rng([seed, index])
    w, h = size
    img = _background(rng, w, h)
    owner = np.full((h, w), -1, dtype=np.int32)  # which object is visible at each pixel
    objects = []
    for k in range(int(rng.integers(1, 7))):
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        side = math.exp(rng.uniform(math.log(12), math.log(150)))
        ratio = math.exp(rng.uniform(math.log(1 / 3), math.log(3)))
        ow = int(np.clip(round(side * math.sqrt(ratio)), 6, w - 2))
        oh = int(np.clip(round(side / math.sqrt(ratio)), 6, h - 2))
        x0, y0 = int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1))
        mask = np.asarray(_shape_mask(cls, ow, oh, rng), dtype=np.float32) / 255
        tex = _texture(rng, oh, ow, rng.uniform(0.05, 1.0, 3))
        region = img[y0:y0 + oh, x0:x0 + ow]
        region[:] = region * (1 - mask[..., None]) + tex * mask[..., None]
        owner[y0:y0 + oh, x0:x0 + ow][mask > 0.5] = k
        objects.append(dict(name=cls, box=(x0, y0, x0 + ow - 1, y0 + oh - 1), area=float((mask > 0.5).sum())))
    for k, obj in enumerate(objects):
        visible = float((owner == k).sum()) / max(obj.pop("area"), 1.0)
        obj["difficult"] = int(visible < MIN_VISIBLE)
    out = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    out = out.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0, 0.8))))
    return np.asarray(out), objects


def _xml(name: str, size, objects) -> str:
    w, h = size
    parts = [f"<annotation><folder>VOCsynth</folder><filename>{name}.jpg</filename>",
             f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"]
    for o in objects:
        x1, y1, x2, y2 = o["box"]  # VOC stores 1-based inclusive pixel coordinates
        parts.append(f"<object><name>{escape(o['name'])}</name><pose>Unspecified</pose>"
                     f"<truncated>0</truncated><difficult>{o['difficult']}</difficult>"
                     f"<bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
                     f"<xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox></object>")
    parts.append("</annotation>")
    return "".join(parts) + "\n"


def generate(root, num_trainval: int = 400, num_test: int = 100, seed: int = 0, size=IMAGE_SIZE) -> Path:
    """Writes the data set under ``root/VOCsynth`` and returns that folder."""
    voc = Path(root) / "VOCsynth"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}" for i in range(num_trainval + num_test)]
    for i, name in enumerate(names):
        img, objects = draw_image(seed, i, size)
        Image.fromarray(img).save(voc / "JPEGImages" / f"{name}.jpg", quality=92)
        (voc / "Annotations" / f"{name}.xml").write_text(_xml(name, size, objects))
    (voc / "ImageSets/Main/trainval.txt").write_text("\n".join(names[:num_trainval]) + "\n")
    (voc / "ImageSets/Main/test.txt").write_text("\n".join(names[num_trainval:]) + "\n")
    # A validation split of its own, for choosing settings without touching test.
    num_val = num_trainval // 5
    (voc / "ImageSets/Main/train.txt").write_text("\n".join(names[:num_trainval - num_val]) + "\n")
    (voc / "ImageSets/Main/val.txt").write_text("\n".join(names[num_trainval - num_val:num_trainval]) + "\n")
    return voc


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", help="output folder; VOCsynth/ is created inside")
    p.add_argument("--trainval", type=int, default=400)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    voc = generate(a.root, a.trainval, a.test, a.seed)
    print(f"wrote {a.trainval} trainval + {a.test} test images to {voc}")


if __name__ == "__main__":
    main()
