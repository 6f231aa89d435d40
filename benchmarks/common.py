"""What every benchmark script shares: command-line basics, threads, timing, writers.

Each script keeps only its providers, its workload and its table; this module does the
rest the same way everywhere:

* ``parser(doc)``: argparse with ``--reps``, ``--threads`` and ``--quick``.
* ``setup_threads(n)``: one intra-op thread by default (on a small shared CPU two
  OpenMP threads competing with another job run slower and far more erratically).
* ``bench(fn, device, reps)``: median seconds; ``triton.testing.do_bench`` on CUDA,
  ``median_time`` (wall clock after one warm-up) on CPU.
* ``interleaved(fns, rounds)``: the one side-by-side runner: rows called in turn, round
  after round, so that the machine's drift hits each alike; medians.
* ``write_csv``, ``write_text``, ``markdown_table`` and ``figure``/``save_figure`` (matplotlib, Agg).
* ``detector_args``/``tree_detector``: the trained tree detector (``make demo-real``) that
  the whole-photograph scripts run.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # the scripts run from a checkout, the package maybe not installed
    sys.path.insert(0, str(ROOT))
# The two folders of scripts import each other's modules (the accuracy tables time their
# trained models with speed/rcnn_vs_sppnet.py), so both are importable from either.
for _folder in ("speed", "accuracy"):
    if str(ROOT / "benchmarks" / _folder) not in sys.path:
        sys.path.insert(1, str(ROOT / "benchmarks" / _folder))


def parser(doc: str, reps: int = 5, threads: int = 1, quick: bool = True) -> argparse.ArgumentParser:
    """argparse with ``--reps``, ``--threads`` and, for a script that has a smoke run, ``--quick``."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--reps", type=int, default=reps, help="timed repetitions (medians are reported)")
    p.add_argument("--threads", type=int, default=threads,
                   help=f"torch intra-op threads (0: torch's default; default {threads}). One is the usual "
                        "default: on a shared 2-core machine two OpenMP threads ran up to 20x slower and erratically")
    if quick:
        p.add_argument("--quick", action="store_true",
                       help="a smoke run: fewest points and repetitions, written to *_quick files")
    return p


def result(name: str, args) -> Path:
    """``results/<name>``, or ``<name>_quick`` after ``--quick``, so that a smoke run never
    overwrites the committed figures. ``name`` may end in a suffix (``sliced_trees_test.jpg``)."""
    name = Path(name)
    return RESULTS / (name.stem + ("_quick" if getattr(args, "quick", False) else "") + name.suffix)


def setup_threads(threads: int) -> int:
    """Sets torch's intra-op threads (0 keeps torch's default); returns the count in use."""
    if threads > 0:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for subprocesses
    return torch.get_num_threads()


def median_time(fn, reps: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``reps`` calls after ``warmup`` calls."""
    return interleaved({None: fn}, reps, warmup)[None]


def bench(fn, device, reps: int) -> float:
    """Median seconds of ``fn()``: ``triton.testing.do_bench`` on CUDA, else ``median_time``."""
    if torch.device(device).type == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3
    return median_time(fn, reps)


def interleaved(fns: dict, rounds: int, warmup: int = 1, parts: bool = False, label: str | None = None,
                summary=statistics.median) -> dict:
    """{key: median wall-clock seconds} of ``fns`` ({key: fn()}), each called once per round
    in turn (so that the machine's drift hits each alike), ``warmup`` rounds first, not
    counted. With ``parts``, every fn times its own parts and returns {part: seconds}: then
    {key: {part: median seconds}}. ``summary`` replaces the median (``list``: the counted
    samples themselves). ``label``: a progress line per round."""
    samples = {key: [] for key in fns}
    for r in range(warmup + rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            timed = fn()
            took = time.perf_counter() - start
            if r >= warmup:
                samples[key].append(timed if parts else took)
        if label:
            print(f"  {label}: round {r + 1}/{warmup + rounds}", flush=True)
    if parts:
        return {key: {part: summary([s[part] for s in got]) for part in got[0]} for key, got in samples.items()}
    return {key: summary(got) for key, got in samples.items()}


def machine(device="cpu") -> str:
    """The hardware a figure came from, for titles and tables."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name()
    return (f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), "
            f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f}")


def write_csv(path: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields or list(rows[0]), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_text(path: Path, text: str, echo: bool = True) -> None:
    """Writes a markdown table (or any text) and prints it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
    if echo:
        print()
        print(text)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A markdown table: one header row, then one line per row (cells as ``str`` gives them)."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """(fig, axes) from matplotlib with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path: Path, title: str | None = None) -> None:
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def config_path(config: str) -> Path:
    """The config of that name in any folder of ``configs/`` (the runs' CSV rows name their
    configs, not their folders); a path ending in ``.py`` (relative to the repository) as it is."""
    if config.endswith(".py"):
        return ROOT / config
    found = [p for p in (ROOT / "configs").rglob(f"{config}.py") if "_base_" not in p.parts]
    if len(found) != 1:
        raise FileNotFoundError(f"config {config!r}: {len(found)} files named {config}.py under configs/")
    return found[0]


# --------------------------------------------------------------------------- the tree detector
# The committed config: its sliced_infer_cfg is what the ONNX export carries (a work_dir
# keeps its training-time copy).
TREES_CONFIG = "configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py"
DEMO_REAL = ROOT / "work_dirs" / "demo-real"  # make demo-real's checkpoints and export


def detector_args(p: argparse.ArgumentParser, onnx: bool = False) -> None:
    """``--config``, ``--checkpoint`` (default: make demo-real's last) and, with ``onnx``,
    ``--model`` (its whole-detector export, ``make export-onnx``)."""
    p.add_argument("--config", default=TREES_CONFIG)
    p.add_argument("--checkpoint", help="default: work_dirs/demo-real's last checkpoint")
    if onnx:
        p.add_argument("--model", default=str(DEMO_REAL / "epoch_36_whole.onnx"))


def last_checkpoint(work_dir: Path, make: str = "make demo-real", otherwise: str = "") -> Path:
    """The last checkpoint of a training's work_dir; exits saying what to run if there is none."""
    last = work_dir / "last_checkpoint"
    if not last.exists():
        sys.exit(f"no checkpoint in {work_dir}: run `{make}` first{otherwise}")
    return Path(last.read_text().strip())


def checkpoint_of(args) -> Path:
    """``--checkpoint``, or make demo-real's last."""
    return Path(args.checkpoint) if args.checkpoint else last_checkpoint(DEMO_REAL, otherwise=", or pass --checkpoint")


def tree_detector(args):
    """(cfg, model, checkpoint) of ``--config`` with its checkpoint, on CPU, in mmdet's scope."""
    import mmdet_plugin  # noqa: F401  (registers the plugin's modules)
    from mmdet.apis import init_detector
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    cfg, checkpoint = Config.fromfile(str(ROOT / args.config)), checkpoint_of(args)
    return cfg, init_detector(cfg, str(checkpoint), device="cpu").eval(), checkpoint


# --------------------------------------------------------------------------- synthetic-set trainings
def ensure_synth_data() -> None:
    """Generates ``data/synth_voc`` (the demo's synthetic set) if it is missing."""
    import subprocess

    if not (ROOT / "data/synth_voc/VOCsynth/ImageSets/Main/val.txt").exists():
        subprocess.run([sys.executable, "-m", "mmdet_plugin.datasets.synthetic_voc", "data/synth_voc"], cwd=ROOT, check=True)


def last_scalars(run_dir: Path, key: str = "pascal_voc/mAP") -> tuple[dict, float]:
    """A ``mim train`` run's last validation row (the last row holding ``key``) and median
    s / iteration, from its latest ``vis_data/scalars.json``."""
    import json

    scalars = sorted(run_dir.glob("*/vis_data/scalars.json"))[-1]
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    val = [r for r in rows if key in r][-1]
    return val, statistics.median(r["time"] for r in rows if "loss" in r)


def loss_sum(losses: dict) -> torch.Tensor:
    """The sum of an mmdet loss dict's ``loss*`` entries (tensors or lists of them)."""
    return sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
               for k, v in losses.items() if "loss" in k)

