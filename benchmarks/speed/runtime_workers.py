"""Processes against threads for the ONNX runtime on whole photographs, side by side.

    .venv/bin/python benchmarks/speed/runtime_workers.py [--model M.onnx] [--reps 3] [--big]

``python -m sppnet_runtime`` (the tree detector exported whole: ``make export-onnx``, by
default work_dirs/demo-real/epoch_36_whole.onnx) on the whole held-out photograph (1249 x
1035) and, with --big, a generated 10,000 x 10,000 px JPEG (the photograph mirrored), each
layout a subprocess, the layouts interleaved over --reps rounds (one for the 100 MP image):

* 1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread (``--workers 2``).

Reported: seconds per megapixel of detection (the runtime's own per-image time: reading
the windows, the graph, merging; not the interpreter's start or the session's load), the
wall time of the whole command, the speed-up over 1 x 1 and its efficiency (speed-up / 2),
the peak resident memory of the largest process, and whether the detections equal those
of 1 x 1 (2 x 1 must: the same sessions' arithmetic; 1 x 2 may differ in the last bits).
Writes benchmarks/results/runtime_workers.{csv,md}.
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py

from common import RESULTS, ROOT, machine, parser, write_csv, write_text

import sliced_trees  # noqa: E402  (benchmarks/accuracy/, on the path common.py sets)

LAYOUTS = {"1 x 1 thread": (1, 1), "1 x 2 threads": (1, 2), "2 processes x 1 thread": (2, 1)}
WORK = ROOT / "work_dirs" / "runtime_workers"
# Runs its arguments and prints the largest resident set of any process it waited for,
# directly or through them (the runtime waits for its workers): one process's peak.
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def run(model: Path, image: Path, workers: int, threads: int, out: Path) -> dict:
    """One subprocess of the runtime; its detection seconds, wall time, peak RSS and boxes."""
    shutil.rmtree(out, ignore_errors=True)  # else the runtime resumes: the image is done already
    cmd = [sys.executable, "-c", PEAK, sys.executable, "-m", "sppnet_runtime", str(model), str(image), "--out-dir",
           str(out), "--threads", str(threads), "--workers", str(workers), "--max-pixels", str(200_000_000)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    seconds = float(re.search(r"boxes \(\d+ above [\d.]+\) in ([\d.]+) s", done.stdout).group(1))
    peak_kb = int(re.search(r"PEAK (\d+)", done.stderr).group(1))
    pred = json.loads((out / "preds" / f"{image.stem}.json").read_text())
    return dict(seconds=seconds, wall=wall, peak_mb=peak_kb / 1024,
                boxes={k: pred[k] for k in ("bboxes", "scores", "labels")})


def main():
    p = parser(__doc__, reps=3)
    p.add_argument("--model", default=str(ROOT / "work_dirs/demo-real/epoch_36_whole.onnx"))
    p.add_argument("--big", action="store_true", help="also the 10,000 x 10,000 px image (minutes)")
    a = p.parse_args()
    model = Path(a.model)
    if not model.is_file():
        sys.exit(f"{model}: no model; run `make export-onnx CONFIG=configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py "
                 "CHECKPOINT=$(cat work_dirs/demo-real/last_checkpoint)` first")
    from imagery.read import open_image
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data

    images = [deepforest_data() / TEST_IMAGE] + ([sliced_trees.mirrored_photo(WORK / "big_10000.jpg")] if a.big else [])
    rows = []
    for image in images:
        with open_image(image, max_pixels=None) as im:
            megapixels, size = im.width * im.height / 1e6, im.size
        results = {name: [] for name in LAYOUTS}
        rounds = 1 if a.quick or megapixels > 50 else a.reps  # the 100 MP image: one round (minutes each)
        for _ in range(rounds):
            for name, (workers, threads) in LAYOUTS.items():  # interleaved: the machine's drift hits all alike
                results[name].append(run(model, image, workers, threads, WORK / "out" / name.replace(" ", "_")))
                print(f"{image.name} {name}: {results[name][-1]['seconds']:.2f} s", flush=True)
        base = statistics.median(r["seconds"] for r in results["1 x 1 thread"])
        for name, runs in results.items():
            med = statistics.median(r["seconds"] for r in runs)
            rows.append(dict(image=f"{image.name} ({size})", layout=name, runs=len(runs), seconds=round(med, 3),
                             s_per_megapixel=round(med / megapixels, 3),
                             wall_s=round(statistics.median(r["wall"] for r in runs), 2),
                             speedup=round(base / med, 2),
                             efficiency=round(base / med / (LAYOUTS[name][0] * LAYOUTS[name][1]), 2),
                             peak_rss_mb=round(max(r["peak_mb"] for r in runs)),
                             same_as_1x1=all(r["boxes"] == results["1 x 1 thread"][0]["boxes"] for r in runs),
                             boxes=len(runs[0]["boxes"]["scores"])))
    write_csv(RESULTS / "runtime_workers.csv", rows)
    table = "| image | layout | s / MP | speed-up over 1 x 1 | efficiency | wall s | peak RSS MB | boxes | same as 1 x 1 |\n" \
            "|---|---|---|---|---|---|---|---|---|\n"
    for r in rows:
        table += (f"| {r['image']} | {r['layout']} | {r['s_per_megapixel']:.3f} | {r['speedup']:.2f}x | "
                  f"{r['efficiency']:.2f} | {r['wall_s']} | {r['peak_rss_mb']} | {r['boxes']} | {r['same_as_1x1']} |\n")
    write_text(RESULTS / "runtime_workers.md", f"Model {model.name}; {machine()}; medians of the interleaved "
               "runs (column runs in the CSV); s / MP is the runtime's own detection time.\n\n" + table)


if __name__ == "__main__":
    main()
