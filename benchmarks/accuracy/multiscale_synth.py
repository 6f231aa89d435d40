"""SPP-net's single- and multi-scale systems, its frozen-conv recipe and a RoIAlign
baseline, trained and tested on the synthetic set with one schedule (CPU).

Runs ``mim train`` on the four C4 configs in two lanes of one thread each (the 3-scale
run alone; the 1-scale run, then the frozen-conv run, which loads its conv layers, then
the baseline), then reads each
run's final VOC mAP and median training time per iteration from MMEngine's
``scalars.json``. The runs' own times depend on what shared the machine with them, so
the four models are also timed side by side in this process (``runs.side_by_side``; the
committed table, from before it, gives inference per 4-image batch). ``--epochs`` shortens
the 24-epoch schedule, with the LR steps at the same fractions (2/3 and 11/12 of it).
Writes ``benchmarks/results/multiscale_synth.{md,csv}``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
import runs
from common import RESULTS, ROOT

ONE_SCALE = "sppnet_r18-w16-c4_1scale_24e_synth-voc"
RUNS = {  # config -> what the README calls it
    ONE_SCALE: "SPP, 1 scale (256)",
    "sppnet_r18-w16-c4_3scale_24e_synth-voc": "SPP, 3 scales (192/256/384), one pooling call",
    "sppnet_r18-w16-c4_frozen-conv_24e_synth-voc": "SPP, 1 scale, frozen conv (the paper's recipe)",
    "faster-rcnn_r18-w16-c4_24e_synth-voc": "RoIAlign 7x7 baseline",
}


def _start(config: str, work_root: Path, epochs: int, extra: list[str]) -> subprocess.Popen:
    milestones = [round(epochs * 16 / 24), round(epochs * 22 / 24)]
    cmd = [str(Path(sys.executable).parent / "mim"), "train", "mmdet", str(common.config_path(config)),
           "--work-dir", str(work_root / config), "--cfg-options", f"train_cfg.max_epochs={epochs}",
           f"train_cfg.val_interval={epochs}", f"param_scheduler.1.end={epochs}",
           f"param_scheduler.1.milestones={milestones}", *extra]
    log = open(work_root / f"{config}.out", "w")
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def _run_lane(lane: list[tuple[str, list[str]]], work_root: Path, epochs: int) -> None:
    """Runs one lane's trainings one after the other; stops the lane at a failure."""
    for config, extra in lane:
        if _start(config, work_root, epochs, extra).wait() != 0:
            print(f"training {config} failed (see {work_root / config}.out)", flush=True)
            return


def _read(run_dir: Path) -> dict:
    """Final mAP and median s / iteration of a run's latest scalars.json."""
    val, s_per_iter = common.last_scalars(run_dir)
    return {"mAP": val["pascal_voc/mAP"], "s_per_iter": s_per_iter}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--work-root", default="work_dirs/multiscale_synth")
    p.add_argument("--tables-only", action="store_true",
                   help="do not train: read the runs already under --work-root, time side by side, write the tables")
    a = p.parse_args()
    work_root = ROOT / a.work_root
    work_root.mkdir(parents=True, exist_ok=True)
    common.ensure_synth_data()
    start = time.time()
    names = list(RUNS)
    if not a.tables_only:
        backbone = work_root / ONE_SCALE / f"epoch_{a.epochs}.pth"
        lanes = [[(names[1], [])],  # the longest run alone
                 [(ONE_SCALE, []), (names[2], [f"model.backbone.init_cfg.checkpoint={backbone}"]), (names[3], [])]]
        with ThreadPoolExecutor(len(lanes)) as pool:
            list(pool.map(lambda lane: _run_lane(lane, work_root, a.epochs), lanes))
        failed = [name for name in names if not (work_root / name / f"epoch_{a.epochs}.pth").exists()]
        if failed:
            raise SystemExit(f"training failed for {failed} (see the .out files in {work_root})")
    results = {name: _read(work_root / name) for name in names}
    trained = time.time() - start
    speed = runs.side_by_side({name: (name, []) for name in names})
    base = speed[ONE_SCALE]
    total = "" if a.tables_only else f" ({trained:.0f} s in all)"
    lines = [f"Synthetic set, {a.epochs} epochs x 100 iterations of 4 images, AdamW; 2-core CPU, two runs at a "
             f"time with 1 thread each{total}. Side by side: a training step (forward + backward) and inference "
             "on the same batches, interleaved in one process, 1 thread, medians of 7.", "",
             common.markdown_table([
                 "system", "config", "VOC mAP@0.5 (11-point), 100 held-out images", "s / iteration in its run",
                 "training s / iteration, side by side", "inference s / image, side by side"],
                 [[RUNS[n], f"`{n}.py`", f"{r['mAP']:.3f}", f"{r['s_per_iter']:.3f}",
                   f"{speed[n][0]:.3f} ({speed[n][0] / base[0]:.2f}x)",
                   f"{speed[n][1]:.3f} ({speed[n][1] / base[1]:.2f}x)"] for n, r in results.items()])]
    common.write_text(RESULTS / "multiscale_synth.md", "\n".join(lines))
    common.write_csv(RESULTS / "multiscale_synth.csv", [
        dict(config=n, epochs=a.epochs, mAP=f"{r['mAP']:.4f}", run_s_per_iter=f"{r['s_per_iter']:.4f}",
             train_s_per_iter_side_by_side=f"{speed[n][0]:.4f}", inference_s_per_image_side_by_side=f"{speed[n][1]:.4f}")
        for n, r in results.items()])


if __name__ == "__main__":
    main()
