"""The paper's headline, both halves: R-CNN and SPP-net trained on the same selective-search windows.

Every row fine-tunes the ImageNet-pretrained EfficientNet-Lite0 (up to its stride-16 stage,
C4) and the same SPP head (pyramid 1/2/3/6, fc6 and fc7 256 wide) on the ``train`` split
of one data set (``--data``), with the same selective-search windows (fast mode, all of
them; ``python -m mmdet_plugin.datasets.selective_search <devkit>``, which this script runs
if they are missing), the same 128-window batches per image (32 positives, IoU >= 0.5),
the same schedule and seed. They differ in where a window's features come from:

  R-CNN        each window cropped with 16/227 context, warped to 64 x 64, through the
               conv layers (mmdet_plugin's RCNN; configs/rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_*.py)
  SPP-net      the conv layers once per image, each window pooled from the shared map:
               1 scale, or 3 scales with each window at the scale where it is closest to
               64 x 64 (R-CNN's crop); conv layers frozen (fc-only, the paper's recipe) or
               fine-tuned (all but the stem, as R-CNN)
  SPP-Align    SPP-net 1 scale, fc-only, with the C4 SPP-Align head

Data sets: ``trees`` (the real tree tiles, 36 epochs: the schedule chosen on their val
split for the RPN detectors, configs/_base_/recipes/ss-proposals_36e_trees.py) and
``synth`` (the generated shapes, 6 epochs: configs/_base_/recipes/ss-proposals_6e_synth.py
says why not 24).

Trained with ``runs.RunTable``, validated on ``val`` at the end, the last checkpoint tested
on ``test`` (never used to choose anything). Metrics as trees.py: AP at IoU 0.4, AP50,
AP75, mean AP 0.5:0.95. With every row present, the trained models (seed 0) are timed side by side in this process
(``rcnn_vs_sppnet.time_trained``: conv and head time per test image, 1 thread, medians)
and ``results/rcnn_vs_sppnet_<data>.{md,csv}`` are written.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import runs
import trees
from common import RESULTS, ROOT
from runs import RunTable, expand

EPOCHS = {"trees": trees.EPOCHS, "synth": 6}
FC_ONLY, FULL = "fc-only (conv frozen: the paper)", "all layers but the stem"
RCNN, SPP1, SPP3, ALIGN1 = "R-CNN", "SPP-net 1 scale", "SPP-net 3 scales", "SPP-Align 1 scale"
# (id, system, fine-tuning, config without its data suffix, seeds on the trees / synthetic set)
ROWS = [
    ("rcnn", RCNN, FULL, "rcnn_effnet-lite0-c4_ss", (0, 1), (0,)),
    ("rcnn-fc", RCNN, FC_ONLY, "rcnn_effnet-lite0-c4_ss_fc-only", (0,), (0,)),
    ("spp1-fc", SPP1, FC_ONLY, "sppnet_effnet-lite0-c4_1scale_ss_fc-only", (0, 1), (0, 1)),
    ("spp1-full", SPP1, FULL, "sppnet_effnet-lite0-c4_1scale_ss", (0,), (0,)),
    ("spp3-fc", SPP3, FC_ONLY, "sppnet_effnet-lite0-c4_3scale_ss_fc-only", (0,), (0,)),
    ("spp3-full", SPP3, FULL, "sppnet_effnet-lite0-c4_3scale_ss", (0,), (0,)),
    ("align1-fc", ALIGN1, FC_ONLY, "sppnet-align_effnet-lite0-c4_1scale_ss_fc-only", (0,), (0,)),
]
# (id, system, fine-tuning, config, cfg-options, seeds) per data set.
MODELS = {data: [(rid, system, head, config + suffix, [], seeds[i]) for rid, system, head, config, *seeds in ROWS]
          for i, (data, suffix) in enumerate((("trees", "_36e_trees-voc"), ("synth", "_6e_synth-voc")))}
# Run order: the long R-CNN runs first and last, the short rows between them.
ORDER = {"trees": ["rcnn", "spp1-fc", "spp1-fc-s1", "align1-fc", "spp1-full", "spp3-fc", "rcnn-s1", "spp3-full",
                   "rcnn-fc"],
         "synth": ["rcnn", "spp1-fc", "spp1-fc-s1", "align1-fc", "spp3-fc", "spp1-full", "spp3-full", "rcnn-fc"]}
DEVKIT = {"trees": ROOT / "data/trees/VOCtrees", "synth": ROOT / "data/synth_voc/VOCsynth"}
NAME = {"trees": "Tree tiles (real NEON photographs, 400 x 400)", "synth": "Synthetic shapes (256 x 256)"}


def runs_of(data: str) -> list:
    return sorted(expand(MODELS[data]), key=lambda r: ORDER[data].index(r.id))


def table(data: str) -> RunTable:
    return RunTable(RESULTS / f"rcnn_vs_sppnet_{data}_runs.csv",
                    [f"{split}_{m}" for split in ("val", "test") for m in trees.METRICS], trees.read, EPOCHS[data])


def prepare(data: str) -> None:
    if data == "trees":
        trees.ensure_data()
    else:
        import common

        common.ensure_synth_data()
    if not all((DEVKIT[data] / "proposals" / f"ss_fast_{s}.pkl").exists() for s in ("train", "val", "test")):
        subprocess.run([sys.executable, "-m", "mmdet_plugin.datasets.selective_search", str(DEVKIT[data]), "--splits",
                        "train", "val", "test"], cwd=ROOT, check=True)


# Timed side by side: one trained model per system (seed 0); the fine-tuning mode does not
# change the inference cost. Paper: Table 10 (ZF-5 for both, one GPU; rcnn_vs_sppnet.PAPER);
# its 5 scales against our 3.
TIMED = {"rcnn": RCNN, "spp1-fc": SPP1, "spp3-fc": SPP3, "align1-fc": ALIGN1}
PAPER_ROWS = {RCNN: ("rcnn", ""), SPP1: ("spp_1scale", ""), SPP3: ("spp_5scale", " (5 scales)")}
TIMED_IMAGES, TIMED_ROUNDS = 3, 5


def summary(rows) -> dict:
    """Mean over seeds of each metric, per split."""
    import statistics

    return {f"{split}_{m}": statistics.mean(float(r[f"{split}_{m}"]) for r in rows)
            for split in ("val", "test") for m in trees.METRICS}


def timings(data: str) -> tuple[dict, bool]:
    """({run id: conv_s, head_s, total_s, proposals} of the TIMED runs, whether the figures
    were kept from before rather than measured now): timed side by side now
    if their checkpoints are on this machine, else the figures of the last table that timed
    them (``rcnn_vs_sppnet_<data>.csv``), so that a new row can join the table without
    retraining every other."""
    import csv

    dirs = {k: ROOT / f"work_dirs/rcnn_vs_sppnet_{data}" / k for k in TIMED}
    if all((d / "last_checkpoint").exists() for d in dirs.values()):
        import rcnn_vs_sppnet

        return rcnn_vs_sppnet.time_trained(dirs, images=TIMED_IMAGES, rounds=TIMED_ROUNDS), False
    with open(RESULTS / f"rcnn_vs_sppnet_{data}.csv") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    print(f"timings: checkpoints of {[k for k, d in dirs.items() if not (d / 'last_checkpoint').exists()]} are not "
          f"here; the side-by-side figures of rcnn_vs_sppnet_{data}.csv are kept", flush=True)
    return {k: {m: float(rows[k][f"{m}_side_by_side"]) for m in ("conv_s", "head_s", "total_s", "proposals")}
            for k in TIMED}, True


def paper_cell(system: str) -> str:
    import rcnn_vs_sppnet

    if system not in PAPER_ROWS:
        return "-"
    key, note = PAPER_ROWS[system]
    paper = rcnn_vs_sppnet.PAPER[key]
    return (f"{paper['conv']} / {paper['head'] or '-'}, {paper.get('speedup', 1)}x / "
            f"{paper.get('speedup_conv', 1)}x{note}")


def tables(data: str, done: dict) -> None:
    import common

    common.setup_threads(1)
    by_model = {}
    for rid, system, tune, config, _, seeds in MODELS[data]:
        by_model[(system, tune)] = [done[rid if s == 0 else f"{rid}-s{s}"] for s in seeds]
    measured, kept = timings(data)
    speed = {TIMED[k]: v for k, v in measured.items()}
    base = speed[RCNN]
    records = json.loads((DEVKIT[data] / "proposals" / "ss_fast_test.json").read_text())
    lines = [f"{NAME[data]}, EfficientNet-Lite0 ImageNet-pretrained up to stride 16, the same "
             f"SPP head, the same selective-search windows (fast mode; test: {records['proposals_mean']:.0f} per image, "
             f"recall {records['recall_iou50']:.3f} at IoU 0.5 and {records['recall_iou70']:.3f} at 0.7, the ceiling "
             f"of every row), 128-window batches with 32 positives, {EPOCHS[data]} epochs of AdamW. Each cell: AP40 / "
             "AP50 / AP75 / mean AP over 0.5:0.95, one line per seed, then the mean. Val chooses; test only reports"
             + (" (another area of the site)." if data == "trees" else "."), ""]
    for split in ("val", "test"):
        lines += [f"**{split}**", "", common.markdown_table(["system", FC_ONLY, FULL], [
            [system, *(trees.cell(by_model[(system, t)], split) if (system, t) in by_model else "-"
                       for t in (FC_ONLY, FULL))] for system in (RCNN, SPP1, SPP3, ALIGN1)]), ""]
    lines += [f"Time per test image ({base['proposals']:.0f} windows on average over the {TIMED_IMAGES} "
              f"timed images), trained models side by side in one process (1 thread, medians of {TIMED_ROUNDS} "
              "interleaved rounds; R-CNN's conv = crop + warp + backbone for every window, in chunks of 256; head = "
              "SPP pooling + fc + box decoding + NMS). Paper: ZF-5 for both, one GPU, VOC (Table 10)."
              + (" These figures were kept from the table's last side-by-side timing: the timed checkpoints were "
                 "not on the machine that added a row since." if kept else ""), "",
              common.markdown_table(["system", "conv s / image", "head s / image", "total s / image",
                                     "speed-up overall", "speed-up conv",
                                     "paper: conv / head s, speed-up overall / conv"], [
                  [system, f"{t['conv_s']:.3f}", f"{t['head_s']:.3f}", f"{t['total_s']:.3f}",
                   f"{base['total_s'] / t['total_s']:.1f}x", f"{base['conv_s'] / t['conv_s']:.1f}x",
                   paper_cell(system)] for system, t in speed.items()])]
    rcnn, spp1 = summary(by_model[(RCNN, FULL)]), summary(by_model[(SPP1, FC_ONLY)])
    spp1_full = summary(by_model[(SPP1, FULL)])
    lines += ["", f"The paper's claim on these images: SPP-net 1 scale (fc-only, the paper's recipe) against R-CNN, "
              f"means over seeds: test AP40 {spp1['test_AP40']:.3f} vs {rcnn['test_AP40']:.3f}, AP50 "
              f"{spp1['test_AP50']:.3f} vs {rcnn['test_AP50']:.3f} (val AP40 {spp1['val_AP40']:.3f} vs "
              f"{rcnn['val_AP40']:.3f}); fine-tuning all layers: test AP40 {spp1_full['test_AP40']:.3f}, val "
              f"{spp1_full['val_AP40']:.3f}; {base['total_s'] / speed[SPP1]['total_s']:.0f}x faster overall, "
              f"{base['conv_s'] / speed[SPP1]['conv_s']:.0f}x in the conv layers."]
    common.write_text(RESULTS / f"rcnn_vs_sppnet_{data}.md", "\n".join(lines))
    csv_rows = []
    for (system, tune), rows in by_model.items():
        t = speed.get(system, {})
        for r in rows:
            csv_rows.append(dict(r, fine_tuning=tune, **{f"{k}_side_by_side": f"{v:.4f}" for k, v in t.items()},
                                 speedup_overall=f"{base['total_s'] / t['total_s']:.2f}" if t else "",
                                 speedup_conv=f"{base['conv_s'] / t['conv_s']:.2f}" if t else ""))
    common.write_csv(RESULTS / f"rcnn_vs_sppnet_{data}.csv", csv_rows)
    common.write_csv(RESULTS / f"selective_search_{data}.csv", [
        json.loads((DEVKIT[data] / "proposals" / f"ss_fast_{s}.json").read_text()) for s in ("train", "val", "test")])


def main() -> None:
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data", choices=sorted(MODELS), default="trees")
    known, rest = pre.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    data = known.data
    runs.main(__doc__, table(data), runs_of(data), f"work_dirs/rcnn_vs_sppnet_{data}", lambda: prepare(data),
              lambda done: tables(data, done))


if __name__ == "__main__":
    main()
