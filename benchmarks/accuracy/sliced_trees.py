"""Sliced inference on the whole tree photographs: settings chosen on val, AP on test, time, memory.

    .venv/bin/python benchmarks/accuracy/sliced_trees.py [--checkpoint work_dirs/demo-real/epoch_36.pth] [--big]

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
   (medians of --reps runs, interleaved), and the picture of its detections.
4. --big: a generated 10,000 x 10,000 px JPEG (the test photograph mirrored) through
   ``tools/infer.py`` in a subprocess: its wall time and peak resident memory.

AP is mmdet's ``eval_map`` as mmdet's VOCMetric calls it (area mode, IoU 0.4 and 0.5).
Writes benchmarks/results/sliced_trees.{csv,md} and sliced_trees_test.jpg.
"""
from __future__ import annotations

import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

from common import RESULTS, ROOT, machine, parser, setup_threads, write_csv, write_text

CONFIG = "configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py"
TILES, OVERLAPS = (400, 600), (0, 50, 100, 150)
RULES = [(rule, thr) for rule in ("nms", "ios", "join") for thr in (0.3, 0.5, 0.7)]
# Val AP40 this close to the best counts as a tie, won by fewer windows (speed), then the
# simpler rule: one checkpoint's val AP moves by more than this between training runs.
VAL_TIE = 0.005
# Which boxes the merge compares: those of different windows (the tools' rule), or every pair.
PAIRS = ("across windows", "every pair")
WORK = ROOT / "work_dirs" / "sliced_trees"


def ground_truth(image: Path) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (n, 4), ignored (n,) bool) of a whole photograph, read as the tile test set
    reads its tiles: a one-tile devkit through CheckedVOCDataset (VOC's 1-based pixels
    minus one, difficult boxes ignored)."""
    from mmdet.registry import DATASETS

    from imagery.read import open_image
    from mmdet_plugin.datasets.tile_voc import tile_sources

    root = WORK / "whole" / image.stem
    if not (root / "ImageSets" / "Main" / "whole.txt").exists():
        with open_image(image, max_pixels=None) as im:
            side = max(im.width, im.height)
        tile_sources([image], root, size=side, split="whole", progress=False)
    ds = DATASETS.build(dict(type="CheckedVOCDataset", data_root=str(root.parent) + "/", metainfo=dict(classes=("Tree",)),
                             ann_file=f"{root.name}/ImageSets/Main/whole.txt",
                             data_prefix=dict(sub_data_root=f"{root.name}/"), test_mode=True, pipeline=[]))
    instances = ds.get_data_info(0)["instances"]
    return (np.array([i["bbox"] for i in instances], np.float32).reshape(-1, 4),
            np.array([bool(i["ignore_flag"]) for i in instances]))


def _in_region(pred: dict, gt, region: np.ndarray):
    """The ground truth and detections that count inside ``region`` (module docstring)."""
    boxes, ignored = gt
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
    return (dict(bboxes=pred["bboxes"][centred], scores=pred["scores"][centred]),
            (boxes[keep], ignored[keep] | (visible[keep] < 0.5)))


def average_precision(preds: list[dict], gts: list, iou_thr: float, region: np.ndarray | None = None) -> float:
    """VOC AP (area) of one class over images; the first image only within ``region`` (a
    bool mask) if given."""
    from mmdet.evaluation.functional import eval_map

    dets, anns = [], []
    for k, (pred, (boxes, ignored)) in enumerate(zip(preds, gts)):
        if region is not None and k == 0:
            pred, (boxes, ignored) = _in_region(pred, (boxes, ignored), region)
        dets.append([np.hstack([pred["bboxes"], pred["scores"][:, None]]).astype(np.float32)])
        anns.append(dict(bboxes=boxes[~ignored], labels=np.zeros((~ignored).sum(), np.int64),
                         bboxes_ignore=boxes[ignored], labels_ignore=np.zeros(ignored.sum(), np.int64)))
    mean_ap, _ = eval_map(dets, anns, iou_thr=iou_thr, dataset=["Tree"], logger="silent", eval_mode="area",
                          use_legacy_coordinate=True, nproc=1)  # as VOCMetric calls it
    return float(mean_ap)


def tile_set_predictions(model, cfg, inferencer_cls) -> tuple[list[dict], list]:
    """The checkpoint's detections on the 12 test tiles, each run whole, and their ground
    truth: this script's evaluation on the tile set, to check against Runner.test."""
    from mmdet.registry import DATASETS

    from imagery.read import open_image

    ds = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=[]))
    inferencer = inferencer_cls(model, cfg, None)
    preds, gts = [], []
    for k in range(len(ds)):
        info = ds.get_data_info(k)
        with open_image(info["img_path"]) as image:
            preds.append(inferencer(image))
        gts.append((np.array([i["bbox"] for i in info["instances"]], np.float32).reshape(-1, 4),
                    np.array([bool(i["ignore_flag"]) for i in info["instances"]])))
    return preds, gts


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
    """A 10,000 x 10,000 px JPEG at ``big`` (made once): the held-out photograph tiled,
    mirrored at every seam so that no edge is cut."""
    from PIL import Image

    from imagery.read import load_image
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data

    if not big.exists():
        src = load_image(deepforest_data() / TEST_IMAGE)
        reps = (10000 // src.shape[0] + 2, 10000 // src.shape[1] + 2)
        rows = [np.concatenate([src if (r + c) % 2 == 0 else src[:, ::-1] for c in range(reps[1])], 1)
                for r in range(reps[0])]
        big.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate([row if r % 2 == 0 else row[::-1] for r, row in enumerate(rows)], 0)[:10000, :10000]
                        ).save(big, quality=90)
    return big


def big_image_run(config: Path, checkpoint: Path, settings, threads: int) -> dict:
    """tools/infer.py on a generated 10,000 x 10,000 JPEG in a subprocess: wall time, peak RSS."""
    big = mirrored_photo(WORK / "big_10000.jpg")
    out = WORK / "big_out"
    cmd = [sys.executable, str(ROOT / "tools" / "infer.py"), str(config), str(checkpoint), str(big), "--out-dir",
           str(out), "--tile", str(settings.tile), "--overlap", str(settings.overlap), "--merge", settings.merge,
           "--merge-thr", str(settings.merge_thr)]
    env = dict(__import__("os").environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    boxes = len(json.loads((out / "preds" / "big_10000.json").read_text())["scores"])
    return dict(wall_s=wall, peak_rss_mb=peak_mb, s_per_mp=wall / 100.0, boxes=boxes, threads=threads)


def main():
    p = parser(__doc__, reps=3, threads=2)
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--checkpoint", help="default: work_dirs/demo-real's last checkpoint")
    p.add_argument("--big", action="store_true", help="also the 10,000 x 10,000 px image (minutes)")
    a = p.parse_args()
    setup_threads(a.threads)
    config = ROOT / a.config
    checkpoint = Path(a.checkpoint or (ROOT / "work_dirs/demo-real/last_checkpoint").read_text().strip())

    from mmdet.apis import init_detector
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_plugin  # noqa: F401
    from imagery.outputs import draw_boxes, prediction_record
    from imagery.read import open_image
    from mmdet_plugin.apis import SlicedInferencer, SliceSettings, merge_detections
    from mmdet_plugin.datasets.trees import TEST_IMAGE, TRAIN_IMAGE, deepforest_data, prepare

    init_default_scope("mmdet")
    if not (ROOT / "data/trees/VOCtrees/ImageSets/Main/val.txt").exists():
        prepare(ROOT / "data" / "trees")
    cfg = Config.fromfile(str(config))
    model = init_detector(cfg, str(checkpoint), device="cpu")
    data = deepforest_data()
    rows = []
    tiles, overlaps, rules = (TILES[:1], OVERLAPS[1:2], RULES[1::3]) if a.quick else (TILES, OVERLAPS, RULES)

    # 1. val: every window size and overlap once, every merge rule on its boxes
    with open_image(data / TRAIN_IMAGE, max_pixels=None) as image:
        gt, region = ground_truth(data / TRAIN_IMAGE), val_area(image)
        for tile in tiles:
            for overlap in overlaps:
                raw = SlicedInferencer(model, cfg, SliceSettings(tile, overlap))(image, merge=False)
                for (rule, thr), pairs in itertools.product(rules, PAIRS):
                    windows = raw["window"] if pairs == PAIRS[0] else None
                    merged = dict(zip(("bboxes", "scores", "labels"), merge_detections(
                        raw["bboxes"], raw["scores"], raw["labels"], rule, thr, windows=windows)))
                    rows.append(dict(split="val", what="whole photograph, val area", tile=tile, overlap=overlap,
                                     merge=rule, merge_thr=thr, pairs=pairs, windows=raw["windows"],
                                     AP40=average_precision([merged], [gt], 0.4, region),
                                     AP50=average_precision([merged], [gt], 0.5, region)))
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
    preds, gts = tile_set_predictions(model, cfg, SlicedInferencer)
    rows.append(dict(split="test", what="12 test tiles (this script's evaluation)", windows=12,
                     AP40=average_precision(preds, gts, 0.4), AP50=average_precision(preds, gts, 0.5)))
    with open_image(data / TEST_IMAGE) as image:
        gt = ground_truth(data / TEST_IMAGE)
        resized = SlicedInferencer(model, cfg, None)(image)
        rows.append(dict(split="test", what="whole photograph resized to 400 px (no slicing)", windows=1,
                         AP40=average_precision([resized], [gt], 0.4), AP50=average_precision([resized], [gt], 0.5)))
        for pairs in PAIRS[::-1]:  # the shipped rule last: its boxes are drawn and timed
            settings = chosen[pairs]
            raw = SlicedInferencer(model, cfg, settings)(image, merge=False)
            merged = merge_detections(raw["bboxes"], raw["scores"], raw["labels"], settings.merge, settings.merge_thr,
                                      windows=raw["window"] if pairs == PAIRS[0] else None)
            pred = dict(zip(("bboxes", "scores", "labels"), merged), windows=raw["windows"])
            rows.append(dict(split="test", what="whole photograph, sliced (settings chosen on val)",
                             tile=settings.tile, overlap=settings.overlap, merge=settings.merge,
                             merge_thr=settings.merge_thr, pairs=pairs, windows=pred["windows"],
                             AP40=average_precision([pred], [gt], 0.4), AP50=average_precision([pred], [gt], 0.5),
                             boxes=len(pred["scores"]), boxes_above_0_3=int((pred["scores"] > 0.3).sum())))
        chosen = chosen[PAIRS[0]]
        sliced = SlicedInferencer(model, cfg, chosen)
        draw_boxes(image, prediction_record(pred, ["Tree"], data / TEST_IMAGE), RESULTS / "sliced_trees_test.jpg",
                   score_thr=0.3, palette=[(255, 255, 0)])

        # 3. time per megapixel, 1 and 2 threads interleaved
        import torch

        times = {1: [], 2: []}
        for _ in range(a.reps):
            for n in times:
                torch.set_num_threads(n)
                times[n].append(sliced(image)["seconds"])
        megapixels = image.width * image.height / 1e6
    for n, t in times.items():
        rows.append(dict(split="test", what=f"time, {n} thread(s)", tile=chosen.tile, overlap=chosen.overlap,
                         windows=pred["windows"], seconds=statistics.median(t),
                         s_per_megapixel=statistics.median(t) / megapixels))
    if a.big:
        big = big_image_run(config, checkpoint, chosen, threads=2)
        rows.append(dict(split="big", what="10,000 x 10,000 px JPEG, tools/infer.py, 2 threads", tile=chosen.tile,
                         overlap=chosen.overlap, seconds=big["wall_s"], s_per_megapixel=big["s_per_mp"],
                         peak_rss_mb=big["peak_rss_mb"], boxes=big["boxes"]))

    fields = ["split", "what", "tile", "overlap", "merge", "merge_thr", "pairs", "windows", "AP40", "AP50", "boxes",
              "boxes_above_0_3", "seconds", "s_per_megapixel", "peak_rss_mb"]
    write_csv(RESULTS / "sliced_trees.csv", rows, fields)
    head = f"Checkpoint {checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT) else checkpoint}; " \
           f"{machine()}.\n\n"
    top = [r for pairs in PAIRS for r in sorted((r for r in rows if r["split"] == "val" and r["pairs"] == pairs),
                                                 key=lambda r: -r["AP40"])[:5]]
    table = "| split | what | tile | overlap | merge | pairs merged | windows | AP40 | AP50 | s / MP | peak RSS |\n" + \
            "|---|---|---|---|---|---|---|---|---|---|---|\n"
    def cell(r, key, fmt):
        return fmt.format(r[key]) if r.get(key) is not None else ""

    for r in top + [r for r in rows if r["split"] != "val"]:
        merge = f"{r['merge']} > {r['merge_thr']}" if r.get("merge") else ""
        table += (f"| {r['split']} | {r['what']} | {cell(r, 'tile', '{}')} | {cell(r, 'overlap', '{}')} | {merge} | "
                  f"{cell(r, 'pairs', '{}')} | "
                  f"{cell(r, 'windows', '{}')} | {cell(r, 'AP40', '{:.3f}')} | {cell(r, 'AP50', '{:.3f}')} | "
                  f"{cell(r, 's_per_megapixel', '{:.2f}')} | {cell(r, 'peak_rss_mb', '{:.0f} MB')} |\n")
    write_text(RESULTS / "sliced_trees.md", head + "Val: the five best of " +
               f"{sum(r['split'] == 'val' for r in rows) // 2} settings for each way of merging; test: the chosen "
               "ones.\n\n" + table)


if __name__ == "__main__":
    main()
