"""Where a detector's time goes: per-iteration profile of training and inference, by part.

Models: the demo detector ``configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py`` (SPPRoIExtractor +
SPPBBoxHead) and its baseline ``configs/synth_demo/faster-rcnn_r18-w16_fpn_24e_synth-voc.py``
(SingleRoIExtractor + mmcv RoIAlign 7x7 + Shared2FCBBoxHead); identical otherwise (narrow
ResNet-18 + FPN 64 ch, RPN). Built with mmengine ``Config`` + mmdet ``MODELS`` after
``import mmdet_plugin`` and ``register_all_modules()``, random init (``init_weights``, nothing
downloaded) unless ``--checkpoint`` loads weights; CPU, float32.

Data: batches of 4 images from ``data/synth_voc`` (256x256, the configs' train / test
pipelines, one fixed batch per iteration, data loading NOT timed) when that folder exists,
else random 256x256 batches from ``mmdet.testing.demo_mm_inputs``.

One training iteration is exactly mmengine's ``model.train_step(data, optim_wrapper)``
(data preprocessor, forward with losses, ``parse_losses``, backward, the optimizer step (AdamW) with the
configs' grad clipping, zero_grad); one inference iteration is ``model.test_step(data)``
under ``torch.no_grad``.

Method: the script (only) replaces the bound methods listed in ``SCOPES`` (the model's submodules;
the optim wrapper's backward, step and zero_grad) by thin wrappers that open a
``torch.profiler.record_function("part::<name>")`` scope. Forward time of a part = the summed
duration of its scopes. Backward time is split between the parts too: every autograd node carries
the ``sequence_nr`` of the forward op that created it, so each ``autograd::engine::evaluate_function: ...``
event of the backward pass is charged to the part whose scope contained that forward op; what cannot
be charged (grad accumulation, engine overhead, ops outside every scope such as summing the losses)
is "backward: other". "other" = iteration wall time minus everything above (mmengine glue,
``bbox2roi``, cat, parse_losses, ...). Each part's time is taken per iteration; the tables show
medians over the profiled iterations and % = part median / iteration median (so a column adds up
to about, not exactly, 100; the CSV also has the means, which do). The profiler's per-op overhead
inflates small ops, so the unprofiled median iteration time is printed too. Writes
benchmarks/results/profile_detector.csv and .md.
"""
from __future__ import annotations

import bisect
import copy
import os
import statistics
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import ROOT

CONFIGS = {
    "SPPNet": ROOT / "configs" / "synth_demo" / "sppnet_r18-w16_fpn_24e_synth-voc.py",
    "Faster R-CNN": ROOT / "configs" / "synth_demo" / "faster-rcnn_r18-w16_fpn_24e_synth-voc.py",
}
DATA_ROOT = ROOT / "data" / "synth_voc"
BATCH = 4

# Every part, in the tables' order, with the issue's coarse group it counts in.
GROUP = {
    "data preprocessor": "other", "backbone": "backbone", "neck": "neck", "RPN head": "RPN",
    "RPN loss": "loss", "RPN post-processing": "post-processing", "RoI assign + sample": "loss",
    "RoI extraction": "RoI extraction", "bbox head": "bbox head", "bbox loss": "loss",
    "bbox post-processing": "post-processing", "optimizer": "optimizer",
    "backward: other": "other", "other": "other",
}
GROUPS = ["backbone", "neck", "RPN", "RoI extraction", "bbox head", "loss", "post-processing", "optimizer", "other"]
# The rows (parts and groups) an inference iteration does not have.
TRAIN_ONLY = ("RPN loss", "RoI assign + sample", "bbox loss", "optimizer", "backward: other", "loss")


ROI_COUNTS: list = []  # RoIs per RoI-extraction call, recorded while profiling
ROI_SIDES: list = []  # mean sqrt(area) in pixels of the RoIs of each call


def wrap(obj, attr: str, part: str) -> None:
    """Replace obj.attr (a bound method) by a wrapper that opens a profiler scope."""
    fn = getattr(obj, attr)

    def wrapped(*args, **kwargs):
        if part == "RoI extraction":  # forward(feats, rois, ...), rois (K, 5)
            rois = args[1]
            ROI_COUNTS.append(int(rois.shape[0]))
            wh = (rois[:, 3:5] - rois[:, 1:3]).clamp(min=0)
            ROI_SIDES.append(float((wh[:, 0] * wh[:, 1]).sqrt().mean()))
        with record_function("part::" + part):
            return fn(*args, **kwargs)

    setattr(obj, attr, wrapped)


# (submodule path under the model, method, part); the optimizer's methods below.
SCOPES = [
    ("data_preprocessor", "forward", "data preprocessor"),
    ("backbone", "forward", "backbone"),
    ("neck", "forward", "neck"),
    ("rpn_head", "forward", "RPN head"),  # convs
    ("rpn_head", "loss_by_feat", "RPN loss"),  # anchor targets, assignment, losses
    ("rpn_head", "predict_by_feat", "RPN post-processing"),  # decode, NMS -> proposals
    ("roi_head.bbox_assigner", "assign", "RoI assign + sample"),
    ("roi_head.bbox_sampler", "sample", "RoI assign + sample"),
    ("roi_head.bbox_roi_extractor", "forward", "RoI extraction"),
    ("roi_head.bbox_head", "forward", "bbox head"),  # fc layers
    ("roi_head.bbox_head", "loss_and_target", "bbox loss"),  # targets, losses
    ("roi_head.bbox_head", "predict_by_feat", "bbox post-processing"),  # decode, NMS
]
# "backward" is no row: analyse() splits it between the parts and "backward: other".
OPTIMIZER_SCOPES = [("backward", "backward"), ("step", "optimizer"), ("zero_grad", "optimizer")]


def instrument(model, optim_wrapper=None) -> None:
    for path, method, part in SCOPES:
        obj = model
        for name in path.split("."):
            obj = getattr(obj, name, None)
        if obj is not None:  # test-only models have no assigner / sampler
            wrap(obj, method, part)
    for method, part in OPTIMIZER_SCOPES if optim_wrapper is not None else ():
        wrap(optim_wrapper, method, part)


# --------------------------------------------------------------------------- building
def mmdet_scope() -> None:
    """Registers mmdet's and the plugin's modules with mmdet as the default scope, as
    ``mim train`` does, and silences warnings and init_weights' report."""
    import logging

    import mmdet_plugin  # noqa: F401  registers SPPRoIExtractor, SPPBBoxHead, CheckedVOCDataset
    from mmdet.utils import register_all_modules
    from mmengine.logging import MMLogger

    warnings.filterwarnings("ignore")
    register_all_modules(init_default_scope=True)
    MMLogger.get_current_instance().setLevel(logging.WARNING)


def load_cfg(path: Path, data_root: Path | None = DATA_ROOT):
    """The config at ``path``, its train and val data under ``data_root`` (None: the
    config's own, relative to the repository)."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(path))
    for dl in ("train_dataloader", "val_dataloader"):
        root = data_root if data_root is not None else ROOT / cfg[dl].dataset.data_root
        cfg[dl].dataset.data_root = str(root) + "/"
    return cfg


def build_model(cfg, training: bool):
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper

    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    model.train(training)
    ow = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)) if training else None
    return model, ow


def make_batches(cfg, training: bool, n: int):
    """n collated batches of BATCH images (real data if present, else demo_mm_inputs)."""
    from mmengine.dataset import pseudo_collate

    dl = cfg.train_dataloader if training else cfg.val_dataloader
    if Path(dl.dataset.data_root).exists():
        from mmdet.registry import DATASETS

        ds = DATASETS.build(copy.deepcopy(dl.dataset))
        return [pseudo_collate([ds[(i * BATCH + j) % len(ds)] for j in range(BATCH)]) for i in range(n)], \
            f"{Path(dl.dataset.data_root).name} ({dl.dataset.ann_file}, batch {BATCH})"
    from mmdet.testing import demo_mm_inputs

    out = []
    for i in range(n):
        torch.manual_seed(i)
        out.append(demo_mm_inputs(batch_size=BATCH, image_shapes=[(3, 256, 256)] * BATCH, num_items=[5] * BATCH,
                                  num_classes=5, with_mask=False))
    return out, f"demo_mm_inputs (random 256x256, batch {BATCH})"


# --------------------------------------------------------------------------- profiling
def run_iterations(model, ow, batches, training: bool):
    times = []
    for b in batches:
        t = time.perf_counter()
        with record_function("iteration"):
            if training:
                model.train_step(b, ow)
            else:
                with torch.no_grad():
                    model.test_step(b)
        times.append(time.perf_counter() - t)
    return times


def part_of(e):
    """Innermost enclosing part scope name of a profiler event (or None)."""
    while e is not None and not e.name.startswith("part::"):
        e = e.cpu_parent
    return None if e is None else e.name[6:]


def analyse(prof):
    """Per-iteration, per-part forward and backward ms, and the iterations' durations.

    Returns (fwd, bwd, iters): fwd[i][part], bwd[i][part] in ms for profiled iteration i,
    iters[i] its wall time in ms (the "iteration" scope).
    """
    events = prof.events()
    its = sorted((e.time_range.start, e.time_range.end) for e in events if e.name == "iteration")
    starts = [a for a, _ in its]

    def it_of(e):
        i = bisect.bisect_right(starts, e.time_range.start) - 1
        return i if i >= 0 and e.time_range.start <= its[i][1] else None

    n = len(its)
    fwd = [defaultdict(float) for _ in range(n)]
    for e in events:
        # nested scopes of the same part (none expected) would double count: skip them
        if e.name.startswith("part::") and part_of(e.cpu_parent) is None and (i := it_of(e)) is not None:
            fwd[i][e.name[6:]] += e.time_range.elapsed_us() / 1e3
    # An op reports the autograd sequence number the NEXT node will get; the op that
    # creates node n is the last one (in time) to report n. So, in time order, the last
    # forward op reporting n decides n's part (None when that op ran outside every part).
    seq_part = {}
    fwd_ops = [e for e in events if e.sequence_nr >= 0 and not e.name.startswith("part::")
               and not e.name.startswith("autograd::engine::evaluate_function")]
    for e in sorted(fwd_ops, key=lambda e: e.time_range.start):
        part = part_of(e)
        if part != "backward":
            seq_part[(e.thread, e.sequence_nr)] = part
    bwd = [defaultdict(float) for _ in range(n)]
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function") and e.sequence_nr >= 0:
            part = seq_part.get((e.fwd_thread, e.sequence_nr))
            i = it_of(e)
            if part is not None and i is not None:
                bwd[i][part] += e.time_range.elapsed_us() / 1e3
    for i in range(n):
        total_bwd = fwd[i].pop("backward", 0.0)
        bwd[i]["backward: other"] = total_bwd - sum(bwd[i].values())
    return fwd, bwd, [(b - a) / 1e3 for a, b in its]


def profile_model(name, cfg, training, args, checkpoint=None):
    model, ow = build_model(cfg, training)
    if checkpoint:
        from mmengine.runner import load_checkpoint

        load_checkpoint(model, checkpoint, map_location="cpu", logger="silent")
    batches, data_desc = make_batches(cfg, training, args.warmup + args.iters)
    warm, meas = batches[:args.warmup], batches[args.warmup:]
    run_iterations(model, ow, warm, training)
    plain = run_iterations(model, ow, meas, training)  # unprofiled (no scopes yet)
    instrument(model, ow)
    ROI_COUNTS.clear()
    ROI_SIDES.clear()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_iterations(model, ow, meas, training)
    fwd, bwd, iters = analyse(prof)
    rois_per_iter = (sum(ROI_COUNTS) / len(meas), statistics.mean(ROI_SIDES))
    med, mean = statistics.median, statistics.mean
    rows = []
    for part in GROUP:
        if part == "other":  # per iteration, wall time minus every part
            f = [it - sum(fwd[i].values()) - sum(bwd[i].values()) for i, it in enumerate(iters)]
            b = [0.0] * len(iters)
        else:
            f, b = [d.get(part, 0.0) for d in fwd], [d.get(part, 0.0) for d in bwd]
        tot = [x + y for x, y in zip(f, b)]
        per_it = [100 * t / it for t, it in zip(tot, iters)]
        rows.append(dict(  # the CSV's columns, in order
            model=name, mode="train" if training else "inference", part=part, group=GROUP[part],
            forward_ms=med(f), backward_ms=med(b), total_ms=med(tot), pct=100 * med(tot) / med(iters),
            total_ms_mean=mean(tot), pct_of_means=100 * mean(tot) / mean(iters), pct_iter_min=min(per_it),
            pct_iter_max=max(per_it), iter_ms_profiled_median=med(iters), iter_ms_profiled_mean=mean(iters),
            iter_ms_unprofiled_median=med(plain) * 1e3, rois_per_iter=rois_per_iter[0],
            roi_mean_side_px=rois_per_iter[1], data=data_desc))
    return rows, data_desc, rois_per_iter


# --------------------------------------------------------------------------- report
def table(rows, mode, models):
    """Per part: forward, backward, total ms and % (inference: total ms and %), then the iteration."""
    train = mode == "train"
    by = {(r["model"], r["part"]): r for r in rows if r["mode"] == mode}
    keys = ("forward_ms", "backward_ms", "total_ms", "pct") if train else ("total_ms", "pct")
    body = [[part] + [f"{by[m, part][k]:.1f}" for m in models for k in keys]
            for part in GROUP if train or part not in TRAIN_ONLY]
    pad = ["", ""] if train else []  # under fwd ms and bwd ms
    for label, key, fmt, last in (("**iteration (profiled, median)**", "iter_ms_profiled_median", "**{:.1f}**", 100),
                                  ("iteration (unprofiled, median)", "iter_ms_unprofiled_median", "{:.1f}", "")):
        body.append([label] + [c for m in models for c in pad + [fmt.format(by[m, "other"][key]), last]])
    head = ("fwd ms", "bwd ms", "total ms", "%") if train else ("ms", "%")
    return common.markdown_table(["part"] + [f"{m} {h}" for m in models for h in head], body)


def grouped(rows, mode, models):
    """The parts summed into the coarse groups: ms and %."""
    def cells(m, g):
        rs = [r for r in rows if r["mode"] == mode and r["model"] == m and r["group"] == g]
        return [f"{sum(r['total_ms'] for r in rs):.1f}", f"{sum(r['pct'] for r in rs):.1f}"]

    return common.markdown_table(["part (coarse)"] + [f"{m} {h}" for m in models for h in ("ms", "%")],
                                 [[g] + [c for m in models for c in cells(m, g)]
                                  for g in GROUPS if mode == "train" or g not in TRAIN_ONLY])


def main():
    p = common.parser(__doc__, reps=10)  # --reps: profiled iterations; --quick: 1 warm-up, 1 iteration
    p.add_argument("--iters", dest="reps", type=int, help="profiled iterations per model and mode (= --reps)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                   help="load weights, e.g. SPPNet=work_dirs/demo/epoch_24.pth (MODEL: SPPNet or "
                        "'Faster R-CNN'); results then go to profile_detector_ckpt.*")
    a = p.parse_args()
    common.setup_threads(a.threads)
    a.iters = a.reps
    if a.quick:
        a.iters, a.warmup = 1, 1
    mmdet_scope()
    models = list(CONFIGS)
    machine = common.machine()
    ckpts = dict(c.split("=", 1) for c in a.checkpoint)
    for m in ckpts:
        if m not in CONFIGS:
            p.error(f"--checkpoint: unknown model {m!r}; choose from {list(CONFIGS)}")
    rows, data_desc, n_rois = [], {}, {}
    for training in (True, False):
        for name in models:
            cfg = load_cfg(CONFIGS[name])
            r, d, nr = profile_model(name, cfg, training, a, ckpts.get(name))
            rows += r
            data_desc[training] = d
            n_rois[(name, training)] = nr
            it = r[0]
            print(f"{name:12s} {'train' if training else 'inference':9s}: {it['iter_ms_profiled_median']:.1f} ms/iter "
                  f"profiled (median of {a.iters}), {it['iter_ms_unprofiled_median']:.1f} ms unprofiled (median)",
                  flush=True)

    stem = common.result("profile_detector" + ("_ckpt" if ckpts else ""), a)
    common.write_csv(stem.with_suffix(".csv"), rows)

    roi = {(r["model"], r["mode"]): r for r in rows if r["part"] == "RoI extraction"}
    spp, frc = roi["SPPNet", "train"], roi["Faster R-CNN", "train"]
    weights = "random init" if not ckpts else "trained weights for " + ", ".join(ckpts)
    out = [
        f"# Detector profile ({machine} at start, {os.getloadavg()[0]:.1f} at end; {weights})", "",
        f"Training: mmengine train_step on {data_desc[True]}; inference: test_step on {data_desc[False]}. "
        "RoIs pooled per iteration (4 images; their mean sqrt(area) in px): "
        + ", ".join(f"{m} {'train' if t else 'inference'} {n:.0f} ({side:.0f} px)"
                    for (m, t), (n, side) in n_rois.items())
        + (f". Weights loaded: {', '.join(f'{k} <- {v}' for k, v in ckpts.items())}" if ckpts else "")
        + f". {a.iters} profiled iterations after {a.warmup} warm-up; ms are medians over them of each part's "
        "per-iteration time (torch.profiler + record_function scopes; backward charged to parts via autograd "
        "sequence numbers); % = part median / iteration median, so a column need not add up to exactly 100 (the "
        "CSV's pct_of_means, of means, do).", "",
        *[line for mode, title in (("train", "Training"), ("inference", "Inference"))
          for line in (f"## {title} iteration", "", table(rows, mode, models), "", grouped(rows, mode, models), "")],
        f"**RoI extraction share of the SPPNet training iteration: {spp['pct']:.1f} % ({spp['total_ms']:.1f} ms, "
        f"forward + backward; {spp['pct_of_means']:.1f} % with means; {spp['pct_iter_min']:.1f}-"
        f"{spp['pct_iter_max']:.1f} % across the {a.iters} iterations)** -> "
        f"{'below' if spp['pct'] < 10 else 'ABOVE'} the 10 % mark. Baseline (mmcv RoIAlign 7x7 via "
        f"SingleRoIExtractor): {frc['pct']:.1f} % ({frc['total_ms']:.1f} ms). Inference: SPPNet "
        f"{roi['SPPNet', 'inference']['pct']:.1f} %, Faster R-CNN {roi['Faster R-CNN', 'inference']['pct']:.1f} %.", "",
        "Caveats: " + ("random weights" if not ckpts else "weights as listed above") + " (speed only). "
        "The SPP kernel's cost grows with the RoIs' window areas, so the RoI-extraction share depends on "
        "the proposals' sizes, which change as the RPN trains. Post-processing cost depends on how many boxes pass "
        "the score threshold into NMS, which differs for a trained model; the RPN proposal count is capped by "
        "the configs (train: 1000 pre-NMS / 300 kept per image, 128 sampled RoIs per image; test: 500 / 300). "
        "The profiler adds overhead per op (compare the profiled and unprofiled iteration times); "
        "data loading is excluded.",
    ]
    common.write_text(stem.with_suffix(".md"), "\n".join(out))
    print(f"\nwrote {stem}.csv and {stem}.md")


if __name__ == "__main__":
    main()
