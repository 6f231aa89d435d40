"""SPP-Align in the detector: one accuracy table against RoIAlign, on the synthetic set.

Every row below is trained with ``mim train`` on the demo's data and schedule (24 epochs
x 100 iterations of 4 images, AdamW) with a fixed seed (``randomness.seed``), two runs
at a time with one thread each, and tested on the 100 held-out images with
``VOCMetric(iou_thrs=0.5:0.05:0.95)`` (11-point AP at each threshold: AP50, AP75 and
their mean over 0.5:0.95). Each finished run appends its row (seed, config, options,
metrics, wall time, the machine's load) to ``results/spp_align_synth_runs.csv`` at once,
so a later start, on this machine or another, skips the runs already there (a run that
was interrupted resumes from its last checkpoint). When every run has its row, the
models are timed side by side in this process (a training step, forward and backward,
and inference, on the same 4-image batches, interleaved, 1 thread, medians), the RoI
stage's share of a training iteration is profiled (``profile_detector``), and the
tables and a plot of mAP against training time are written to
``results/spp_align_synth.{md,csv,png}``.

    .venv/bin/python benchmarks/accuracy/align_synth.py [--lanes 2] [--only ID ...] [--tables-only]

``--only`` trains just those runs (the tables need them all); ``--tables-only`` trains
nothing and writes the tables from the runs' CSV.
"""
from __future__ import annotations


import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
import profile_detector
from common import RESULTS
import runs
from runs import RunTable, expand, roi_share, side_by_side

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


# --------------------------------------------------------------------------- side by side
def _models():
    """{(system, head): (config, options)} of every model in MODELS."""
    return {(system, head): (config, options) for _, system, head, config, options, _ in MODELS}


# --------------------------------------------------------------------------- tables
def tables(done: dict) -> None:
    profile_detector.mmdet_scope()
    speed, share = side_by_side(_models()), roi_share(_models())
    by_key = runs.rows_by_model(RUNS, done)
    lines = [f"Synthetic set, {EPOCHS} epochs x 100 iterations of 4 images, AdamW; 100 held-out images, "
             "VOCMetric (11-point) at IoU 0.5:0.05:0.95. Each cell: AP50 / AP75 / mean AP over 0.5:0.95, one line "
             "per seed.", "",
             "| head | " + " | ".join(SYSTEMS) + " |", "| --- |" + " --- |" * len(SYSTEMS)]
    for head in HEADS:
        cells = []
        for system in SYSTEMS:
            rows = by_key.get((system, head), [])
            cells.append("<br>".join(f"{float(r['AP50']):.3f} / {float(r['AP75']):.3f} / {float(r['mAP_50_95']):.3f}"
                                     f" (seed {r['seed']})" for r in rows) or "")
        lines.append(f"| {head} | " + " | ".join(cells) + " |")
    lines += ["", "Cost, side by side in one process on the same 4-image batches (1 thread, medians of 7; ratios to "
              "the cells row of the same system), the RoI stage's share of a profiled training iteration, and each "
              "run's own wall time (one thread each, usually two runs at a time; a run that resumed from a checkpoint "
              "counts only its resumed part; the load average at its start and end is in spp_align_synth_runs.csv):", "",
              "| system | head | training s / iteration | inference s / image | RoI extraction % of training "
              "iteration | run wall time (min) |", "| --- | --- | --- | --- | --- | --- |"]
    csv_rows = []
    for system in SYSTEMS:
        base = speed.get((system, CELLS))
        for head in HEADS:
            key = (system, head)
            if key not in speed:
                continue
            tr, inf = speed[key]
            walls = ", ".join(r["wall_min"] for r in by_key.get(key, []))
            lines.append(f"| {system} | {head} | {tr:.3f} ({tr / base[0]:.2f}x) | {inf:.4f} ({inf / base[1]:.2f}x) | "
                         f"{share[key]:.1f} | {walls} |")
            for r in by_key.get(key, []):
                csv_rows.append(dict(r, train_s_per_iter_side_by_side=f"{tr:.4f}", train_ratio=f"{tr / base[0]:.3f}",
                                     inference_s_per_image_side_by_side=f"{inf:.5f}",
                                     inference_ratio=f"{inf / base[1]:.3f}", roi_extraction_pct=f"{share[key]:.1f}"))
    common.write_text(RESULTS / "spp_align_synth.md", "\n".join(lines))
    common.write_csv(RESULTS / "spp_align_synth.csv", csv_rows)
    plot(csv_rows)


def plot(rows) -> None:
    """AP50 and AP75 against the side-by-side training step: colour = head, marker = system,
    one point per run (so the two seeds of a row show as two points)."""
    from matplotlib.lines import Line2D

    fig, axes = common.figure(1, 2, figsize=(13, 4.6), sharex=True)
    colours = {head: f"C{i}" for i, head in enumerate(HEADS)}
    markers = {C4: "o", C4X3: "s", FPN: "^"}
    for ax, metric in zip(axes, ("AP50", "AP75")):
        for r in rows:
            ax.scatter(float(r["train_s_per_iter_side_by_side"]), float(r[metric]), marker=markers[r["system"]],
                       color=colours[r["head"]], s=36, alpha=0.85)
        ax.set_xlabel("training s / iteration (side by side, 1 thread)")
        ax.set_ylabel(f"VOC {metric} (11-point)")
        ax.grid(True, alpha=0.3)
    used = {r["head"] for r in rows}
    heads = [Line2D([], [], ls="", marker="s", color=colours[h], label=h) for h in HEADS if h in used]
    systems = [Line2D([], [], ls="", marker=m, color="0.4", label=s) for s, m in markers.items()]
    axes[1].legend(handles=heads + systems, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    common.save_figure(fig, RESULTS / "spp_align_synth.png", "SPP-Align vs SPP cells vs RoIAlign, synthetic set")


def main() -> None:
    runs.main(__doc__, TABLE, RUNS, "work_dirs/align_synth", common.ensure_synth_data, tables)


if __name__ == "__main__":
    main()
