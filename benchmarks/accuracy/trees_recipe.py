"""The recipe for the tree tiles, chosen on ``val`` alone: one knob at a time, two seeds.

The first try's recipe (400 px tiles, flips, AdamW lr 5e-4, 24 epochs) was borrowed from
the synthetic set. Before the RoI heads are compared (``trees.py``), each candidate below
fine-tunes the paper's head (SPP cells on the EfficientNet-Lite0 FPN,
``configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py``) with seeds 0 and 1 and is validated
on ``val`` every 6 epochs (the curve says whether 24 epochs are too few or too many). The
test split is never evaluated here. A candidate's config is the base config plus the
snippet ``recipe()`` writes for it: every knob is spelled out, so a later change of the
base's defaults does not change what a row measured. Runs go through ``runs.RunTable``.
Writes ``results/trees_recipe.md`` (val AP40 / AP50 / AP75 / mean AP per seed, their
means, and the AP40 curve).
"""
from __future__ import annotations

import json
import statistics

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import RESULTS, ROOT
import runs
from runs import RunTable, expand
from trees import METRICS, ensure_data, metrics, test_checkpoint

EPOCHS = 24
VAL_EVERY = 6
BASE_CONFIG = "configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py"
CONFIG_DIR = ROOT / "work_dirs/trees_recipe/configs"
SEEDS = (0, 1)


def recipe(scale: int = 400, rot90: bool = False, photometric: bool = False, lr: float = 5e-4, epochs: int = 24) -> str:
    """The config snippet of one candidate over ``BASE_CONFIG``: tile size at train and test
    time (the 400 px tiles are resized to ``scale``), 90-degree rotations on top of the
    flips (with them, all eight symmetries of a square), mmdet's PhotoMetricDistortion
    (brightness, contrast, saturation, hue), AdamW's learning rate, and the schedule (LR
    x 0.1 at 2/3 and 11/12 of ``epochs``: 16 and 22 of 24, 24 and 33 of 36)."""
    train = ["dict(type='LoadImageFromFile')", "dict(type='LoadAnnotations', with_bbox=True)",
             f"dict(type='Resize', scale=({scale}, {scale}), keep_ratio=True)",
             "dict(type='RandomFlip', prob=[0.25, 0.25, 0.25], direction=['horizontal', 'vertical', 'diagonal'])"]
    if rot90:
        # mmdet's Rotate with its magnitude pinned at 90 degrees: +-90 about the tile centre.
        train.append("dict(type='Rotate', prob=0.5, min_mag=90.0, max_mag=90.0)")
    if photometric:
        train.append("dict(type='PhotoMetricDistortion')")
    train.append("dict(type='PackDetInputs')")
    test = ["dict(type='LoadImageFromFile')", f"dict(type='Resize', scale=({scale}, {scale}), keep_ratio=True)",
            "dict(type='LoadAnnotations', with_bbox=True)",
            "dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))"]
    return "\n".join([
        f"_base_ = ['{ROOT / BASE_CONFIG}']",
        "train_pipeline = [\n    " + ",\n    ".join(train) + "]",
        "test_pipeline = [\n    " + ",\n    ".join(test) + "]",
        "train_dataloader = dict(dataset=dict(pipeline=train_pipeline))",
        "val_dataloader = dict(dataset=dict(pipeline=test_pipeline))",
        "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))",
        f"optim_wrapper = dict(optimizer=dict(lr={lr}))",
        f"train_cfg = dict(max_epochs={epochs}, val_interval={epochs})",
        "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),\n"
        f"                   dict(type='MultiStepLR', begin=0, end={epochs}, by_epoch=True, "
        f"milestones=[{epochs * 2 // 3}, {epochs * 11 // 12}], gamma=0.1)]", ""])


# (id, what changes against the first try, recipe() arguments)
CANDIDATES = [
    ("first-try", "the first try: 400 px, flips, lr 5e-4", {}),
    ("rot-photo", "+ 90-degree rotations + photometric distortion", dict(rot90=True, photometric=True)),
    ("lr1e-3", "lr 1e-3", dict(lr=1e-3)),
    ("scale600", "tiles resized to 600 px (train and test)", dict(scale=600)),
    ("36e", "36 epochs (LR steps at 24 and 33)", dict(epochs=36)),
]
SYSTEM, HEAD = "FPN", "SPP cells (paper)"
# Every run gets the table's max_epochs as an option, so a longer candidate names its own.
RUNS_OF = {cid: expand([(cid, SYSTEM, HEAD, str((CONFIG_DIR / f"{cid}.py").relative_to(ROOT)),
                         [f"train_cfg.max_epochs={kwargs.get('epochs', EPOCHS)}",
                          f"train_cfg.val_interval={VAL_EVERY}"],
                         SEEDS)])
           for cid, _, kwargs in CANDIDATES}
RUNS = [run for runs_of_cid in RUNS_OF.values() for run in runs_of_cid]


def read(run_dir) -> dict:
    """The last validation's metrics, AP40 at every validation, median s / iteration."""
    val, s_per_iter = common.last_scalars(run_dir, key="voc_range/mAP")
    scalars = sorted(run_dir.glob("*/vis_data/scalars.json"))[-1]
    curve = [json.loads(line) for line in scalars.read_text().splitlines()]
    curve = {r["step"]: r["iou40/AP40"] for r in curve if "iou40/AP40" in r}
    row = {f"val_{k}": v for k, v in metrics(val).items()}
    row.update({f"val_AP40_ep{ep}": curve.get(ep, float("nan")) for ep in range(VAL_EVERY, EPOCHS + 1, VAL_EVERY)})
    return dict(row, run_s_per_iter=s_per_iter)


CURVE = [f"val_AP40_ep{ep}" for ep in range(VAL_EVERY, EPOCHS + 1, VAL_EVERY)]
TABLE = RunTable(RESULTS / "trees_recipe_runs.csv", [f"val_{m}" for m in METRICS] + CURVE, read, EPOCHS)


def write_configs() -> None:
    CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    for cid, _, kwargs in CANDIDATES:
        (CONFIG_DIR / f"{cid}.py").write_text(recipe(**kwargs))


def prepare() -> None:
    ensure_data()
    write_configs()


# Test-time knob, no training: the second stage's NMS IoU threshold (mmdet's default 0.5),
# on val, with the first try's checkpoints. Dense crowns touch, so it may matter.
NMS_IOUS = (0.3, 0.4, 0.5, 0.6)
NMS_CSV = RESULTS / "trees_recipe_nms.csv"


def nms_rows(cid: str = "first-try") -> list[dict]:
    """{seed, nms_iou, val metrics} per checkpoint of ``cid`` and threshold (``mim test`` on
    val); cached in ``NMS_CSV`` (a row that is there is not measured again)."""
    import csv

    rows = list(csv.DictReader(open(NMS_CSV))) if NMS_CSV.exists() else []
    have = {(r["candidate"], r["seed"], r["nms_iou"]) for r in rows}
    for run in RUNS_OF[cid]:
        run_dir = ROOT / "work_dirs/trees_recipe" / run.id
        for iou in NMS_IOUS:
            if (cid, str(run.seed), str(iou)) in have:
                continue
            print(f"val with NMS IoU {iou}: {run.id}", flush=True)
            val = test_checkpoint(run_dir, f"val-nms{iou}",
                                  ["test_dataloader.dataset.ann_file=VOCtrees/ImageSets/Main/val.txt",
                                   f"model.test_cfg.rcnn.nms.iou_threshold={iou}"])
            rows.append(dict(candidate=cid, seed=run.seed, nms_iou=iou,
                             **{f"val_{k}": f"{v:.4f}" for k, v in val.items()}))
            common.write_csv(NMS_CSV, rows)
    return rows


def means(rows) -> str:
    """The val metrics' means over seeds, " / "-joined."""
    return " / ".join(f"{statistics.mean(float(r[f'val_{m}']) for r in rows):.3f}" for m in METRICS)


def tables(done: dict) -> None:
    lines = [f"Recipe candidates on the tree tiles' **val** split (the test split is not evaluated): SPP cells on the "
             f"EfficientNet-Lite0 FPN, {EPOCHS} epochs unless the row says otherwise, seeds "
             f"{', '.join(map(str, SEEDS))}. Cells: AP40 / AP50 / AP75 / "
             f"mean AP over 0.5:0.95 per seed, then the mean over seeds; AP40 every {VAL_EVERY} epochs (mean over "
             "seeds; the LR steps at epochs 16 and 22 of 24, 24 and 33 of 36).", ""]
    cells = []
    for cid, what, _ in CANDIDATES:
        rows = [done[r.id] for r in RUNS_OF[cid] if r.id in done]
        if rows:
            cells.append([cid, what, runs.seed_cell(rows, [f"val_{m}" for m in METRICS], mean=False), means(rows),
                          " / ".join(f"{statistics.mean(float(r[c]) for r in rows):.3f}" for c in CURVE),
                          ", ".join(r["wall_min"] for r in rows)])
    lines.append(common.markdown_table(["candidate", "change", "per seed", "mean", "AP40 at epoch " + " / ".join(
        c.split("ep")[-1] for c in CURVE), "run min"], cells))
    nms = nms_rows()
    lines += ["", "The second stage's NMS IoU threshold at test time (no retraining), first try's checkpoints, val; "
              "mean over seeds of AP40 / AP50 / AP75 / mean AP:", "", common.markdown_table(
                  ["NMS IoU", "val"], [[iou, means([r for r in nms if float(r["nms_iou"]) == iou])] for iou in NMS_IOUS])]
    common.write_text(RESULTS / "trees_recipe.md", "\n".join(lines))


def main() -> None:
    runs.main(__doc__, TABLE, RUNS, "work_dirs/trees_recipe", prepare, tables)


if __name__ == "__main__":
    main()
