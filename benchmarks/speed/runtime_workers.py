"""Processes against threads for the ONNX runtime and PyTorch on whole photographs, side by side.

``python -m sppnet_runtime`` (the tree detector exported whole, ``make export-onnx``) and
``tools/infer.py`` (the same detector's checkpoint) on the whole held-out photograph
(1249 x 1035) and, with --big, a generated JPEG of --big-side px square (the photograph
mirrored), each layout a subprocess, the layouts interleaved over --reps rounds (one for an
image over 20 MP):

* 1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread (the runtime's
  ``--workers 2``; for PyTorch ``torchrun --standalone --nproc_per_node 2 ... --launcher
  pytorch``, two gloo ranks). PyTorch's threads: OMP_NUM_THREADS.

Reported: seconds per megapixel of detection (the runtime's own per-image time: reading
the windows, the graph, merging; not the interpreter's start or the session's load), the
wall time of the whole command, the speed-up over 1 x 1 and its efficiency (speed-up / 2),
the peak resident memory of the largest process, and whether the detections equal those
of 1 x 1 (2 x 1 must: the same sessions' arithmetic; 1 x 2 may differ in the last bits).
For PyTorch's ranks also the merge's seconds (every rank merges) and rank 0's seconds in
the gathers (waiting for the other rank included). Writes
benchmarks/results/runtime_workers.{csv,md}.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py

from common import (ROOT, TREES_CONFIG, checkpoint_of, detector_args, interleaved, machine, markdown_table, parser,
                    result, write_csv, write_text)

import sliced_trees  # noqa: E402  (benchmarks/accuracy/, on the path common.py sets)

LAYOUTS = {"1 x 1 thread": (1, 1), "1 x 2 threads": (1, 2), "2 processes x 1 thread": (2, 1)}
WORK = ROOT / "work_dirs" / "runtime_workers"
# Runs its arguments and prints the largest resident set of any process it waited for,
# directly or through them (the runtime waits for its workers): one process's peak.
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)")


def run(engine: str, a, image: Path, workers: int, threads: int, out: Path) -> dict:
    """One subprocess of the runtime or tools/infer.py; its detection seconds, wall time,
    peak RSS, boxes and (PyTorch's ranks) merge and gather seconds."""
    shutil.rmtree(out, ignore_errors=True)  # else the tool resumes: the image is done already
    shared_args = [str(image), "--out-dir", str(out), "--max-pixels", str(200_000_000)]
    if engine == "onnx":
        tool = ["-m", "sppnet_runtime", a.model, *shared_args, "--threads", str(threads), "--workers", str(workers)]
    else:
        tool = [str(ROOT / "tools" / "infer.py"), a.config, str(a.checkpoint), *shared_args]
        if workers > 1:
            tool = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}", *tool,
                    "--launcher", "pytorch"]
    cmd = [sys.executable, "-c", PEAK, sys.executable, *tool]
    start = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    seconds = float(re.search(r"boxes \(\d+ above [\d.]+\) in ([\d.]+) s", done.stdout).group(1))
    peak_kb = int(re.search(r"PEAK (\d+)", done.stderr).group(1))
    pred = json.loads((out / "preds" / f"{image.stem}.json").read_text())
    merging = re.search(r"\(merging ([\d.]+) s\)", done.stdout)
    gather = re.search(r"rank 0 spent ([\d.]+) s in gathering", done.stdout)
    return dict(seconds=seconds, wall=wall, peak_mb=peak_kb / 1024, merge_s=float(merging.group(1)) if merging else "",
                gather_s=float(gather.group(1)) if gather else "",
                boxes={k: pred[k] for k in ("bboxes", "scores", "labels")})


def main():
    p = parser(__doc__, reps=3)
    load_before = os.getloadavg()[0]  # the runs themselves load the machine: machine() reports the end
    detector_args(p, onnx=True)
    p.add_argument("--engines", default="onnx,torch", help="onnx (the runtime), torch (tools/infer.py), or both")
    p.add_argument("--big", action="store_true", help="also a generated --big-side px square image (minutes)")
    p.add_argument("--big-side", type=int, default=10000, help="its side, at most 10000 (a crop of the 10,000 px one)")
    a = p.parse_args()
    engines = a.engines.split(",")
    if "onnx" in engines and not Path(a.model).is_file():
        sys.exit(f"{a.model}: no model; run `make export-onnx CONFIG={TREES_CONFIG} "
                 "CHECKPOINT=$(cat work_dirs/demo-real/last_checkpoint)` first")
    if "torch" in engines:
        a.checkpoint = checkpoint_of(a)
        if not a.checkpoint.is_file():
            sys.exit(f"{a.checkpoint}: no checkpoint; run `make demo-real` first")
    from imagery.read import open_image
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data

    images = [deepforest_data() / TEST_IMAGE]
    if a.big:
        images.append(sliced_trees.mirrored_photo(WORK / "big_10000.jpg"))
        if a.big_side < 10000:
            from PIL import Image

            crop = WORK / f"big_{a.big_side}.jpg"
            if not crop.exists():
                Image.open(images[-1]).crop((0, 0, a.big_side, a.big_side)).save(crop, quality=90)
            images[-1] = crop
    rows = []
    for image in images:
        with open_image(image, max_pixels=None) as im:
            megapixels, size = im.width * im.height / 1e6, im.size
        runs_of = {(e, name): [] for e in engines for name in LAYOUTS}

        def one(engine: str, name: str) -> dict:  # a layout's run: all of it kept, its seconds and wall medianed
            got = run(engine, a, image, *LAYOUTS[name], WORK / "out" / name.replace(" ", "_"))
            runs_of[engine, name].append(got)
            print(f"{image.name} {engine} {name}: {got['seconds']:.2f} s", flush=True)
            return {k: got[k] for k in ("seconds", "wall")}

        rounds = 1 if a.quick or megapixels > 20 else a.reps  # a generated image: one round (minutes each)
        # each run a fresh subprocess: no warm-up round
        medians = interleaved({key: partial(one, *key) for key in runs_of}, rounds, warmup=0, parts=True)
        for (engine, name), runs in runs_of.items():
            base, med = medians[engine, "1 x 1 thread"]["seconds"], medians[engine, name]["seconds"]
            rows.append(dict(image=f"{image.name} ({size})", engine=engine, layout=name, runs=len(runs),
                             seconds=round(med, 3), s_per_megapixel=round(med / megapixels, 3),
                             wall_s=round(medians[engine, name]["wall"], 2), speedup=round(base / med, 2),
                             efficiency=round(base / med / (LAYOUTS[name][0] * LAYOUTS[name][1]), 2),
                             peak_rss_mb=round(max(r["peak_mb"] for r in runs)),
                             same_as_1x1=all(r["boxes"] == runs_of[engine, "1 x 1 thread"][0]["boxes"] for r in runs),
                             boxes=len(runs[0]["boxes"]["scores"]),
                             merge_s=runs[0]["merge_s"], gather_s=runs[0]["gather_s"]))
    write_csv(result("runtime_workers.csv", a), rows)
    table = markdown_table(
        ["image", "engine", "layout", "s / MP", "speed-up over 1 x 1", "efficiency", "wall s", "peak RSS MB", "boxes",
         "same as 1 x 1", "merge s", "rank 0 in gathers s"],
        [[r["image"], r["engine"], r["layout"], f"{r['s_per_megapixel']:.3f}", f"{r['speedup']:.2f}x",
          f"{r['efficiency']:.2f}", r["wall_s"], r["peak_rss_mb"], r["boxes"], r["same_as_1x1"], r["merge_s"],
          r["gather_s"]] for r in rows])
    models = ", ".join(f"{Path(m).name} ({e})" for e, m in (("onnx", a.model), ("torch", a.checkpoint)) if e in engines)
    write_text(result("runtime_workers.md", a), f"Models {models}; "
               f"{machine()} (at the end; {load_before:.2f} before the first run); medians of the interleaved "
               "runs (column runs in the CSV); s / MP is the tool's own detection time (rank 0's, for PyTorch's "
               "ranks).\n\n" + table)


if __name__ == "__main__":
    main()
