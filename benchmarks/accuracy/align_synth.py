"""SPP-Align in the detector: one accuracy table against RoIAlign, on the synthetic set.

Every row is trained with ``mim train`` on the demo's data and schedule (24 epochs x 100
iterations of 4 images, AdamW) with a fixed seed (``randomness.seed``; ``runs.RunTable``),
and tested on the 100 held-out images with ``VOCMetric(iou_thrs=0.5:0.05:0.95)`` (11-point
AP at each threshold: AP50, AP75 and their mean over 0.5:0.95). With every row present,
the models' cost is measured side by side (``runs.cost_table``) and the tables and a plot
of AP against the training step are written to ``results/spp_align_synth.{md,csv,png}``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
import profile_detector
from common import RESULTS
import runs
from runs import RunTable, expand

EPOCHS = 24
IOU_THRS = [round(0.5 + 0.05 * i, 2) for i in range(10)]
RUNS_CSV = RESULTS / "spp_align_synth_runs.csv"
C4, C4X3, FPN = "C4, 1 scale", "C4, 3 scales", "FPN"
CELLS, ROUND, ALIGN_MAX, ALIGN_AVG, ROIALIGN = ("SPP cells (paper projection)", 'SPP cells, projection="round"',
                                                "SPP-Align max, r = 2", "SPP-Align avg, r = 2",
                                                "RoIAlign 7x7 + Shared2FC (mmdet's stock head)")
# Candidates for the gap to RoIAlign on the coarse C4 map (what RoIAlign 7x7 has and the
# 1/2/3/6 pyramid lacks): adaptive sampling, a finer top grid.
ALIGN_AVG_ADAPTIVE, ALIGN_AVG_R3, ALIGN_AVG_8, ALIGN_AVG_8_ADAPTIVE, ALIGN_MAX_8 = (
    "SPP-Align avg, adaptive r", "SPP-Align avg, r = 3", "SPP-Align avg, r = 2, pyramid 1/2/4/8",
    "SPP-Align avg, adaptive r, pyramid 1/2/4/8", "SPP-Align max, r = 2, pyramid 1/2/4/8")
PYRAMID_8 = ["model.roi_head.bbox_roi_extractor.pyramid=(1,2,4,8)", "model.roi_head.bbox_head.pyramid=(1,2,4,8)"]
EXTRACTOR = "model.roi_head.bbox_roi_extractor"
AVG, ADAPTIVE, R3 = ([f"{EXTRACTOR}.mode=avg"], [f"{EXTRACTOR}.sampling_ratio=0"],
                     [f"{EXTRACTOR}.sampling_ratio=3"])
CELLS_C4, CELLS_C4X3, CELLS_FPN = ("sppnet_r18-w16-c4_1scale_24e_synth-voc", "sppnet_r18-w16-c4_3scale_24e_synth-voc",
                                   "sppnet_r18-w16_fpn_24e_synth-voc")
ALIGN_C4, ALIGN_C4X3, ALIGN_FPN = ("sppnet-align" + c[len("sppnet"):] for c in (CELLS_C4, CELLS_C4X3, CELLS_FPN))
ROIALIGN_C4, ROIALIGN_FPN = "faster-rcnn_r18-w16-c4_24e_synth-voc", "faster-rcnn_r18-w16_fpn_24e_synth-voc"
# (id, system, head, config, cfg-options, seeds): one model each, trained once per seed,
# the rows the comparison turns on first.
MODELS = [
    ("c4-cells", C4, CELLS, CELLS_C4, [], (0,)),
    ("c4-align-max", C4, ALIGN_MAX, ALIGN_C4, [], (0, 1)),
    ("c4-roialign", C4, ROIALIGN, ROIALIGN_C4, [], (0, 1, 2)),
    ("fpn-align-max", FPN, ALIGN_MAX, ALIGN_FPN, [], (0, 1)),
    ("fpn-roialign", FPN, ROIALIGN, ROIALIGN_FPN, [], (0, 1)),
    ("c4-align-avg", C4, ALIGN_AVG, ALIGN_C4, AVG, (0,)),
    ("c4-cells-round", C4, ROUND, CELLS_C4, [f"{EXTRACTOR}.projection=round"], (0,)),
    ("fpn-cells", FPN, CELLS, CELLS_FPN, [], (0,)),
    ("fpn-align-avg", FPN, ALIGN_AVG, ALIGN_FPN, AVG, (0,)),
    ("c4x3-cells", C4X3, CELLS, CELLS_C4X3, [], (0,)),
    ("c4x3-align-max", C4X3, ALIGN_MAX, ALIGN_C4X3, [], (0,)),
    # Candidates for the gap to RoIAlign on the C4 map, then more seeds for the close ones.
    ("c4-align-avg-adaptive", C4, ALIGN_AVG_ADAPTIVE, ALIGN_C4, AVG + ADAPTIVE, (0, 1, 2)),
    ("c4-align-avg-r3", C4, ALIGN_AVG_R3, ALIGN_C4, AVG + R3, (0,)),
    ("c4-align-avg-8", C4, ALIGN_AVG_8, ALIGN_C4, AVG + PYRAMID_8, (0, 1, 2)),
    ("c4-align-max-8", C4, ALIGN_MAX_8, ALIGN_C4, PYRAMID_8, (0,)),
    ("c4-align-avg-8-adaptive", C4, ALIGN_AVG_8_ADAPTIVE, ALIGN_C4, AVG + ADAPTIVE + PYRAMID_8, (0, 1, 2)),
]
RUNS = expand(MODELS)
SYSTEMS = (C4, C4X3, FPN)
HEADS = (CELLS, ROUND, ALIGN_MAX, ALIGN_AVG, ALIGN_AVG_ADAPTIVE, ALIGN_AVG_R3, ALIGN_AVG_8, ALIGN_AVG_8_ADAPTIVE, ALIGN_MAX_8,
         ROIALIGN)


def _metric_options() -> list[str]:
    thrs = "[" + ",".join(str(t) for t in IOU_THRS) + "]"
    return [f"val_evaluator.iou_thrs={thrs}", f"test_evaluator.iou_thrs={thrs}"]


def _read(run_dir) -> dict:
    """AP50, AP75, mean AP over 0.5:0.95 and the median s / iteration of the run's last scalars.json."""
    val, s_per_iter = common.last_scalars(run_dir)
    return dict(AP50=val["pascal_voc/AP50"], AP75=val["pascal_voc/AP75"], mAP_50_95=val["pascal_voc/mAP"],
                run_s_per_iter=s_per_iter)


TABLE = RunTable(RUNS_CSV, ["AP50", "AP75", "mAP_50_95"], _read, EPOCHS, _metric_options())


def tables(done: dict) -> None:
    profile_detector.mmdet_scope()
    by_key = runs.rows_by_model(RUNS, done)
    models = runs.models_of(MODELS)
    in_order = {(system, head): models[(system, head)] for system in SYSTEMS for head in HEADS
                if (system, head) in models}
    cost, csv_rows = runs.cost_table(in_order, by_key, CELLS)
    lines = [f"Synthetic set, {EPOCHS} epochs x 100 iterations of 4 images, AdamW; 100 held-out images, "
             "VOCMetric (11-point) at IoU 0.5:0.05:0.95. Each cell: AP50 / AP75 / mean AP over 0.5:0.95, one line "
             "per seed.", "", common.markdown_table(["head", *SYSTEMS], [
                 [head, *(runs.seed_cell(by_key.get((system, head), []), ("AP50", "AP75", "mAP_50_95"), mean=False)
                          for system in SYSTEMS)] for head in HEADS])]
    lines += ["", "Cost, side by side in one process on the same 4-image batches (1 thread, medians of 7; ratios to "
              "the cells row of the same system), the RoI stage's share of a profiled training iteration, and each "
              "run's own wall time (one thread each, usually two runs at a time; a run that resumed from a checkpoint "
              "counts only its resumed part; the load average at its start and end is in spp_align_synth_runs.csv):",
              "", cost]
    common.write_text(RESULTS / "spp_align_synth.md", "\n".join(lines))
    common.write_csv(RESULTS / "spp_align_synth.csv", csv_rows)
    runs.scatter_runs(csv_rows, "train_s_per_iter_side_by_side", ["AP50", "AP75"], HEADS,
                      {C4: "o", C4X3: "s", FPN: "^"},
                      ["training s / iteration (side by side, 1 thread)", "VOC AP50 (11-point)", "VOC AP75 (11-point)"],
                      RESULTS / "spp_align_synth.png", "SPP-Align vs SPP cells vs RoIAlign, synthetic set",
                      figsize=(13, 4.6))


def main() -> None:
    runs.main(__doc__, TABLE, RUNS, "work_dirs/align_synth", common.ensure_synth_data, tables)


if __name__ == "__main__":
    main()
