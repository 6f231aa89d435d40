"""The paper's headline on real photographs: R-CNN and SPP-net on the same selective-search windows.

Every row fine-tunes the ImageNet-pretrained EfficientNet-Lite0 (its stride-16 stage, C4)
and the same SPP head (pyramid 1/2/3/6, fc6 and fc7 256 wide) on the tree tiles' ``train``
split, with the same selective-search windows (fast mode, all of them: 764-1,913 per tile;
``python -m mmdet_plugin.datasets.selective_search data/trees/VOCtrees``, which this script
runs if they are missing), the same 128-window batches (32 positives), the same schedule
(36 epochs, ``configs/_base_/recipes/ss-proposals_36e_trees.py``) and seed. They differ in
where a window's features come from:

  R-CNN        each window cropped with 16/227 context, warped to 64 x 64, through the
               conv layers (configs/rcnn_effnet-lite0-c4_ss_36e_trees-voc.py)
  SPP-net      the conv layers once per tile, each window pooled from the shared map:
               1 scale (400 px) or 3 scales (300/400/600, each window at the scale where it
               is closest to 64 x 64); conv layers frozen (fc-only, the paper's recipe) or
               fine-tuned (all but the stem, as R-CNN)
  SPP-Align    SPP-net 1 scale, fc-only, with the C4 SPP-Align head

Trained with ``mim train`` two at a time, one thread each (``runs.RunTable``: a CSV row
per finished run, committed as it ends; a later start skips them), validated on ``val`` at
the end, the last checkpoint tested on ``test`` (another area, never used to choose).
Metrics as benchmarks/trees.py: AP at IoU 0.4, AP50, AP75, mean AP 0.5:0.95.

    .venv/bin/python benchmarks/rcnn_vs_sppnet_trees.py [--lanes 2] [--only ID ...] [--tables-only]

With every row present, the trained models are timed side by side in this process
(``rcnn_vs_sppnet.time_trained``: conv and head time per test tile, 1 thread, medians) and
``results/rcnn_vs_sppnet_trees.{md,csv}`` are written.
"""
from __future__ import annotations

import subprocess
import sys

import runs
import trees
from common import RESULTS, ROOT
from runs import RunTable, expand

RUNS_CSV = RESULTS / "rcnn_vs_sppnet_trees_runs.csv"
EPOCHS = trees.EPOCHS
FC_ONLY, FULL = "fc-only (conv frozen: the paper)", "all layers but the stem"
RCNN, SPP1, SPP3, ALIGN1 = "R-CNN", "SPP-net 1 scale", "SPP-net 3 scales", "SPP-Align 1 scale"
# (id, system, fine-tuning, config, cfg-options, seeds): the one-seed rows after the two-seed ones.
MODELS = [
    ("rcnn", RCNN, FULL, "rcnn_effnet-lite0-c4_ss_36e_trees-voc", [], (0, 1)),
    ("spp1-fc", SPP1, FC_ONLY, "sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc", [], (0, 1)),
    ("spp1-full", SPP1, FULL, "sppnet_effnet-lite0-c4_1scale_ss_36e_trees-voc", [], (0, 1)),
    ("spp3-fc", SPP3, FC_ONLY, "sppnet_effnet-lite0-c4_3scale_ss_fc-only_36e_trees-voc", [], (0,)),
    ("spp3-full", SPP3, FULL, "sppnet_effnet-lite0-c4_3scale_ss_36e_trees-voc", [], (0,)),
    ("align1-fc", ALIGN1, FC_ONLY, "sppnet-align_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc", [], (0,)),
]
# The two long R-CNN runs in different lanes' first turns would leave the short runs
# waiting; R-CNN seed 0 first, then the short rows, R-CNN seed 1 last but one.
ORDER = ["rcnn", "spp1-fc", "spp1-fc-s1", "align1-fc", "spp1-full", "spp3-fc", "rcnn-s1", "spp3-full",
         "spp1-full-s1"]
RUNS = sorted(expand(MODELS), key=lambda r: ORDER.index(r.id))
TABLE = RunTable(RUNS_CSV, [f"{split}_{m}" for split in ("val", "test") for m in trees.METRICS], trees.read, EPOCHS)
DEVKIT = ROOT / "data/trees/VOCtrees"


def prepare() -> None:
    trees.ensure_data()
    if not all((DEVKIT / "proposals" / f"ss_fast_{s}.pkl").exists() for s in ("train", "val", "test")):
        subprocess.run([sys.executable, "-m", "mmdet_plugin.datasets.selective_search", str(DEVKIT)], cwd=ROOT,
                       check=True)


def tables(done: dict) -> None:
    raise NotImplementedError


def main() -> None:
    runs.main(__doc__, TABLE, RUNS, "work_dirs/rcnn_vs_sppnet_trees", prepare, tables)


if __name__ == "__main__":
    main()
