"""The RoI head on real photographs: SPP cells, SPP-Align and RoIAlign on the tree tiles.

Every run fine-tunes the ImageNet-pretrained EfficientNet-Lite0 detector of its config on
the ``train`` tiles of the tree set (prepared from the deepforest wheel if missing) with a
fixed seed (``runs.RunTable``). It is validated on ``val`` at the end of training (the
split every setting is chosen on); then its last checkpoint is tested on ``test`` (another
area of the site, never used to choose anything) with ``mim test``. Metrics, all-point VOC
AP: AP at IoU 0.4 (DeepForest's convention for tree crowns), AP50, AP75 and the mean AP
over 0.5:0.95, on val and on test.

With every run's row present it times the models side by side (``runs.cost_table``) and
writes ``results/trees.{md,csv,png}``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import RESULTS, ROOT
import runs
from runs import RunTable, expand

EPOCHS = 36
RUNS_CSV = RESULTS / "trees_runs.csv"
FPN, C4 = "FPN", "C4, 1 scale"
CELLS, ALIGN_MAX, ALIGN_AVG8, ROIALIGN = ("SPP cells (paper)", "SPP-Align max, r = 2",
                                          "SPP-Align avg, adaptive r, pyramid 1/2/4/8",
                                          "RoIAlign 7x7 + Shared2FC (mmdet's stock head)")
# (id, system, head, config, cfg-options, seeds)
MODELS = [
    ("fpn-cells", FPN, CELLS, "sppnet_effnet-lite0_fpn_36e_trees-voc", [], (0, 1, 2)),
    ("fpn-align-max", FPN, ALIGN_MAX, "sppnet-align_effnet-lite0_fpn_36e_trees-voc", [], (0, 1, 2)),
    ("fpn-roialign", FPN, ROIALIGN, "faster-rcnn_effnet-lite0_fpn_36e_trees-voc", [], (0, 1, 2)),
    ("fpn-align-avg8", FPN, ALIGN_AVG8, "sppnet-align-avg8_effnet-lite0_fpn_36e_trees-voc", [], (0,)),
    ("c4-cells", C4, CELLS, "sppnet_effnet-lite0-c4_1scale_36e_trees-voc", [], (0,)),
    ("c4-align-avg8", C4, ALIGN_AVG8, "sppnet-align_effnet-lite0-c4_1scale_36e_trees-voc", [], (0,)),
    ("c4-roialign", C4, ROIALIGN, "faster-rcnn_effnet-lite0-c4_36e_trees-voc", [], (0,)),
]
# Seed by seed, so that an interrupted table has every head with several seeds at the same
# seeds; the one-seed rows last.
_ONE_SEED = {(system, head) for _, system, head, _, _, seeds in MODELS if len(seeds) == 1}
RUNS = sorted(expand(MODELS), key=lambda r: ((r.system, r.head) in _ONE_SEED, r.seed))
SYSTEMS, HEADS = (FPN, C4), (CELLS, ALIGN_MAX, ALIGN_AVG8, ROIALIGN)
METRICS = ("AP40", "AP50", "AP75", "mAP_50_95")


def metrics(flat: dict) -> dict:
    """AP40, AP50, AP75 and the mean AP over 0.5:0.95 from the trees evaluators' keys."""
    return dict(AP40=flat["iou40/AP40"], AP50=flat["voc_range/AP50"], AP75=flat["voc_range/AP75"],
                mAP_50_95=flat["voc_range/mAP"])


def test_checkpoint(run_dir: Path, name: str = "test", options: list[str] = ()) -> dict:
    """``mim test`` of the run's last checkpoint (on the test split, unless ``options`` say
    otherwise) into ``run_dir/name``; its metrics."""
    return metrics(test_checkpoint_flat(run_dir, name, options))


def test_checkpoint_flat(run_dir: Path, name: str = "test", options: list[str] = ()) -> dict:
    """As ``test_checkpoint``, but every key the evaluators wrote (e.g. ``size/...``)."""
    config = next(run_dir.glob("*.py"))
    checkpoint = (run_dir / "last_checkpoint").read_text().strip()
    out = run_dir / name
    cmd = [str(Path(sys.executable).parent / "mim"), "test", "mmdet", str(config), "--checkpoint", checkpoint,
           "--work-dir", str(out), *(["--cfg-options", *options] if options else [])]
    with open(run_dir / f"{name}.out", "w") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    result = sorted(out.glob("*/*.json"))[-1]
    return json.loads(result.read_text())


def read(run_dir: Path) -> dict:
    val, s_per_iter = common.last_scalars(run_dir, key="voc_range/mAP")
    row = {f"val_{k}": v for k, v in metrics(val).items()}
    row.update({f"test_{k}": v for k, v in test_checkpoint(run_dir).items()})
    return dict(row, run_s_per_iter=s_per_iter)


TABLE = RunTable(RUNS_CSV, [f"{split}_{m}" for split in ("val", "test") for m in METRICS], read, EPOCHS)


def ensure_data() -> None:
    if not (ROOT / "data/trees/VOCtrees/ImageSets/Main/test.txt").exists():
        subprocess.run([sys.executable, "-m", "mmdet_plugin.datasets.trees", "data/trees"], cwd=ROOT, check=True)


# Runs of trees_recipe.py that trained exactly a row of this table (same config settings,
# seed and schedule; they also validated every 6 epochs, which draws no training
# randomness): their checkpoints are tested here instead of training the row again.
ADOPTED = {"fpn-cells": "36e", "fpn-cells-s1": "36e-s1"}


def adopt_recipe_runs() -> None:
    """Appends the rows of ``ADOPTED`` from ``trees_recipe.py``'s finished runs (val from
    their last validation, test with ``mim test``; wall time and load from their rows)."""
    import csv

    done, recipe_csv = TABLE.done(), RESULTS / "trees_recipe_runs.csv"
    recipe_rows = {r["id"]: r for r in csv.DictReader(open(recipe_csv))} if recipe_csv.exists() else {}
    for run in (r for r in RUNS if r.id in ADOPTED and r.id not in done):
        source = ADOPTED[run.id]
        run_dir = ROOT / "work_dirs/trees_recipe" / source
        if source not in recipe_rows or not (run_dir / "last_checkpoint").exists():
            continue
        src = recipe_rows[source]
        assert int(src["seed"]) == run.seed and int(src["epochs"]) == EPOCHS, (run, src)
        metrics = {k: f"{v:.4f}" for k, v in read(run_dir).items()}
        TABLE.append(dict(id=run.id, system=run.system, head=run.head, config=run.config,
                          options=f"adopted from trees_recipe run {source}: {src['config']} {src['options']}",
                          seed=run.seed, epochs=EPOCHS, **metrics,
                          **{k: src[k] for k in ("wall_min", "load_start", "load_end", "finished", "commit")}))
        print(f"adopted {run.id} from trees_recipe run {source}: " + " ".join(f"{k} {v}" for k, v in metrics.items()))


def prepare() -> None:
    ensure_data()
    adopt_recipe_runs()


def cell(rows, split) -> str:
    """One line per seed of the split's metrics, then (with more than one) their mean."""
    return runs.seed_cell(rows, [f"{split}_{m}" for m in METRICS])


def tables(done: dict) -> None:
    import profile_detector

    profile_detector.mmdet_scope()
    by_key = runs.rows_by_model(RUNS, done)
    cost, csv_rows = runs.cost_table(runs.models_of(MODELS), by_key, CELLS, own_data=True)
    lines = [f"Tree tiles (real NEON photographs), EfficientNet-Lite0 ImageNet-pretrained, {EPOCHS} epochs, AdamW. "
             "Each cell: AP40 / AP50 / AP75 / mean AP over 0.5:0.95 (all-point VOC AP), one line per seed. Settings "
             "are chosen on val; test is another area of the site and only reports.", ""]
    for split in ("val", "test"):
        lines += [f"**{split}**", "", common.markdown_table(["head", *SYSTEMS], [
            [head, *(cell(by_key.get((s, head), []), split) for s in SYSTEMS)] for head in HEADS]), ""]
    lines += ["Cost, side by side in one process on the same batches of tiles (1 thread, medians of 7; ratios to "
              "the cells head of the same system), the RoI "
              "stage's share of a profiled training iteration, and each run's wall time (one thread each, two "
              "runs at a time; loads in trees_runs.csv):", "", cost]
    common.write_text(RESULTS / "trees.md", "\n".join(lines))
    common.write_csv(RESULTS / "trees.csv", csv_rows)
    # Test AP40 against val AP40: how far the held-out area falls below val, how far seeds scatter.
    runs.scatter_runs(csv_rows, "val_AP40", ["test_AP40"], HEADS, {FPN: "o", C4: "s"},
                      ["val AP40 (tiles of the training area)", "test AP40 (held-out area)"], RESULTS / "trees.png",
                      "RoI heads on real tree tiles: val against held-out test, per run")
    picture()


PICTURE = ROOT / "work_dirs/trees/detections_test.jpg"


def picture(count: int = 3) -> None:
    """Ground truth beside the detections of the SPP cells detector (seed 0: this table's run,
    or the recipe run it adopted) on the first test
    tiles, into ``PICTURE``. It shows the wheel's imagery, so it stays in work_dirs (never
    committed)."""
    from mmdet_plugin.visualization import draw_gt_beside_predictions

    candidates = [ROOT / "work_dirs/trees/fpn-cells", ROOT / "work_dirs/trees_recipe/36e"]
    run_dir = next((d for d in candidates if (d / "last_checkpoint").exists()), None)
    if run_dir is None:
        print(f"no picture: none of {[str(d) for d in candidates]} holds a checkpoint on this machine")
        return
    checkpoint = (run_dir / "last_checkpoint").read_text().strip()
    draw_gt_beside_predictions(next(run_dir.glob("*.py")), checkpoint, PICTURE, count=count, score_thr=0.5,
                               title=f"{run_dir.name}: ground truth (left) and detections >= 0.5 (right)")


def main() -> None:
    runs.main(__doc__, TABLE, RUNS, "work_dirs/trees", prepare, tables)


if __name__ == "__main__":
    main()
