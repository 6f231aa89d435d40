"""Cut large annotated images into tiles, written as a Pascal VOC devkit.

Aerial and satellite photographs are thousands of pixels wide with objects of a few
dozen; a detector trains and tests on tiles of them. This tool is general: any image
with a VOC XML (or boxes given in Python) becomes tiles of ``size`` x ``size`` pixels.

    python -m mmdet_plugin.datasets.tile_voc IMAGE.png [IMAGE2.png ...] --out ROOT \
        [--size 400] [--overlap 0] [--split test] [--val-fraction 0] [--seed 0]

Geometry. Tiles start every ``size - overlap`` pixels from the top-left corner; the last
row and column are moved back to end at the image's edge, so every pixel is covered and
every tile is full-sized (an image smaller than ``size`` gives one tile of its own size).

The rule for a box cut by a tile's edge (``tile_boxes``). With v the fraction of the box's
area inside the tile:

* v >= ``min_visible`` (default 0.5): kept, clipped to the tile;
* 0 < v < ``min_visible``: kept, clipped, and marked ``difficult``: VOC's evaluation
  ignores it (a detection on it is neither right nor wrong) and mmdet's VOCDataset makes
  it an ignored box in training, so a half-seen object is never taught as background;
* boxes of the source marked difficult stay difficult; v = 0: not in the tile.

Coordinates are translated into the tile's pixels in the source's own convention (VOC's
1-based pixels, which mmdet reads minus one, stay so), and clipped to the tile.

Checks, before anything is written. Every image is decoded (an unreadable, truncated or
empty file stops the tool with its name); every box is checked against its image: a box
with a non-finite coordinate, an inverted or empty box, or one entirely outside the image
stops the tool with a list naming each (file, object index, class, coordinates), or, with
``--skip-bad-boxes``, is dropped with a warning line each; a box partly outside the image
is clipped to it. Both counts are printed. Images are read by ``imagery.read`` as mmdet
reads them (EXIF orientation applied, as the XML's pixels are mmdet's; TIFFs window by
window through rasterio), and cut by ``imagery.windows``' grid with fixed-size tiles.

Splits. ``--split`` names the split every tile goes to; with ``--val-fraction f`` that
fraction of the tiles (whole tiles, chosen by ``--seed``) goes to ``val`` and the rest to
``train``, and a train tile that overlaps any val tile is dropped, so no pixel is in both.

Output: ``ROOT/Annotations/<id>.xml``, ``ROOT/JPEGImages/<id>.png`` (lossless),
``ROOT/ImageSets/Main/<split>.txt``; ``<id>`` is ``<image stem>_<x0>_<y0>``, the tile's
top-left corner in the source image's pixels.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from imagery.read import open_image
from imagery.windows import window_grid


@dataclass
class Box:
    """A box in pixels, VOC style (x1, y1, x2, y2 with x2, y2 exclusive as mmdet reads them)."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    difficult: bool = False

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


@dataclass
class Tile:
    image: Path
    x0: int
    y0: int
    width: int
    height: int
    boxes: list = field(default_factory=list)

    @property
    def tile_id(self) -> str:
        return f"{self.image.stem}_{self.x0}_{self.y0}"

    def overlaps(self, other: "Tile") -> bool:
        return (self.image == other.image and self.x0 < other.x0 + other.width and other.x0 < self.x0 + self.width
                and self.y0 < other.y0 + other.height and other.y0 < self.y0 + self.height)


class AnnotationError(ValueError):
    """Boxes of an annotation file that cannot be used, each named by file, object and coordinates."""


def read_voc(xml_path: Path) -> list[Box]:
    """The boxes of a VOC annotation file, in file order (not yet checked: ``check_boxes``);
    ValueError naming the file if it is malformed."""
    try:
        root = ET.parse(xml_path).getroot()
        boxes = []
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            coords = [float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
            difficult = obj.find("difficult")
            boxes.append(Box(*coords, label=obj.find("name").text.strip(),
                             difficult=difficult is not None and difficult.text.strip() == "1"))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"{xml_path}: not a readable VOC annotation ({e})") from e
    return boxes


def check_boxes(boxes: list[Box], width: int, height: int, source: Path) -> tuple[list[Box], list[str], int]:
    """Sorts a source's boxes against its ``width`` x ``height`` image: returns (usable boxes,
    clipped to the image; one message per refused box naming the file, the object's index
    and name and its coordinates; how many usable boxes were clipped).

    Refused: a non-finite coordinate, an inverted or empty box (xmax <= xmin or ymax <=
    ymin), a box entirely outside the image. Clipped: a box partly outside it."""
    usable, refused, clipped = [], [], 0
    for i, b in enumerate(boxes):
        where = (f"{source}: object {i} ({b.label}) xmin={b.x1:g} ymin={b.y1:g} xmax={b.x2:g} ymax={b.y2:g}")
        coords = (b.x1, b.y1, b.x2, b.y2)
        if not all(math.isfinite(v) for v in coords):
            refused.append(f"{where}: a coordinate is not a finite number")
        elif b.x2 <= b.x1 or b.y2 <= b.y1:
            refused.append(f"{where}: inverted or empty (xmax <= xmin or ymax <= ymin)")
        elif b.x2 <= 0 or b.y2 <= 0 or b.x1 >= width or b.y1 >= height:
            refused.append(f"{where}: entirely outside the {width} x {height} image")
        else:
            inside = Box(max(b.x1, 0.0), max(b.y1, 0.0), min(b.x2, float(width)), min(b.y2, float(height)), b.label,
                         b.difficult)
            clipped += (inside.x1, inside.y1, inside.x2, inside.y2) != coords
            usable.append(inside)
    return usable, refused, clipped


def tile_boxes(boxes: list[Box], x0: int, y0: int, width: int, height: int, min_visible: float = 0.5) -> list[Box]:
    """The boxes seen in the tile, in the tile's pixels, by the rule in the module docstring."""
    out = []
    for b in boxes:
        cx1, cy1 = max(b.x1, x0), max(b.y1, y0)
        cx2, cy2 = min(b.x2, x0 + width), min(b.y2, y0 + height)
        if cx2 <= cx1 or cy2 <= cy1 or b.area <= 0:
            continue
        visible = (cx2 - cx1) * (cy2 - cy1) / b.area
        out.append(Box(cx1 - x0, cy1 - y0, cx2 - x0, cy2 - y0, b.label,
                       difficult=b.difficult or visible < min_visible))
    return out


def make_tiles(image: Path, size: int, width: int, height: int, boxes: list[Box], overlap: int = 0,
               min_visible: float = 0.5) -> list[Tile]:
    return [Tile(image, x0, y0, w, h, tile_boxes(boxes, x0, y0, w, h, min_visible))
            for x0, y0, w, h in window_grid(width, height, size, overlap, fixed=True)]


def split_tiles(tiles: list[Tile], val_fraction: float, seed: int) -> dict[str, list[Tile]]:
    """``val``: round(f * n) whole tiles chosen by ``seed``; ``train``: the rest, less any
    tile that overlaps a val tile."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = list(range(len(tiles)))
    random.Random(seed).shuffle(order)
    val_ids = set(order[:round(val_fraction * len(tiles))])
    val = [t for i, t in enumerate(tiles) if i in val_ids]
    train = [t for i, t in enumerate(tiles) if i not in val_ids and not any(t.overlaps(v) for v in val)]
    return {"train": train, "val": val}


def voc_xml(tile: Tile, filename: str) -> str:
    objects = "".join(
        f"  <object>\n    <name>{escape(b.label)}</name>\n    <pose>Unspecified</pose>\n"
        f"    <truncated>0</truncated>\n    <difficult>{int(b.difficult)}</difficult>\n"
        f"    <bndbox><xmin>{b.x1:g}</xmin><ymin>{b.y1:g}</ymin><xmax>{b.x2:g}</xmax><ymax>{b.y2:g}</ymax></bndbox>\n"
        f"  </object>\n" for b in tile.boxes)
    return (f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{escape(filename)}</filename>\n"
            f"  <source><image>{escape(tile.image.name)}</image><x0>{tile.x0}</x0><y0>{tile.y0}</y0></source>\n"
            f"  <size><width>{tile.width}</width><height>{tile.height}</height><depth>3</depth></size>\n"
            f"  <segmented>0</segmented>\n{objects}</annotation>\n")


def write_tiles(splits: dict[str, list[Tile]], out: Path, progress: bool = True) -> dict[str, int]:
    """Write every tile's PNG and XML and each split's image list; returns tiles per split.
    Appends to existing split lists, so several sources can go to one devkit."""
    from PIL import Image

    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    total = sum(len(t) for t in splits.values())
    done, start, opened = 0, time.time(), {}
    for split, tiles in splits.items():
        names = []
        for tile in tiles:
            if tile.image not in opened:
                for source in opened.values():
                    source.close()
                opened = {tile.image: open_image(tile.image, max_pixels=None)}  # one source image open at a time
            rgb = opened[tile.image].read(tile.x0, tile.y0, tile.width, tile.height)
            filename = f"{tile.tile_id}.png"
            Image.fromarray(rgb).save(out / "JPEGImages" / filename)
            (out / "Annotations" / f"{tile.tile_id}.xml").write_text(voc_xml(tile, filename))
            names.append(tile.tile_id)
            done += 1
            if progress and (done % 10 == 0 or done == total):
                print(f"  tiles: {done}/{total} written, {time.time() - start:.0f} s", flush=True)
        with open(out / "ImageSets" / "Main" / f"{split}.txt", "a") as f:
            f.writelines(n + "\n" for n in names)
    for source in opened.values():
        source.close()
    return {k: len(v) for k, v in splits.items()}


def tile_sources(images: list[Path], out: Path, size: int = 400, overlap: int = 0, split: str = "test",
                 val_fraction: float = 0.0, seed: int = 0, min_visible: float = 0.5,
                 progress: bool = True, skip_bad_boxes: bool = False) -> dict[str, int]:
    """Tile each image with the VOC XML beside it (same stem) into the devkit ``out``.

    Every image is decoded and every box checked (``check_boxes``) before anything is
    written: an unreadable or truncated image raises ``ImageReadError`` naming it, and
    refused boxes raise ``AnnotationError`` listing each one, unless ``skip_bad_boxes``,
    which drops them with a warning line each. Boxes clipped to their image and boxes
    skipped are counted on stderr."""
    tiles, refused, clipped = [], [], 0
    for image in images:
        xml = image.with_suffix(".xml")
        for path, what in ((image, "image"), (xml, "annotation (VOC XML beside the image)")):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: the {what} is missing")
        with open_image(image, max_pixels=None) as im:  # decodes it: a truncated file fails here, before any tile is written
            width, height = im.width, im.height
        boxes, bad, n_clipped = check_boxes(read_voc(xml), width, height, xml)
        refused += bad
        clipped += n_clipped
        tiles += make_tiles(image, size, width, height, boxes, overlap, min_visible)
    if refused and not skip_bad_boxes:
        raise AnnotationError(f"{len(refused)} box(es) cannot be used (--skip-bad-boxes drops them with a warning):\n"
                              + "\n".join(refused))
    for line in refused:
        print(f"tile_voc: skipped {line}", file=sys.stderr)
    if refused or clipped:
        print(f"tile_voc: {len(refused)} box(es) skipped, {clipped} clipped to their image", file=sys.stderr)
    splits = split_tiles(tiles, val_fraction, seed) if val_fraction > 0 else {split: tiles}
    return write_tiles(splits, out, progress)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("images", nargs="+", type=Path, help="images, each with a VOC XML of the same stem beside it")
    p.add_argument("--out", type=Path, required=True, help="the VOC devkit folder to write")
    p.add_argument("--size", type=int, default=400)
    p.add_argument("--overlap", type=int, default=0)
    p.add_argument("--split", default="test", help="split of every tile unless --val-fraction is given")
    p.add_argument("--val-fraction", type=float, default=0.0, help="fraction of tiles for val; the rest train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-visible", type=float, default=0.5, help="cut boxes less visible than this are difficult")
    p.add_argument("--skip-bad-boxes", action="store_true",
                   help="drop boxes that cannot be used (inverted, not finite, outside the image) with a warning "
                        "each, instead of stopping")
    a = p.parse_args(argv)
    try:
        counts = tile_sources(a.images, a.out, a.size, a.overlap, a.split, a.val_fraction, a.seed, a.min_visible,
                              skip_bad_boxes=a.skip_bad_boxes)
    except (FileNotFoundError, ValueError) as e:
        print(f"tile_voc: {e}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(f"{n} {k} tiles" for k, n in counts.items()) + f" to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
