"""The tree-crown set: real aerial photographs with boxes, from the deepforest wheel, as VOC.

    python -m mmdet_plugin.datasets.trees data/trees      (make demo does this)

The ``deepforest==2.1.0`` wheel ships NEON aerial RGB photographs of Yellowstone with hand-drawn tree-crown boxes in VOC XML
(class "Tree", boxes 8-107 px wide, median about 40). Two of them are used, from two
areas of the same site (MIT license of the wheel, (c) Ben Weinstein; imagery from NEON,
no separate terms stated in the wheel; of it, only benchmarks/results/sliced_trees_test.jpg,
the held-out photograph with a detector's boxes, is committed, with that attribution):

* ``2019_YELL_2_528000_4978000_image_crop2.png`` (2299 x 2472, 574 boxes): its tiles go
  to ``train`` and ``val`` (whole tiles, ``VAL_FRACTION`` of them chosen by ``SEED``; a
  train tile overlapping a val tile is dropped);
* ``2019_YELL_2_541000_4977000_image_crop.png`` (1249 x 1035, 279 boxes): its tiles form
  ``test``, another area, never mixed with the others.

Tiles are ``TILE`` px with no overlap (``tile_voc``'s rule for cut boxes: less than half
visible -> difficult). Output: ``ROOT/VOCtrees/{Annotations,JPEGImages,ImageSets/Main}``.
Where they are read from (``deepforest_data``): ``<venv>/share/deepforest/data``, where
``make setup`` unpacks the wheel's data/ folder without installing the wheel
(``scripts/unpack_wheel_data.py``: installed, it leaves 21 missing dependencies that pip
reports as errors); else an installed deepforest package's data/ folder, located without
importing it (its ``__init__`` needs pytorch_lightning).
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

from .tile_voc import tile_sources

CLASSES = ("Tree",)
TRAIN_IMAGE = "2019_YELL_2_528000_4978000_image_crop2.png"
TEST_IMAGE = "2019_YELL_2_541000_4977000_image_crop.png"
TILE, VAL_FRACTION, SEED = 400, 0.25, 0
UNPACK = ("python scripts/unpack_wheel_data.py deepforest==2.1.0 deepforest/data "
          "<venv>/share/deepforest/data (make setup does)")


def data_folders() -> list[Path]:
    """Where the photographs are looked for, in order (see the module docstring)."""
    folders = [Path(sys.prefix) / "share" / "deepforest" / "data"]
    spec = importlib.util.find_spec("deepforest")
    if spec is not None and spec.submodule_search_locations:
        folders.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    return folders


def deepforest_data() -> Path:
    """The first of ``data_folders()`` that holds the two photographs and their boxes;
    FileNotFoundError saying how to get them otherwise."""
    wanted = [n for name in (TRAIN_IMAGE, TEST_IMAGE) for n in (name, name[:-4] + ".xml")]
    for data in data_folders():
        if all((data / n).is_file() for n in wanted):
            return data
    raise FileNotFoundError(f"the deepforest wheel's photographs are not in {' or '.join(map(str, data_folders()))}: "
                            f"run `{UNPACK}`")


def prepare(root: Path, progress: bool = True) -> Path:
    """Write the tiled devkit under ``root/VOCtrees`` (rewritten from scratch); returns it."""
    data = deepforest_data()
    voc = root / "VOCtrees"
    if voc.exists():
        shutil.rmtree(voc)
    counts = tile_sources([data / TRAIN_IMAGE], voc, size=TILE, val_fraction=VAL_FRACTION, seed=SEED,
                          progress=progress)
    counts.update(tile_sources([data / TEST_IMAGE], voc, size=TILE, split="test", progress=progress))
    print("tree tiles: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + f" in {voc}")
    return voc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="output folder; VOCtrees/ is created inside")
    a = p.parse_args(argv)
    try:
        prepare(a.root)
    except FileNotFoundError as e:
        print(f"trees: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
