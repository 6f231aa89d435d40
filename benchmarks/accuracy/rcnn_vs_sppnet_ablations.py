"""Why SPP-net trails R-CNN on the same windows: one change at a time, with AP by object size (issue 30).

    .venv/bin/python benchmarks/accuracy/rcnn_vs_sppnet_ablations.py [--data trees] [--lanes 2] [--only ID ...]
                                                            [--tables-only] [--time]

Every row is trained and tested as in ``rcnn_vs_sppnet_table.py`` (same windows, backbone,
head, batches, schedule; ``runs.RunTable``), and its evaluators also report AP40 and AP50 per object size
(``VOCSizeMetric``: < 2, 2-4, 4-8 and >= 8 stride-16 cells a side). Each ablation is one
config that inherits from its base row's config and changes one thing:

  rcnn-fc        R-CNN with every conv layer frozen: against spp1-fc, "where the features come
                 from" is the only difference (the table's R-CNN fine-tunes all layers)
  spp1-fc        SPP-net 1 scale, conv frozen (the paper's system), the base of the rest
  spp1-fc-round  Fast R-CNN's rounding instead of the paper's cell rule (projection='round')
  spp1-fc-align  SPP-Align's bilinear samples, max pooling and the 1/2/3/6 pyramid kept
  spp1-fc-ctx    each window enlarged by R-CNN's context, 227 / 195, before pooling
  spp1-fc-2x     the tile at 800 px: twice the cells per window
  spp1-fc-s8     the same from a stride-8 C4 map (dilated, same weights), the image at 400 px
  spp3-fc-3x     the conv layers at 1x, 2x and 3x, each window pooled where it comes closest to
                 R-CNN's 64 px crop (spp3-fc-3x-224: the paper's 224 px rule)
  spp1-fc-24e    (synthetic set) 24 epochs instead of 6, to rule out under-training
  spp1-full-...  the best one-pass row with every layer fine-tuned, against the fine-tuned
                 SPP-net row (the table's R-CNN fine-tunes every layer too)

Val chooses, test reports. The table shows val and test AP40 (AP50 for the synthetic set),
each row's delta against its base, seeds, and AP by size on both splits.
Writes results/rcnn_vs_sppnet_ablations_<data>_runs.csv (rows) and _<data>.md.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
import rcnn_vs_sppnet_table as table_mod
import runs
import trees
from common import RESULTS
from runs import RunTable, expand

RCNN_FC, SPP_FC = "R-CNN, conv frozen", "SPP-net 1 scale, conv frozen"
C4 = "sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc"
C4_SYNTH = "sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc"
# (id, what changes, base id, config, cfg-options, seeds)
ABLATIONS = {
    "trees": [
        ("spp1-fc", SPP_FC, None, C4, [], (0, 1)),
        ("rcnn-fc", RCNN_FC, "spp1-fc", "rcnn_effnet-lite0-c4_ss_fc-only_36e_trees-voc", [], (0, 1)),
        ("spp1-fc-round", "cells by rounding (projection='round')", "spp1-fc", "sppnet-round" + C4[6:], [], (0, 1)),
        ("spp1-fc-align", "bilinear samples (SPP-Align, max, 1/2/3/6)", "spp1-fc", "sppnet-align-max" + C4[6:], [],
         (0, 1)),
        ("spp1-fc-ctx", "R-CNN's context (x 227/195)", "spp1-fc", "sppnet-context" + C4[6:], [], (0, 1)),
        ("spp1-fc-2x", "2x input (800 px tiles)", "spp1-fc", "sppnet-2x" + C4[6:], [], (0, 1)),
        ("spp1-fc-s8", "stride-8 C4 (dilated, same weights)", "spp1-fc", "sppnet-stride8" + C4[6:], [], (0, 1)),
        ("spp1-fc-align-ctx", "bilinear samples and R-CNN's context (val's two best one-pass changes)",
         "spp1-fc-align", "sppnet-align-max-context" + C4[6:], [], (0, 1, 2)),
        ("spp1-fc-align-ctx-s8", "bilinear samples, context and the stride-8 map (every one-pass change that "
         "raised val AP40)", "spp1-fc-align-ctx", "sppnet-align-max-context-stride8" + C4[6:], [], (0, 1, 2)),
        ("spp1-fc-align-ctx-2x", "bilinear samples and context on 800 px tiles (2x instead of stride 8)",
         "spp1-fc-align-ctx", "sppnet-align-max-context-2x" + C4[6:], [], (0, 1)),
        ("spp3-fc-3x", "3 scales, 400/800/1200 px, each window where it is closest to R-CNN's 64 px crop",
         "spp1-fc", C4.replace("1scale", "3scale-to3x"), [], (0, 1)),
        ("spp3-fc-3x-224", "the paper's 224 px rule for the scale of each window", "spp3-fc-3x",
         "sppnet-224" + C4.replace("1scale", "3scale-to3x")[6:], [], (0, 1)),
    ],
    "synth": [
        ("spp1-fc", SPP_FC, None, C4_SYNTH, [], (0, 1)),
        ("spp1-fc-align", "bilinear samples (SPP-Align, max, 1/2/3/6)", "spp1-fc", "sppnet-align-max" + C4_SYNTH[6:],
         [], (0,)),
        ("spp1-fc-ctx", "R-CNN's context (x 227/195)", "spp1-fc", "sppnet-context" + C4_SYNTH[6:], [], (0, 1)),
        ("spp1-fc-2x", "2x input (512 px images)", "spp1-fc", "sppnet-2x" + C4_SYNTH[6:], [], (0,)),
        ("spp1-fc-s8", "stride-8 C4 (dilated, same weights)", "spp1-fc", "sppnet-stride8" + C4_SYNTH[6:], [], (0, 1)),
        ("spp1-fc-round", "cells by rounding (projection='round')", "spp1-fc", "sppnet-round" + C4_SYNTH[6:], [],
         (0, 1)),
        ("spp1-fc-24e", "24 epochs instead of 6", "spp1-fc", C4_SYNTH.replace("_6e_", "_24e_"),
         ["train_cfg.max_epochs=24"], (0, 1)),
        ("spp1-fc-align-2x", "bilinear samples and 2x input (val's two best changes)", "spp1-fc-2x",
         "sppnet-align-max-2x" + C4_SYNTH[6:], [], (0, 1, 2)),
        ("rcnn-fc", RCNN_FC, "spp1-fc", "rcnn_effnet-lite0-c4_ss_fc-only_6e_synth-voc", [], (0,)),
        ("spp3-fc-3x", "3 scales, 256/512/768 px, each window where it is closest to R-CNN's 64 px crop",
         "spp1-fc", C4_SYNTH.replace("1scale", "3scale-to3x"), [], (0,)),
    ],
}
BINS = ("lt2cells", "2to4cells", "4to8cells", "ge8cells")
BIN_NAMES = dict(zip(BINS, ("< 2 cells", "2-4", "4-8", ">= 8")))
METRICS = [*trees.METRICS, *(f"{ap}_{b}" for ap in ("AP40", "AP50") for b in BINS), *(f"gts_{b}" for b in BINS)]
HEADLINE = {"trees": "AP40", "synth": "AP50"}
# The main table's other rows (rcnn_vs_sppnet_table.py), trained again here for their AP by
# size (the table's runs predate the size metric); base None: not ablations.
TABLE_ROWS = [("spp1-full", "table row: SPP-net 1 scale, every layer fine-tuned", "sppnet_effnet-lite0-c4_1scale_ss"),
              ("align1-fc", "table row: SPP-Align 1 scale (avg, 1/2/4/8), conv frozen",
               "sppnet-align_effnet-lite0-c4_1scale_ss_fc-only"),
              ("spp3-fc", "table row: SPP-net 3 scales to 1.5x, conv frozen", "sppnet_effnet-lite0-c4_3scale_ss_fc-only"),
              ("spp3-full", "table row: SPP-net 3 scales to 1.5x, every layer fine-tuned",
               "sppnet_effnet-lite0-c4_3scale_ss"),
              ("rcnn", "table row: R-CNN, every layer fine-tuned", "rcnn_effnet-lite0-c4_ss")]
for _data, _suffix in (("trees", "_36e_trees-voc"), ("synth", "_6e_synth-voc")):
    ABLATIONS[_data] += [(rid, what, None, stem + _suffix, [], (0,)) for rid, what, stem in TABLE_ROWS]
# The best one-pass row of each set with every layer fine-tuned, against the fine-tuned
# SPP-net row: the fine-tuned systems side by side with the table's R-CNN.
ABLATIONS["trees"].append(("spp1-full-align-ctx-s8", "val's one-pass choice (bilinear, context, stride 8), every layer "
                           "fine-tuned", "spp1-full", "sppnet-align-max-context-stride8" + C4[6:].replace("_fc-only", ""),
                           [], (0, 1, 2)))
ABLATIONS["synth"].append(("spp1-full-align-2x", "val's one-pass choice (bilinear, 2x input), every layer fine-tuned",
                           "spp1-full", "sppnet-align-max-2x" + C4_SYNTH[6:].replace("_fc-only", ""), [], (0, 1, 2)))


def split_metrics(flat: dict) -> dict:
    """The row's metrics of one split from the evaluators' keys."""
    out = trees.metrics(flat)
    out.update({k: flat[f"size/{k}"] for k in METRICS if f"size/{k}" in flat})
    return out


def read(run_dir) -> dict:
    val, s_per_iter = common.last_scalars(run_dir, key="size/AP40_lt2cells")
    row = {f"val_{k}": v for k, v in split_metrics(val).items()}
    row.update({f"test_{k}": v for k, v in split_metrics(trees.test_checkpoint_flat(run_dir)).items()})
    return dict(row, run_s_per_iter=s_per_iter)


def table(data: str) -> RunTable:
    return RunTable(RESULTS / f"rcnn_vs_sppnet_ablations_{data}_runs.csv",
                    [f"{split}_{m}" for split in ("val", "test") for m in METRICS], read, table_mod.EPOCHS[data])


def runs_of(data: str) -> list:
    return expand([(rid, what, f"against {base}" if base else "base row", config, options, seeds)
                   for rid, what, base, config, options, seeds in ABLATIONS[data]])


def mean(rows, key) -> float:
    return statistics.mean(float(r[key]) for r in rows)


def tables(data: str, done: dict) -> None:
    """The ablation table and AP by size; rows without a finished run show as "not run yet"."""
    ap = HEADLINE[data]
    by_id = {rid: [done[r] for r in ([rid] + [f"{rid}-s{s}" for s in seeds if s]) if r in done]
             for rid, _, _, _, _, seeds in ABLATIONS[data]}
    lines = [f"{table_mod.NAME[data]}: one change at a time against a base row ({ap}; means over seeds). Val "
             "chooses; test only reports. Every row: EfficientNet-Lite0 C4, the same selective-search windows, "
             f"head, batches and {table_mod.EPOCHS[data]}-epoch schedule, conv frozen, unless the row changes it.", ""]
    cells = []
    for rid, what, base, _, _, seeds in ABLATIONS[data]:
        rows = by_id[rid]
        if not rows:
            cells.append([rid, what, base or "-", "not run yet", "", "", "", ""])
            continue
        values = []
        for split in ("val", "test"):
            value = mean(rows, f"{split}_{ap}")
            values += [f"{value:.3f}",
                       f"{value - mean(by_id[base], f'{split}_{ap}'):+.3f}" if base and by_id[base] else ""]
        cells.append([rid, what, base or "-", *values, ", ".join(r["seed"] for r in rows)])
    lines.append(common.markdown_table(["row", "what changes", "base", f"val {ap}", "delta", f"test {ap}", "delta",
                                        "seeds"], cells))
    first = next((rows[0] for rows in by_id.values() if rows), None)
    for split in ("val", "test") if first else ():
        gts = {b: int(float(first[f"{split}_gts_{b}"])) for b in BINS}
        lines += ["", f"**{split}: {ap} by object size** (a side in stride-16 cells of the input image; ground-truth "
                  "boxes per bin: " + ", ".join(f"{BIN_NAMES[b]} {gts[b]}" for b in BINS) + ")", "",
                  common.markdown_table(["row", *(BIN_NAMES[b] for b in BINS)], [
                      [rid, *(f"{mean(rows, f'{split}_{ap}_{b}'):.3f}" if gts[b] else "-" for b in BINS)]
                      for rid, rows in by_id.items() if rows])]
    common.write_text(RESULTS / f"rcnn_vs_sppnet_ablations_{data}.md", "\n".join(lines))


# Timed side by side (--time): R-CNN (conv frozen: the same inference as fine-tuned) against
# the base SPP-net and the rows that change the cost (seed 0 of each).
TIMED = {"trees": ("rcnn-fc", "spp1-fc", "spp1-fc-s8", "spp1-fc-align-ctx", "spp1-fc-align-ctx-s8",
                   "spp1-fc-align-ctx-2x", "spp3-fc-3x"),
         "synth": ("rcnn-fc", "spp1-fc", "spp1-fc-align", "spp1-fc-s8", "spp1-fc-2x", "spp1-fc-align-2x", "spp3-fc-3x")}


def time_rows(data: str) -> None:
    """Per-image conv and head time of the TIMED rows' trained models, side by side in one
    process (``rcnn_vs_sppnet.time_trained``: 1 thread, medians of 5 interleaved rounds over
    3 test images), and each row's speed-up over R-CNN; writes _<data>_speed.{md,csv}."""
    import rcnn_vs_sppnet

    common.setup_threads(1)
    work = common.ROOT / f"work_dirs/rcnn_vs_sppnet_ablations_{data}"
    dirs = {k: work / k for k in TIMED[data] if (work / k / "last_checkpoint").exists()}
    table_run = common.ROOT / f"work_dirs/rcnn_vs_sppnet_{data}/rcnn-fc"  # the same config and seed
    if "rcnn-fc" not in dirs and (table_run / "last_checkpoint").exists():
        dirs = {"rcnn-fc": table_run, **dirs}
    if "rcnn-fc" not in dirs:
        raise SystemExit(f"--time needs the rcnn-fc checkpoint under {work} or {table_run}")
    speed = rcnn_vs_sppnet.time_trained(dirs, images=3, rounds=5)
    base = speed["rcnn-fc"]
    rows = [dict(id=k, **{m: f"{v:.4f}" for m, v in t.items()}, speedup_overall=f"{base['total_s'] / t['total_s']:.2f}",
                 speedup_conv=f"{base['conv_s'] / t['conv_s']:.2f}") for k, t in speed.items()]
    common.write_csv(RESULTS / f"rcnn_vs_sppnet_ablations_{data}_speed.csv", rows)
    lines = [f"Trained models side by side, {common.machine()}; medians of 5 interleaved rounds over 3 test images "
             f"({base['proposals']:.0f} windows each on average).", "",
             common.markdown_table(["row", "conv s / image", "head s / image", "total s / image", "speed-up overall",
                                    "speed-up conv"],
                                   [[r["id"], r["conv_s"], r["head_s"], r["total_s"], f"{r['speedup_overall']}x",
                                     f"{r['speedup_conv']}x"] for r in rows])]
    common.write_text(RESULTS / f"rcnn_vs_sppnet_ablations_{data}_speed.md", "\n".join(lines))


def main() -> None:
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data", choices=sorted(ABLATIONS), default="trees")
    pre.add_argument("--time", action="store_true", help="only time the trained TIMED rows side by side")
    known, rest = pre.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    data = known.data
    if known.time:
        time_rows(data)
        return
    runs.main(__doc__, table(data), runs_of(data), f"work_dirs/rcnn_vs_sppnet_ablations_{data}",
              lambda: table_mod.prepare(data), lambda done: tables(data, done), partial_tables=True)


if __name__ == "__main__":
    main()
