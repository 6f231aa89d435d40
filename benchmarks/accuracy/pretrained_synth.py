"""The RoI heads with the ImageNet-pretrained backbone on the synthetic set.

The tree table (``trees.py``) changes two things at once against the synthetic tables
(``align_synth.py``: a narrow ResNet-18 from random init): the backbone is pretrained, and
the photographs are real. These runs fine-tune the trees' pretrained EfficientNet-Lite0
detectors, with the trees' recipe (``configs/_base_/recipes/pretrained_24e_synth.py``), on
the synthetic set, so the two can be told apart: train on ``train.txt`` (320 images),
validate on ``val.txt`` (the trainval images' last 80), test on the 100 ``test.txt``
images with ``mim test``. Same metrics as the trees (all-point AP40, AP50, AP75, mean AP
over 0.5:0.95), same machinery (``runs.RunTable``). Writes ``results/pretrained_synth.md``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import RESULTS
import runs
from runs import RunTable, expand
from trees import ALIGN_MAX, CELLS, FPN, METRICS, ROIALIGN, cell, read

EPOCHS = 24
MODELS = [
    ("synth-fpn-align-max", FPN, ALIGN_MAX, "sppnet-align_effnet-lite0_fpn_24e_synth-voc", [], (0,)),
    ("synth-fpn-roialign", FPN, ROIALIGN, "faster-rcnn_effnet-lite0_fpn_24e_synth-voc", [], (0,)),
    ("synth-fpn-cells", FPN, CELLS, "sppnet_effnet-lite0_fpn_24e_synth-voc", [], (0,)),
]
RUNS = expand(MODELS)
TABLE = RunTable(RESULTS / "pretrained_synth_runs.csv",
                 [f"{split}_{m}" for split in ("val", "test") for m in METRICS], read, EPOCHS)


def tables(done: dict) -> None:
    lines = [f"Synthetic set, EfficientNet-Lite0 ImageNet-pretrained FPN detectors, the trees' recipe ({EPOCHS} "
             "epochs x 80 iterations of 4 images, AdamW lr 5e-4). Cells: AP40 / AP50 / AP75 / mean AP over "
             "0.5:0.95 (all-point), one line per seed; val = the trainval images' last 80, test = the 100 held-out "
             "images.", "", common.markdown_table(["system", "head", "val", "test", "run min"], [
                 [system, head, cell(rows, "val"), cell(rows, "test"), ", ".join(r["wall_min"] for r in rows)]
                 for (system, head), rows in runs.rows_by_model(RUNS, done).items()])]
    common.write_text(RESULTS / "pretrained_synth.md", "\n".join(lines))


def main() -> None:
    runs.main(__doc__, TABLE, RUNS, "work_dirs/pretrained_synth", common.ensure_synth_data, tables)


if __name__ == "__main__":
    main()
