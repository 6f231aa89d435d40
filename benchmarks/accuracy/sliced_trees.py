"""Sliced inference on the whole tree photographs: settings chosen on val, AP on test, time.

1. Val: the whole training photograph (crop2, 2299 x 2472), scored only in its val area
   (the union of the 10 val tiles, which no train tile overlaps): a ground-truth box
   counts if at least half of it lies in the area (less: ignored, the tile set's rule for
   cut boxes), a detection if its centre does. Every window size and overlap is run once;
   every merge rule and threshold is scored on its boxes, merging boxes of different
   windows only (what the tools do) and, for comparison, every pair (before 2026-12-07).
   Of the settings within 0.005 of the best val AP40 of each (a tie: one checkpoint's val
   AP moves more than that between training runs), the one with the fewest windows wins,
   then the simpler rule.
2. Test: the whole held-out photograph (1249 x 1035, 279 crowns) with the chosen settings,
   beside the same checkpoint on the 12 test tiles (mmengine's Runner.test: the figure
   `mim test` prints) and on the whole photograph resized to 400 px as before slicing.
3. Time per megapixel of the chosen settings on the test photograph, at 1 and 2 threads
   (the inferencer's own seconds, medians of --reps runs, interleaved), and the picture of
   its detections. A 10,000 px photograph's time and memory: speed/runtime_workers.py --big.

AP is mmdet's ``eval_map`` as mmdet's VOCMetric calls it (area mode, IoU 0.4 and 0.5).
Writes benchmarks/results/sliced_trees.{csv,md} and sliced_trees_test.jpg.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

from common import (ROOT, detector_args, interleaved, machine, markdown_table, parser, result,
                    setup_threads, tree_detector, write_csv, write_text)

TILES, OVERLAPS = (400, 600), (0, 50, 100, 150)
RULES = [(rule, thr) for rule in ("nms", "ios", "join") for thr in (0.3, 0.5, 0.7)]
# Val AP40 this close to the best counts as a tie, won by fewer windows (speed), then the
# simpler rule: one checkpoint's val AP moves by more than this between training runs.
VAL_TIE = 0.005
# Which boxes the merge compares: those of different windows (the tools' rule), or every pair.
PAIRS = ("across windows", "every pair")
WORK = ROOT / "work_dirs" / "sliced_trees"


def instances_gt(instances: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (n, 4), ignored (n,) bool, labels (n,)) of a data set's instances."""
    return (np.array([i["bbox"] for i in instances], np.float32).reshape(-1, 4),
            np.array([bool(i.get("ignore_flag", 0)) for i in instances], bool),
            np.array([i["bbox_label"] for i in instances], np.int64))


def ground_truth(image: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``instances_gt`` of a whole photograph, read as the tile test set reads its tiles: a
    one-tile devkit through CheckedVOCDataset (VOC's 1-based pixels minus one, difficult
    boxes ignored)."""
    from mmdet.registry import DATASETS

    from imagery.read import open_image
    from mmdet_plugin.datasets.tile_voc import tile_sources

    root = WORK / "whole" / image.stem
    if not (root / "ImageSets" / "Main" / "whole.txt").exists():
        with open_image(image, max_pixels=None) as im:
            side = max(im.width, im.height)
        tile_sources([image], root, size=side, split="whole", progress=False)
    ds = DATASETS.build(dict(type="CheckedVOCDataset", data_root=str(root.parent) + "/",
                             metainfo=dict(classes=("Tree",)), ann_file=f"{root.name}/ImageSets/Main/whole.txt",
                             data_prefix=dict(sub_data_root=f"{root.name}/"), test_mode=True, pipeline=[]))
    return instances_gt(ds.get_data_info(0)["instances"])


def _in_region(pred: dict, gt: tuple, region: np.ndarray):
    """The ground truth and detections that count inside ``region`` (module docstring)."""
    boxes, ignored, labels = gt
    integral = np.pad(region.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = region.shape
    x1, y1 = np.floor(boxes[:, 0]).astype(int).clip(0, w), np.floor(boxes[:, 1]).astype(int).clip(0, h)
    x2, y2 = (np.ceil(boxes[:, 2]).astype(int) + 1).clip(0, w), (np.ceil(boxes[:, 3]).astype(int) + 1).clip(0, h)
    inside = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
    visible = inside / np.maximum((x2 - x1) * (y2 - y1), 1)
    keep = visible > 0
    cx = ((pred["bboxes"][:, 0] + pred["bboxes"][:, 2]) / 2).astype(int).clip(0, w - 1)
    cy = ((pred["bboxes"][:, 1] + pred["bboxes"][:, 3]) / 2).astype(int).clip(0, h - 1)
    centred = region[cy, cx]
    return ({k: pred[k][centred] for k in ("bboxes", "scores", "labels")},
            (boxes[keep], ignored[keep] | (visible[keep] < 0.5), labels[keep]))


def average_precision(preds: list[dict], gts: list[tuple], iou_thr: float, region: np.ndarray | None = None,
                      classes=("Tree",)) -> float:
    """VOC AP (area mode), the mean over ``classes``, of ``preds`` ({bboxes, scores, labels}
    per image) against ``gts`` (``instances_gt``); the first image only within ``region`` (a
    bool mask) if given."""
    from mmdet.evaluation.functional import eval_map

    dets, anns = [], []
    for k, (pred, gt) in enumerate(zip(preds, gts)):
        if region is not None and k == 0:
            pred, gt = _in_region(pred, gt, region)
        boxes, ignored, labels = gt
        dets.append([np.hstack([pred["bboxes"][pred["labels"] == c], pred["scores"][pred["labels"] == c, None]])
                     .astype(np.float32) for c in range(len(classes))])
        anns.append(dict(bboxes=boxes[~ignored], labels=labels[~ignored], bboxes_ignore=boxes[ignored],
                         labels_ignore=labels[ignored]))
    mean_ap, _ = eval_map(dets, anns, iou_thr=iou_thr, dataset=list(classes), logger="silent", eval_mode="area",
                          use_legacy_coordinate=True, nproc=1)  # as VOCMetric calls it
    return float(mean_ap)


def ap40_50(preds: list[dict], gts: list[tuple], region: np.ndarray | None = None, classes=("Tree",)) -> dict:
    """{AP40, AP50}: ``average_precision`` at IoU 0.4 and 0.5."""
    return {f"AP{round(thr * 100)}": average_precision(preds, gts, thr, region, classes) for thr in (0.4, 0.5)}


def val_area(image, val_list: Path = ROOT / "data/trees/VOCtrees/ImageSets/Main/val.txt") -> np.ndarray:
    """The union of the val tiles of ``image`` (ids ``<stem>_<x0>_<y0>``) as a bool mask."""
    from mmdet_plugin.datasets.trees import TILE

    mask = np.zeros((image.height, image.width), bool)
    for tile_id in val_list.read_text().split():
        x0, y0 = (int(v) for v in tile_id.rsplit("_", 2)[1:])
        mask[y0:y0 + TILE, x0:x0 + TILE] = True
    return mask


def tile_test_ap(cfg, checkpoint: Path) -> dict:
    """The checkpoint on the test tiles through mmengine's Runner, as `mim test` runs it."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    cfg = cfg.copy()
    cfg.load_from, cfg.work_dir = str(checkpoint), str(WORK / "tile_test")
    cfg.test_dataloader.num_workers, cfg.test_dataloader.persistent_workers = 0, False
    runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)
    return runner.test()


def mirrored_photo(big: Path) -> Path:
    """A 10,000 x 10,000 px JPEG at ``big`` (made once): the held-out photograph tiled, every
    other copy flipped left to right and every other strip of copies top to bottom (a seam
    between copies side by side is a mirror; one between strips is not)."""
    from PIL import Image

    from imagery.read import load_image
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data

    if not big.exists():
        src = load_image(deepforest_data() / TEST_IMAGE)
        reps = (10000 // src.shape[0] + 2, 10000 // src.shape[1] + 2)
        rows = [np.concatenate([src if (r + c) % 2 == 0 else src[:, ::-1] for c in range(reps[1])], 1)
                for r in range(reps[0])]
        big.parent.mkdir(parents=True, exist_ok=True)
        mirrored = np.concatenate([row if r % 2 == 0 else row[::-1] for r, row in enumerate(rows)], 0)
        Image.fromarray(mirrored[:10000, :10000]).save(big, quality=90)
    return big


def main():
    p = parser(__doc__, reps=3, threads=2)
    detector_args(p)
    a = p.parse_args()
    setup_threads(a.threads)
    cfg, model, checkpoint = tree_detector(a)

    import torch
    from mmdet.registry import DATASETS

    from imagery.outputs import draw_boxes, prediction_record
    from imagery.read import open_image
    from mmdet_plugin.apis import SlicedInferencer, SliceSettings, merge_detections
    from mmdet_plugin.datasets.trees import TEST_IMAGE, TRAIN_IMAGE, deepforest_data, prepare

    if not (ROOT / "data/trees/VOCtrees/ImageSets/Main/val.txt").exists():
        prepare(ROOT / "data" / "trees")
    data = deepforest_data()
    rows = []
    tiles, overlaps, rules = (TILES[:1], OVERLAPS[1:2], RULES[1::3]) if a.quick else (TILES, OVERLAPS, RULES)

    def merged(raw: dict, rule: str, thr: float, pairs: str) -> dict:
        windows = raw["window"] if pairs == PAIRS[0] else None
        return dict(zip(("bboxes", "scores", "labels"), merge_detections(
            raw["bboxes"], raw["scores"], raw["labels"], rule, thr, windows=windows)), windows=raw["windows"])

    # 1. val: every window size and overlap once, every merge rule on its boxes
    with open_image(data / TRAIN_IMAGE, max_pixels=None) as image:
        gt, region = ground_truth(data / TRAIN_IMAGE), val_area(image)
        for tile in tiles:
            for overlap in overlaps:
                raw = SlicedInferencer(model, cfg, SliceSettings(tile, overlap))(image, merge=False)
                for (rule, thr), pairs in itertools.product(rules, PAIRS):
                    rows.append(dict(split="val", what="whole photograph, val area", tile=tile, overlap=overlap,
                                     merge=rule, merge_thr=thr, pairs=pairs, windows=raw["windows"],
                                     **ap40_50([merged(raw, rule, thr, pairs)], [gt], region)))
                    print(rows[-1], flush=True)
    simple = {r: k for k, r in enumerate(("nms", "ios", "join"))}
    chosen = {}
    for pairs in PAIRS:
        candidates = [r for r in rows if r["split"] == "val" and r["pairs"] == pairs]
        top = max(r["AP40"] for r in candidates)
        best = min((r for r in candidates if r["AP40"] >= top - VAL_TIE),
                   key=lambda r: (r["windows"], simple[r["merge"]], abs(r["merge_thr"] - 0.5), -r["AP40"]))
        chosen[pairs] = SliceSettings(best["tile"], best["overlap"], best["merge"], best["merge_thr"])
        print(f"chosen on val, merging {pairs}: {chosen[pairs]}", flush=True)

    # 2. test: sliced, the tiles (Runner.test), and the whole photograph resized as before
    runner_metrics = tile_test_ap(cfg, checkpoint)
    rows.append(dict(split="test", what="12 test tiles (Runner.test, as mim test)", windows=12,
                     AP40=runner_metrics["iou40/mAP"], AP50=runner_metrics["voc_range/AP50"]))
    # the same tiles, each run whole, scored by this script: to check its evaluation against Runner.test's
    tile_set = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=[]))
    infos = [tile_set.get_data_info(k) for k in range(len(tile_set))]
    whole, preds = SlicedInferencer(model, cfg, None), []
    for info in infos:
        with open_image(info["img_path"]) as image:
            preds.append(whole(image))
    rows.append(dict(split="test", what="12 test tiles (this script's evaluation)", windows=12,
                     **ap40_50(preds, [instances_gt(info["instances"]) for info in infos])))
    with open_image(data / TEST_IMAGE) as image:
        gt = ground_truth(data / TEST_IMAGE)
        resized = whole(image)
        rows.append(dict(split="test", what="whole photograph resized to 400 px (no slicing)", windows=1,
                         **ap40_50([resized], [gt])))
        for pairs in PAIRS[::-1]:  # the shipped rule last: its boxes are drawn and timed
            settings = chosen[pairs]
            pred = merged(SlicedInferencer(model, cfg, settings)(image, merge=False), settings.merge,
                          settings.merge_thr, pairs)
            rows.append(dict(split="test", what="whole photograph, sliced (settings chosen on val)",
                             tile=settings.tile, overlap=settings.overlap, merge=settings.merge,
                             merge_thr=settings.merge_thr, pairs=pairs, windows=pred["windows"],
                             **ap40_50([pred], [gt]), boxes=len(pred["scores"]),
                             boxes_above_0_3=int((pred["scores"] > 0.3).sum())))
        chosen = chosen[PAIRS[0]]
        sliced = SlicedInferencer(model, cfg, chosen)
        draw_boxes(image, prediction_record(pred, ["Tree"], data / TEST_IMAGE), result("sliced_trees_test.jpg", a),
                   score_thr=0.3, palette=[(255, 255, 0)])

        # 3. time per megapixel, 1 and 2 threads interleaved
        def at(threads: int):
            def run():
                torch.set_num_threads(threads)
                return {"s": sliced(image)["seconds"]}
            return run

        times = interleaved({n: at(n) for n in (1, 2)}, a.reps, warmup=0, parts=True)
        megapixels = image.width * image.height / 1e6
    for n, t in times.items():
        rows.append(dict(split="test", what=f"time, {n} thread(s)", tile=chosen.tile, overlap=chosen.overlap,
                         windows=pred["windows"], seconds=t["s"], s_per_megapixel=t["s"] / megapixels))

    fields = ["split", "what", "tile", "overlap", "merge", "merge_thr", "pairs", "windows", "AP40", "AP50", "boxes",
              "boxes_above_0_3", "seconds", "s_per_megapixel"]
    write_csv(result("sliced_trees.csv", a), rows, fields)
    head = f"Checkpoint {checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT) else checkpoint}; " \
           f"{machine()}.\n\n"
    top = [r for pairs in PAIRS for r in sorted((r for r in rows if r["split"] == "val" and r["pairs"] == pairs),
                                                 key=lambda r: -r["AP40"])[:5]]

    def cell(r, key, fmt="{}"):
        return fmt.format(r[key]) if r.get(key) is not None else ""

    table = markdown_table(
        ["split", "what", "tile", "overlap", "merge", "pairs merged", "windows", "AP40", "AP50", "s / MP"],
        [[r["split"], r["what"], cell(r, "tile"), cell(r, "overlap"),
          f"{r['merge']} > {r['merge_thr']}" if r.get("merge") else "", cell(r, "pairs"), cell(r, "windows"),
          cell(r, "AP40", "{:.3f}"), cell(r, "AP50", "{:.3f}"), cell(r, "s_per_megapixel", "{:.2f}")] for r in top + [r for r in rows if r["split"] != "val"]])
    write_text(result("sliced_trees.md", a), head + "Val: the five best of " +
               f"{sum(r['split'] == 'val' for r in rows) // 2} settings for each way of merging; test: the chosen "
               "ones.\n\n" + table)


if __name__ == "__main__":
    main()
