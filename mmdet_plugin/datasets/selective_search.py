"""Selective-search proposals for a VOC devkit, as the proposal files mmdet 3.x reads.

    python -m mmdet_plugin.datasets.selective_search data/trees/VOCtrees [--splits train val test]
    python -m mmdet_plugin.datasets.selective_search data/synth_voc/VOCsynth

The paper's (and R-CNN's) region proposals: about 2,000 selective-search windows per image
in "fast mode" (Uijlings et al.), here OpenCV's ``cv2.ximgproc.segmentation`` (from the
``opencv-contrib-python`` wheel that ``make setup`` installs over ``opencv-python`` at the
same version; see requirements/proposals.txt). One process per core, a progress bar.

Output, per split, next to the devkit's folders: ``proposals/ss_fast_<split>.pkl``, the dict
``BaseDetDataset.load_proposals`` reads (``proposal_file=`` of a dataset): key = the image's
parent folder and file name (``'JPEGImages/000005.jpg'``: mmdet builds the key that way from
``img_path``), value = ``dict(bboxes=float32 (N, 4))``, x1 y1 x2 y2 in the original image's
pixels (OpenCV's (x, y, w, h) -> (x, y, x + w, y + h)), no scores. One entry per image of
the split's ImageSets file (mmdet asserts it). ``ss_fast_<split>.json`` beside it records
the settings, the OpenCV version, the time, the counts and the recall against the ground
truth at IoU 0.5 and 0.7 (boxes marked difficult are left out, as VOC's evaluation does).

Order: OpenCV returns the windows ranked with a random term (``std::rand``, which
``cv2.setRNGSeed`` does not reach), so the order changes from run to run while the set does
not. Duplicates are dropped and the windows sorted by area, largest first, ties by
(x1, y1, x2, y2): a fixed order, so that a pipeline that keeps the first K
(``LoadProposals(num_max_proposals=K)``) drops the smallest windows. The configs here keep
all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

INSTALL = "pip install --no-deps opencv-contrib-python==<the installed opencv-python's version>"
OUT_DIR = "proposals"


def proposal_file(devkit: str | Path, split: str) -> Path:
    """Where the proposals of ``split`` of the devkit (e.g. data/trees/VOCtrees) live."""
    return Path(devkit) / OUT_DIR / f"ss_fast_{split}.pkl"


def _ximgproc():
    import cv2

    if not hasattr(cv2, "ximgproc"):
        raise ImportError(f"cv2 {cv2.__version__} has no ximgproc (selective search): it is in "
                          f"opencv-contrib-python; `make setup` installs it ({INSTALL})")
    return cv2


def selective_search(image: np.ndarray, mode: str = "fast") -> np.ndarray:
    """Selective-search windows of one image.

    Args:
        image: (H, W, 3) uint8, BGR (as ``cv2.imread`` gives).
        mode: "fast" (the paper's and R-CNN's) or "quality".

    Returns:
        float32 (N, 4) x1 y1 x2 y2 in pixels, no duplicates, sorted by area (largest first),
        ties by (x1, y1, x2, y2).
    """
    cv2 = _ximgproc()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(image)
    {"fast": search.switchToSelectiveSearchFast, "quality": search.switchToSelectiveSearchQuality}[mode]()
    xywh = np.unique(np.asarray(search.process(), dtype=np.int64).reshape(-1, 4), axis=0)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    area = xywh[:, 2] * xywh[:, 3]
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -area))
    return boxes[order].astype(np.float32)


def _one_image(task: tuple[str, str]) -> tuple[str, np.ndarray, float]:
    import cv2

    cv2.setNumThreads(1)  # one process per core does the parallel work
    key, path = task
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    start = time.perf_counter()
    boxes = selective_search(image)
    return key, boxes, time.perf_counter() - start


def read_split(devkit: Path, split: str) -> list[tuple[str, Path, np.ndarray]]:
    """(key, image path, ground-truth boxes that are not difficult) for each image of the
    split, in the ImageSets file's order; the file name from the XML's ``<filename>``."""
    ids_file = devkit / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():
        raise FileNotFoundError(f"no split file {ids_file}: is {devkit} a VOC devkit with split {split!r}?")
    images = []
    for img_id in ids_file.read_text().split():
        xml = devkit / "Annotations" / f"{img_id}.xml"
        root = ET.parse(xml).getroot()
        name = root.findtext("filename") or f"{img_id}.jpg"
        gt = [[float(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
              for obj in root.iter("object") if obj.findtext("difficult", "0").strip() != "1"]
        images.append((f"JPEGImages/{name}", devkit / "JPEGImages" / name, np.asarray(gt, np.float32).reshape(-1, 4)))
    return images


def best_iou(gt: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For each ground-truth box (G, 4), its highest IoU with any of ``boxes`` (N, 4)."""
    if len(gt) == 0:
        return np.zeros(0, np.float32)
    if len(boxes) == 0:
        return np.zeros(len(gt), np.float32)
    lt = np.maximum(gt[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(gt[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    return (inter / (area(gt)[:, None] + area(boxes)[None, :] - inter)).max(1)


def compute_split(devkit: Path, split: str, workers: int) -> dict:
    """Writes the split's proposal file and its JSON record; returns the record."""
    from mmengine.fileio import dump
    from mmengine.utils import track_parallel_progress, track_progress

    images = read_split(devkit, split)
    tasks = [(key, str(path)) for key, path, _ in images]
    print(f"selective search (fast) on {len(tasks)} images of {devkit}/{split}, {workers} processes", flush=True)
    start = time.perf_counter()
    results = (track_parallel_progress(_one_image, tasks, workers, chunksize=1) if workers > 1
               else track_progress(_one_image, tasks))
    wall = time.perf_counter() - start
    proposals = {key: dict(bboxes=boxes) for key, boxes, _ in results}
    if len(proposals) != len(images):
        raise ValueError(f"{devkit}/{split}: {len(images)} images but {len(proposals)} distinct keys "
                         "(two images with one file name?)")
    ious = np.concatenate([best_iou(gt, proposals[key]["bboxes"]) for key, _, gt in images])
    counts = np.array([len(p["bboxes"]) for p in proposals.values()])
    sides = np.concatenate([np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])) for b in
                            (p["bboxes"] for p in proposals.values())])
    import cv2

    record = dict(split=split, images=len(images), mode="fast", opencv=cv2.__version__,
                  order="area descending, ties by x1 y1 x2 y2; duplicates dropped",
                  proposals_mean=float(counts.mean()), proposals_min=int(counts.min()),
                  proposals_max=int(counts.max()), window_side_median=float(np.median(sides)),
                  gt_boxes=int(len(ious)), recall_iou50=float((ious >= 0.5).mean()),
                  recall_iou70=float((ious >= 0.7).mean()),
                  seconds_per_image_median=float(np.median([r[2] for r in results])), wall_s=wall,
                  workers=workers)
    out = proposal_file(devkit, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    dump(proposals, str(out))
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"\n{out}: {record['proposals_mean']:.0f} windows/image (min {record['proposals_min']}, max "
          f"{record['proposals_max']}); recall {record['recall_iou50']:.3f} at IoU 0.5, "
          f"{record['recall_iou70']:.3f} at 0.7 ({record['gt_boxes']} boxes); {wall:.0f} s", flush=True)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("devkit", type=Path, help="a VOC devkit folder, e.g. data/trees/VOCtrees")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="ImageSets/Main files without .txt (default: every one there)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--force", action="store_true", help="recompute an existing proposal file")
    args = parser.parse_args(argv)
    try:
        _ximgproc()
    except ImportError as err:
        print(err, file=sys.stderr)
        return 2
    splits = args.splits or sorted(p.stem for p in (args.devkit / "ImageSets" / "Main").glob("*.txt"))
    if not splits:
        print(f"no ImageSets/Main/*.txt under {args.devkit}: is it a VOC devkit?", file=sys.stderr)
        return 2
    for split in splits:
        if proposal_file(args.devkit, split).is_file() and not args.force:
            print(f"{proposal_file(args.devkit, split)} exists (--force recomputes it)")
            continue
        compute_split(args.devkit, split, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
