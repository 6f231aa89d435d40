"""Resumable training runs for the accuracy tables: one CSV row per finished run.

A run is ``Run(id, system, head, config, options, seed)``. ``RunTable.train_missing`` trains
the runs that have no row yet with ``mim train`` (``lanes`` at a time, one thread each;
a run that was interrupted resumes from its last checkpoint) and appends each finished
run's row (seed, config, options, metrics, wall time, the machine's load, commit) to the
table's CSV at once, so a later start, on this machine or another, skips it. The
benchmarks that use it say what a row's metrics are. The rest are the pieces their
tables share: the models' cost side by side, cells of seeds, a scatter of the runs.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import ROOT

RUN_FIELDS = ["id", "system", "head", "config", "options", "seed", "epochs"]
WALL_FIELDS = ["run_s_per_iter", "wall_min", "load_start", "load_end", "finished", "commit"]


@dataclass(frozen=True)
class Run:
    id: str
    system: str
    head: str
    config: str
    options: tuple
    seed: int


def expand(models) -> list[Run]:
    """(id, system, head, config, options, seeds) per model -> one Run per seed; seed s > 0
    adds "-s<s>" to the id."""
    return [Run(rid if seed == 0 else f"{rid}-s{seed}", system, head, config, tuple(options), seed)
            for rid, system, head, config, options, seeds in models for seed in seeds]


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


class RunTable:
    """The CSV of one table's runs and how to train them.

    Args:
        csv_path: where the rows go.
        metric_fields: the columns ``read`` returns (besides ``run_s_per_iter``).
        read: run folder -> {metric: value, "run_s_per_iter": s}, from its last scalars.
        epochs: ``train_cfg.max_epochs`` of every run (validated once, at the end), unless a
            run's options set ``train_cfg.max_epochs``.
        options: cfg-options every run gets (e.g. the evaluator's thresholds).
    """

    def __init__(self, csv_path: Path, metric_fields: list[str], read: Callable[[Path], dict], epochs: int,
                 options: list[str] = ()):
        self.csv_path, self.read, self.epochs, self.options = csv_path, read, epochs, list(options)
        self.fields = RUN_FIELDS + list(metric_fields) + WALL_FIELDS
        self._lock = threading.Lock()

    def done(self) -> dict:
        if not self.csv_path.exists():
            return {}
        with open(self.csv_path) as f:
            return {row["id"]: row for row in csv.DictReader(f)}

    def append(self, row: dict) -> None:
        with self._lock:
            new = not self.csv_path.exists()
            with open(self.csv_path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields)
                if new:
                    w.writeheader()
                w.writerow(row)

    def train(self, run: Run, work_root: Path) -> bool:
        """Trains one run (resuming from its last checkpoint if it has one) and appends its row."""
        work = work_root / run.id
        # A run's own options may set its epochs (and then its schedule's milestones).
        epochs = next((int(o.split("=", 1)[1]) for o in run.options if o.startswith("train_cfg.max_epochs=")),
                      self.epochs)
        cmd = [str(Path(sys.executable).parent / "mim"), "train", "mmdet", str(common.config_path(run.config)), "--work-dir",
               str(work), "--cfg-options", f"randomness.seed={run.seed}", f"train_cfg.max_epochs={epochs}",
               f"train_cfg.val_interval={epochs}", *self.options, *run.options]
        if (work / "last_checkpoint").exists():
            cmd.append("--resume")
        work.mkdir(parents=True, exist_ok=True)
        print(f"[{time.strftime('%H:%M:%S')}] start {run.id}: " + " ".join(cmd[1:]), flush=True)
        load_start, start = os.getloadavg()[0], time.time()
        with open(work_root / f"{run.id}.out", "a") as log:
            code = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, OMP_NUM_THREADS="1")).returncode
        if code != 0:
            print(f"[{time.strftime('%H:%M:%S')}] {run.id} failed (exit {code}); see {work_root / run.id}.out",
                  flush=True)
            return False
        metrics = {k: f"{v:.4f}" for k, v in self.read(work).items()}
        row = dict(id=run.id, system=run.system, head=run.head, config=run.config, options=" ".join(run.options),
                   seed=run.seed, epochs=epochs, **metrics, wall_min=f"{(time.time() - start) / 60:.1f}",
                   load_start=f"{load_start:.2f}", load_end=f"{os.getloadavg()[0]:.2f}",
                   finished=time.strftime("%Y-%m-%d %H:%M"), commit=commit())
        self.append(row)
        shown = " ".join(f"{k} {v}" for k, v in metrics.items() if k != "run_s_per_iter")
        print(f"[{time.strftime('%H:%M:%S')}] done {run.id}: {shown} in {row['wall_min']} min", flush=True)
        return True

    def train_missing(self, runs: list[Run], lanes: int, work_root: Path, only=None) -> dict:
        """Trains the runs without a row (``only``: just these ids), ``lanes`` at a time, in
        order (a lane takes the next pending run); returns every row."""
        work_root.mkdir(parents=True, exist_ok=True)
        done = self.done()
        todo = [r for r in runs if r.id not in done and (not only or r.id in only)]
        print(f"{len(done)} runs already in {self.csv_path.name}; training {len(todo)}: {[r.id for r in todo]}",
              flush=True)
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(lambda run: self.train(run, work_root), todo))
        return self.done()


# --------------------------------------------------------------------------- side by side
def model_cfg(config: str, options, own_data: bool = False):
    """A config with cfg-options applied, reading the synthetic set (``profile_detector``'s
    default) or, with ``own_data``, the data its config names."""
    import argparse

    import profile_detector
    from mmengine.config import DictAction

    kwargs = dict(data_root=None) if own_data else {}
    cfg = profile_detector.load_cfg(common.config_path(config), **kwargs)
    if options:
        ns = argparse.Namespace(o=None)
        DictAction(option_strings=[], dest="o")(None, ns, list(options))
        cfg.merge_from_dict(ns.o)
    return cfg


def models_of(models) -> dict:
    """{(system, head): (config, options)} of a table's (id, system, head, config, options,
    seeds) declarations."""
    return {(system, head): (config, options) for _, system, head, config, options, _ in models}


def side_by_side(models: dict, rounds: int = 7, own_data: bool = False) -> dict:
    """{key: (train s / iteration, inference s / image)} of ``models`` ({key: (config,
    options)}): ``common.interleaved`` medians over ``rounds`` rounds, each model on the same
    batches of ``profile_detector.BATCH`` images, 1 thread. A training step is the data
    preprocessor, the losses' forward and backward; inference is ``test_step``."""
    import profile_detector
    import torch

    common.setup_threads(1)
    built, batches = {}, {}
    for key, (config, options) in models.items():
        cfg = model_cfg(config, options, own_data)
        built[key] = profile_detector.build_model(cfg, training=True)[0]
        batches = batches or {mode: profile_detector.make_batches(cfg, mode, 1)[0][0] for mode in (True, False)}

    def step(model) -> dict:
        model.train()
        start = time.perf_counter()
        common.loss_sum(model(**model.data_preprocessor(batches[True], True), mode="loss")).backward()
        train_s = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            model.test_step(batches[False])
        return {"train": train_s, "test": (time.perf_counter() - start) / profile_detector.BATCH}

    times = common.interleaved({key: lambda m=model: step(m) for key, model in built.items()}, rounds, parts=True)
    return {key: (t["train"], t["test"]) for key, t in times.items()}


def roi_share(models: dict, own_data: bool = False) -> dict:
    """{key: % of a training iteration in RoI extraction (forward + backward)}."""
    import argparse

    import profile_detector

    args = argparse.Namespace(warmup=2, iters=6)
    out = {}
    for key, (config, options) in models.items():
        rows, _, _ = profile_detector.profile_model(key[1], model_cfg(config, options, own_data), True, args)
        out[key] = next(r["pct"] for r in rows if r["part"] == "RoI extraction")
    return out


# --------------------------------------------------------------------------- tables
COST_HEADER = ["system", "head", "training s / iteration", "inference s / image",
               "RoI extraction % of training iteration", "run wall time (min)"]


def cost_table(models: dict, by_key: dict, base_head: str, own_data: bool = False) -> tuple[str, list[dict]]:
    """The cost of ``models`` ({(system, head): (config, options)}, in table order): each
    timed side by side (ratios to ``base_head`` of the same system), the RoI stage's share
    of a profiled training iteration and the runs' own wall times. Returns the markdown
    table and the runs' rows (``by_key``: {(system, head): rows}) with those figures."""
    speed, share = side_by_side(models, own_data=own_data), roi_share(models, own_data=own_data)
    cells, csv_rows = [], []
    for (system, head), (tr, inf) in speed.items():
        base_tr, base_inf = speed[(system, base_head)]
        done = by_key.get((system, head), [])
        cells.append([system, head, f"{tr:.3f} ({tr / base_tr:.2f}x)", f"{inf:.4f} ({inf / base_inf:.2f}x)",
                      f"{share[(system, head)]:.1f}", ", ".join(r["wall_min"] for r in done)])
        csv_rows += [dict(r, train_s_per_iter_side_by_side=f"{tr:.4f}", train_ratio=f"{tr / base_tr:.3f}",
                          inference_s_per_image_side_by_side=f"{inf:.5f}", inference_ratio=f"{inf / base_inf:.3f}",
                          roi_extraction_pct=f"{share[(system, head)]:.1f}") for r in done]
    return common.markdown_table(COST_HEADER, cells), csv_rows


def seed_cell(rows: list[dict], keys, mean: bool = True) -> str:
    """A table cell: ``keys``' values joined by " / ", one line per seed, then (with ``mean``
    and more than one seed) their means over seeds in bold."""
    import statistics

    lines = [" / ".join(f"{float(r[k]):.3f}" for k in keys) + f" (seed {r['seed']})" for r in rows]
    if mean and len(rows) > 1:
        lines.append("**mean " + " / ".join(f"{statistics.mean(float(r[k]) for r in rows):.3f}" for k in keys) + "**")
    return "<br>".join(lines)


def scatter_runs(rows: list[dict], x: str, ys: list[str], heads, markers: dict, labels: list[str], path: Path,
                 title: str, figsize=(8.5, 4.8)) -> None:
    """One point per run, ``x`` against each of ``ys`` (one panel each, ``labels``: the x
    label, then each y's): colour = head (in ``heads``' order), marker = system."""
    from matplotlib.lines import Line2D

    fig, axes = common.figure(1, len(ys), figsize=figsize, sharex=True, squeeze=False)
    colours = {head: f"C{i}" for i, head in enumerate(heads)}
    for ax, y, label in zip(axes[0], ys, labels[1:]):
        for r in rows:
            ax.scatter(float(r[x]), float(r[y]), color=colours[r["head"]], marker=markers[r["system"]], s=40,
                       alpha=0.85)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    used = {r["head"] for r in rows}
    handles = ([Line2D([], [], ls="", marker="s", color=colours[h], label=h) for h in heads if h in used]
               + [Line2D([], [], ls="", marker=m, color="0.4", label=s) for s, m in markers.items()])
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    common.save_figure(fig, path, title)


# --------------------------------------------------------------------------- command line
def main(doc: str, table: RunTable, runs: list[Run], work_root: str, prepare, tables,
         partial_tables: bool = False) -> None:
    """The command line every table script shares: train what has no row (``--lanes``,
    ``--only``), or nothing (``--tables-only``); with every row present, ``tables(done)``
    (with ``partial_tables``, also with rows missing: the table says which).
    ``prepare()`` makes the data first."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--lanes", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--only", nargs="+", help="train only these run ids")
    p.add_argument("--work-root", default=work_root)
    p.add_argument("--tables-only", action="store_true", help="train nothing; write the tables from the runs' CSV")
    a = p.parse_args()
    prepare()
    done = table.done() if a.tables_only else table.train_missing(runs, a.lanes, ROOT / a.work_root, a.only)
    missing = [r.id for r in runs if r.id not in done]
    if missing and not partial_tables:
        raise SystemExit(f"runs without a row in {table.csv_path}: {missing}; run again to train them")
    if missing:
        print(f"runs without a row in {table.csv_path.name} (the table shows them as not run): {missing}", flush=True)
    tables(done)


def rows_by_model(runs: list[Run], done: dict) -> dict:
    """{(system, head): [row per seed]} of the runs that have a row."""
    out = {}
    for run in runs:
        if run.id in done:
            out.setdefault((run.system, run.head), []).append(done[run.id])
    return out
