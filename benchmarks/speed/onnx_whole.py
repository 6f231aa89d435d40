"""The whole detector in ONNX Runtime against mmdet in PyTorch: same detections, same AP, and speed.

For each trained detector (``trees``: ``make demo-real``'s EfficientNet-Lite0 FPN;
``demo``: ``make demo``'s ResNet-18-w16 FPN) it exports the whole detector
(``tools/export_onnx.py --whole``'s code), then on every image of the config's test split,
decoded once:

* mmdet: ``inference_detector`` (the config's test pipeline on the array, then the model),
  PyTorch eager, float32, no grad;
* ONNX Runtime: ``sppnet_runtime.OnnxDetector`` (its numpy resize, then the graph).

For a detector whose config has windows for large images (``sliced_infer_cfg``: the tree
detector), the same on the whole held-out photograph (1249 x 1035 px, 279 crowns) in those
windows: mmdet_plugin's ``SlicedInferencer`` (``tools/infer.py``) against the runtime's
``OnnxDetector.detect_sliced`` (the windows travel in the model file).

It reports the share of mmdet's boxes that ONNX Runtime also gives (same label, IoU >=
0.99, score within 1e-3), test AP from each (``sliced_trees.average_precision``: mmdet's
``eval_map`` as VOCMetric calls it; IoU 0.4 and 0.5), and the time per image at 1 and 2
threads (torch's intra-op threads; ONNX Runtime's intra-op threads, one inter-op): the
median over images of each image's median over --reps, the two runtimes interleaved rep by
rep on each image, in one process. Writes benchmarks/results/onnx_whole.{csv,md}.

``--tune`` (issue 38, item 5) instead times ONNX Runtime's session options (graph optimization
level, memory pattern and arena, denormals, spinning, execution mode, a saved optimized file) at
1 and 2 threads and three int8 static quantizations (``quantize``) on the held-out photograph in
the model's windows, interleaved; AP40/AP50 on val and test for float32 and int8. Writes
benchmarks/results/onnx_tuning.{csv,md}.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
import sliced_trees  # noqa: E402  (benchmarks/accuracy/, on the path common.py sets)
from common import RESULTS, ROOT

MODELS = {"trees": (common.TREES_CONFIG, common.DEMO_REAL),
          "demo": ("configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py", ROOT / "work_dirs/demo")}


def compare(row: dict, eager, onnx, inputs: list, gts: list, reps: int, label: str, classes=("Tree",)) -> dict:
    """``row`` with mmdet's boxes, the share of them that ONNX Runtime matches, AP, and the times
    of ``eager(input)`` (mmdet) and ``onnx(threads)(input)`` at 1 and 2 threads: the median over
    ``inputs`` of each input's median over ``reps``, the two interleaved rep by rep, warmed up once."""
    from mmdet_plugin.deploy.whole_detector import match_detections

    torch.set_num_threads(1)
    want, got = [eager(x) for x in inputs], [onnx(1)(x) for x in inputs]
    boxes = sum(len(w["scores"]) for w in want)
    matched = sum(match_detections(w, g) * len(w["scores"]) for w, g in zip(want, got))
    row.update(mmdet_boxes=boxes, onnx_boxes=sum(len(g["scores"]) for g in got),
               matched=f"{matched / max(boxes, 1):.4f}")
    aps = {who: sliced_trees.ap40_50(preds, gts, classes=classes) for who, preds in (("mmdet", want), ("onnx", got))}
    row.update({f"{who}_{key}": f"{aps[who][key]:.4f}" for key in ("AP40", "AP50") for who in aps})
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fns, per_input = {"torch": eager, "onnx": onnx(threads)}, []
        for i, x in enumerate(inputs):
            per_input.append(common.interleaved({key: partial(fn, x) for key, fn in fns.items()}, reps))
            print(f"  {label}, {threads} thread(s): {i + 1}/{len(inputs)}", end="\r", flush=True)
        print()
        t = {key: statistics.median(m[key] for m in per_input) for key in fns}
        row.update({f"torch_ms_{threads}t": f"{1e3 * t['torch']:.1f}", f"onnx_ms_{threads}t": f"{1e3 * t['onnx']:.1f}",
                    f"onnx_over_torch_{threads}t": f"{t['onnx'] / t['torch']:.2f}"})
    return row


def run(name: str, reps: int) -> list[dict]:
    import mmdet_plugin  # noqa: F401
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import DATASETS
    from mmengine.config import Config

    from imagery.read import open_image
    from mmdet_plugin.apis import SlicedInferencer, SliceSettings
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data
    from mmdet_plugin.deploy import whole_detector
    from sppnet_runtime import OnnxDetector, load_image

    config, work = (ROOT / p for p in MODELS[name])
    checkpoint = common.last_checkpoint(work, "make demo" if name == "demo" else "make demo-real")
    cfg = Config.fromfile(str(config))
    model = init_detector(cfg, str(checkpoint), device="cpu").eval()
    meta = model.dataset_meta
    onnx_path = checkpoint.with_name(checkpoint.stem + "_whole.onnx")
    start = time.perf_counter()
    whole_detector.export(model, cfg, onnx_path, meta["classes"], meta.get("palette"))
    export_s = time.perf_counter() - start
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=[]))
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    sessions = {t: OnnxDetector(onnx_path, threads=t) for t in (1, 2)}

    def eager(rgb):
        with torch.no_grad():
            pred = inference_detector(model, np.ascontiguousarray(rgb[..., ::-1])).pred_instances
        return {"bboxes": pred.bboxes.numpy(), "scores": pred.scores.numpy(), "labels": pred.labels.numpy()}

    head = dict(model=name, config=config.name, checkpoint=str(checkpoint.relative_to(ROOT)))
    rows = [compare(dict(head, images=len(infos), export_s=f"{export_s:.1f}",
                         onnx_mib=f"{onnx_path.stat().st_size / 2**20:.1f}"),
                    eager, sessions.get, [load_image(info["img_path"]) for info in infos],
                    [sliced_trees.instances_gt(info["instances"]) for info in infos], reps, f"{name}, image",
                    meta["classes"])]
    if cfg.get("sliced_infer_cfg"):  # the whole held-out tree photograph in the config's windows
        cfg = Config.fromfile(str(config))
        settings, photo = SliceSettings.from_config(cfg), deepforest_data() / TEST_IMAGE
        assert sessions[1].slicing == settings, (sessions[1].slicing, settings)
        inferencer = SlicedInferencer(model, cfg, settings)

        def sliced(_):  # the photograph read in windows, as tools/infer.py reads it
            with open_image(photo) as image:
                return inferencer(image)

        rows.append(compare(dict(head, model="trees, whole photograph in windows", images=1), sliced,
                            lambda n: partial(sessions[n].detect_sliced, settings=sessions[n].slicing),
                            [load_image(photo)], [sliced_trees.ground_truth(photo)], reps, "whole photograph"))
    return rows


# --------------------------------------------------------------------------- --tune (issue 38, item 5)
PHOTO_MODEL = common.DEMO_REAL / "epoch_36_whole.onnx"
# (name, intra-op threads, SessionOptions attributes, session config entries). "default": ONNX
# Runtime's own options, what OnnxDetector built before this table (ORT_ENABLE_ALL, spinning on).
VARIANTS = [("default", 1, {}, {}), *[(level, 1, {"graph_optimization_level": level}, {}) for level in (
    "ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_LAYOUT")],
            ("no memory pattern", 1, {"enable_mem_pattern": False}, {}),
            ("no CPU memory arena", 1, {"enable_cpu_mem_arena": False}, {}),
            ("denormals as zero", 1, {}, {"session.set_denormal_as_zero": "1"}),
            ("saved optimized file, ORT_DISABLE_ALL", 1, {"graph_optimization_level": "ORT_DISABLE_ALL"}, {}),
            ("default", 2, {}, {}), ("no spinning", 2, {}, {"session.intra_op.allow_spinning": "0"}),
            ("ORT_PARALLEL, 2 inter-op x 1 intra-op", 2,
             {"execution_mode": "ORT_PARALLEL", "inter_op_num_threads": 2, "intra_op_num_threads": 1}, {})]


def session(path, threads: int, attrs: dict, entries: dict, save: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    for key, value in attrs.items():
        enum = ort.GraphOptimizationLevel if key == "graph_optimization_level" else ort.ExecutionMode
        setattr(options, key, getattr(enum, value) if isinstance(value, str) else value)
    for key, value in entries.items():
        options.add_session_config_entry(key, value)
    if save:
        options.optimized_model_filepath = str(save)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize(src: Path, dst: Path, method: str, keep_float: tuple = ()) -> Path:
    """int8 QDQ convs (per-channel int8 weights, uint8 activations: int8 ones ran slower than
    float32 here), calibrated on the 28 training tiles and their flips through the runtime's
    preprocessing. Float: the RPN's output convs, convs whose weights name ``keep_float``, all
    after them. A DQ feeding a non-conv-net op (the SPP's Slice) gets the float tensor instead:
    else ORT 1.32's QDQPropagationTransformer reaches the SPP's If subgraphs and aborts."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from sppnet_runtime import OnnxDetector, load_image

    prepare, voc = OnnxDetector(src, threads=1).prepare, ROOT / "data/trees/VOCtrees"
    ids = (voc / "ImageSets/Main/train.txt").read_text().split()
    tiles = [load_image(voc / "JPEGImages" / f"{i}.png") for i in ids]
    feeds = iter([prepare(np.ascontiguousarray(t), native=True) for im in tiles for t in (im, im[:, ::-1], im[::-1])])
    reader = type("Reader", (CalibrationDataReader,), {"get_next": lambda self: next(feeds, None)})()
    excluded = [n.name for n in onnx.load(src).graph.node if n.op_type == "Conv" and any(
        k in n.input[1] for k in ("rpn_head.rpn_cls", "rpn_head.rpn_reg") + keep_float)]
    quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=["Conv"],
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                    calibrate_method=getattr(CalibrationMethod, method), extra_options={"CalibPercentile": 99.999})
    model = onnx.load(dst)
    dq, q = ({n.output[0]: n for n in model.graph.node if n.op_type == op}
             for op in ("DequantizeLinear", "QuantizeLinear"))
    conv_net = {"Conv", "Clip", "Relu", "Add", "Mul", "Resize", "MaxPool", "Concat", "QuantizeLinear"}
    for node in (n for n in model.graph.node if n.op_type not in conv_net):
        for j, name in enumerate(node.input):
            if name in dq and dq[name].input[0] in q:
                node.input[j] = q[dq[name].input[0]].input[0]
    onnx.save(model, dst)
    return dst


def tune(reps: int) -> None:  # --tune (the module's docstring)
    import onnxruntime as ort

    from imagery.read import load_image, open_image
    from mmdet_plugin.datasets.trees import TEST_IMAGE, TRAIN_IMAGE, deepforest_data
    from mmdet_plugin.deploy.whole_detector import match_detections
    from mmengine.registry import init_default_scope
    from sppnet_runtime import OnnxDetector

    init_default_scope("mmdet")
    work, data = ROOT / "work_dirs" / "onnx_tuning", deepforest_data()
    work.mkdir(parents=True, exist_ok=True)
    photo = load_image(data / TEST_IMAGE)
    megapixels = photo.shape[0] * photo.shape[1] / 1e6
    session(PHOTO_MODEL, 1, {}, {}, save=work / "optimized.onnx")
    int8 = {f"int8, {m}{', backbone only' if keep else ''}": quantize(PHOTO_MODEL, work / f"int8_{m}{len(keep)}.onnx",
                                                                       m, keep)
            for m, keep in (("MinMax", ()), ("Percentile", ()), ("Percentile", ("neck", "rpn_head")))}
    rows = []
    for name, threads, attrs, entries in VARIANTS + [(k, 1, {}, {}) for k in int8]:
        path = work / "optimized.onnx" if name.startswith("saved") else int8.get(name, PHOTO_MODEL)
        detector = OnnxDetector(path, threads=threads)
        detector.session = session(path, threads, attrs, entries)
        rows.append(dict(variant=name, threads=threads, model=path.name, detector=detector,
                         load_s=common.median_time(lambda: session(path, threads, attrs, entries), 3, warmup=0)))
    reference = rows[0]["detector"].detect_sliced(photo, rows[0]["detector"].slicing)
    for r in rows:
        got = r["detector"].detect_sliced(photo, r["detector"].slicing)
        r["matched"] = min(match_detections(reference, got), match_detections(got, reference))
    loads = []

    def detect(detector):  # the detector's own seconds, as the runtime reports them
        loads.append(os.getloadavg()[0])
        return {"s": detector.detect_sliced(photo, detector.slicing)["seconds"]}

    # no warm-up round: the matching above ran every variant once
    times = common.interleaved({k: partial(detect, r["detector"]) for k, r in enumerate(rows)}, reps, warmup=0,
                               parts=True, label="variants")
    base = {r["threads"]: times[k]["s"] for k, r in enumerate(rows) if r["variant"] == "default"}
    with open_image(data / TRAIN_IMAGE, max_pixels=None) as image:
        region = sliced_trees.val_area(image)
    images = {"val": (load_image(data / TRAIN_IMAGE, max_pixels=None), sliced_trees.ground_truth(data / TRAIN_IMAGE),
                      region), "test": (photo, sliced_trees.ground_truth(data / TEST_IMAGE), None)}
    for k, r in enumerate(rows):
        median, detector = times[k]["s"], r.pop("detector")
        r.update(median_s=round(median, 4), s_per_mp=round(median / megapixels, 4), load_s=round(r["load_s"], 3),
                 ratio=round(median / base[r["threads"]], 3), matched=round(r["matched"], 4))
        if r["variant"] == "default" and r["threads"] == 1 or r["variant"] in int8:
            for split, (rgb, gt, area) in images.items():
                pred = detector.detect_sliced(rgb, detector.slicing)
                aps = sliced_trees.ap40_50([pred], [gt], area)
                r.update({f"{split}_{key}": round(ap, 4) for key, ap in aps.items()})
    common.write_csv(RESULTS / "onnx_tuning.csv", rows, list(dict.fromkeys(k for r in rows for k in r)))
    lines = [f"ONNX Runtime session options and int8 on the tree detector ({PHOTO_MODEL.name}), the held-out "
             f"photograph ({photo.shape[1]} x {photo.shape[0]} px) in the model's windows; {platform.machine()} CPU, "
             f"{os.cpu_count()} cores, "
             f"onnxruntime {ort.__version__}; 1-min load average {min(loads):.1f}-{max(loads):.1f} during the "
             f"timing; medians of {reps} runs, all variants interleaved in one process; ratio: against `default` "
             "(ONNX Runtime's own options) at the same thread count; matched: boxes matched one to one with "
             "`default` (IoU >= 0.99, same label, score within 1e-3). AP: sliced, val (its area of the training "
             "photograph) and test.", ""]
    table = [[r["variant"], r["threads"], *(f"{r[k]:.3f}" for k in ("load_s", "median_s", "s_per_mp", "ratio")),
              f"{r['matched']:.2%}", *(f"{r[f'{s}_AP40']:.4f} / {r[f'{s}_AP50']:.4f}" if f"{s}_AP40" in r else ""
                                       for s in images)] for r in rows]
    lines.append(common.markdown_table(["variant", "threads", "session load s", "s / photo", "s / MP", "ratio",
                                        "matched", "val AP40 / AP50", "test AP40 / AP50"], table))
    common.write_text(RESULTS / "onnx_tuning.md", "\n".join(lines))


def main() -> None:
    p = common.parser(__doc__, reps=3, quick=False)
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["trees", "demo"])
    p.add_argument("--tune", action="store_true", help="session options and int8 instead (onnx_tuning.{csv,md})")
    args = p.parse_args()
    if args.tune:
        return tune(args.reps)
    rows = [row for name in args.models for row in run(name, args.reps)]
    common.write_csv(RESULTS / "onnx_whole.csv", rows)
    lines = [f"Whole detector, ONNX Runtime against mmdet (PyTorch eager) on the test split, {common.machine()}; "
             f"time per image: medians over images of each image's median of {args.reps} runs, interleaved.", "",
             common.markdown_table(
                 ["model", "images", "mmdet boxes", "matched by ORT", "AP40 mmdet / ORT", "AP50 mmdet / ORT",
                  "1 thread: PyTorch / ORT ms (ratio)", "2 threads: PyTorch / ORT ms (ratio)"],
                 [[r["model"], r["images"], r["mmdet_boxes"], f"{float(r['matched']):.2%}",
                   f"{r['mmdet_AP40']} / {r['onnx_AP40']}", f"{r['mmdet_AP50']} / {r['onnx_AP50']}",
                   *(f"{r[f'torch_ms_{n}t']} / {r[f'onnx_ms_{n}t']} ({r[f'onnx_over_torch_{n}t']})" for n in (1, 2))]
                  for r in rows])]
    common.write_text(RESULTS / "onnx_whole.md", "\n".join(lines))


if __name__ == "__main__":
    main()
