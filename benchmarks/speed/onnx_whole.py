"""The whole detector in ONNX Runtime against mmdet in PyTorch: same detections, same AP, and speed.

    .venv/bin/python benchmarks/speed/onnx_whole.py [--models trees demo] [--reps 3]

For each trained detector (``trees``: ``make demo-real``'s EfficientNet-Lite0 FPN,
work_dirs/demo-real; ``demo``: ``make demo``'s ResNet-18-w16 FPN, work_dirs/demo) it
exports the whole detector (``tools/export_onnx.py --whole``'s code), then on every image of
the config's test split, decoded once:

* mmdet: ``inference_detector`` (the config's test pipeline on the array, then the model),
  PyTorch eager, float32, no grad;
* ONNX Runtime: ``sppnet_runtime.OnnxDetector`` (its numpy resize, then the graph).

For a detector whose config has windows for large images (``sliced_infer_cfg``: the tree
detector), the same on the whole held-out photograph (1249 x 1035 px, 279 crowns) in those
windows: mmdet_plugin's ``SlicedInferencer`` (``tools/infer.py``) against the runtime's
``OnnxDetector.detect_sliced`` (the windows travel in the model file).

It reports the share of mmdet's boxes that ONNX Runtime also gives (same label, IoU >=
0.99, score within 1e-3), test AP from each (mmdet's ``eval_map`` as VOCMetric calls it,
area mode; IoU 0.4 and 0.5), and the time per image at 1 and 2 threads (torch's intra-op
threads; ONNX Runtime's intra-op threads, one inter-op): the median over images of each
image's median over --reps, the two runtimes interleaved image by image in one process.
Writes benchmarks/results/onnx_whole.{csv,md}.

``--tune`` (issue 38, item 5) instead times ONNX Runtime's session options (graph optimization
level, memory pattern and arena, denormals, spinning, execution mode, a saved optimized file) at
1 and 2 threads and two int8 static quantizations (``quantize``) on the held-out photograph in
the model's windows, interleaved; AP40/AP50 on val and test for float32 and int8. Writes
benchmarks/results/onnx_tuning.{csv,md}.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import RESULTS, ROOT

MODELS = {"trees": ("configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py", "work_dirs/demo-real"),
          "demo": ("configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py", "work_dirs/demo")}


def average_precision(preds: list[dict], gts: list[dict], classes, iou_thr: float) -> float:
    """mAP over classes, as mmdet's VOCMetric computes it (area mode, legacy coordinates)."""
    from mmdet.evaluation.functional import eval_map

    dets = [[np.hstack([p["bboxes"][p["labels"] == c], p["scores"][p["labels"] == c, None]]).astype(np.float32)
             for c in range(len(classes))] for p in preds]
    mean_ap, _ = eval_map(dets, gts, iou_thr=iou_thr, dataset=list(classes), logger="silent", eval_mode="area",
                          use_legacy_coordinate=True, nproc=1)
    return float(mean_ap)


def ground_truth(info: dict) -> dict:
    boxes = np.array([i["bbox"] for i in info["instances"]], np.float32).reshape(-1, 4)
    labels = np.array([i["bbox_label"] for i in info["instances"]], np.int64)
    ignored = np.array([bool(i.get("ignore_flag", 0)) for i in info["instances"]], bool)
    return dict(bboxes=boxes[~ignored], labels=labels[~ignored], bboxes_ignore=boxes[ignored],
                labels_ignore=labels[ignored])


def timed(fns: dict, inputs: list, reps: int, label: str) -> dict:
    """{key: median over ``inputs`` of each input's median time over ``reps``} of every
    function in ``fns``, interleaved input by input, each warmed up once."""
    times = {key: [] for key in fns}
    for i, x in enumerate(inputs):
        for key, fn in fns.items():
            fn(x)  # warm-up
            times[key].append(common.median_time(lambda: fn(x), reps, warmup=0))
        print(f"  {label}: {i + 1}/{len(inputs)}", end="\r", flush=True)
    print()
    return {key: statistics.median(t) for key, t in times.items()}


def with_times(row: dict, threads: int, times: dict) -> dict:
    row[f"torch_ms_{threads}t"] = f"{1e3 * times['torch']:.1f}"
    row[f"onnx_ms_{threads}t"] = f"{1e3 * times['onnx']:.1f}"
    row[f"onnx_over_torch_{threads}t"] = f"{times['onnx'] / times['torch']:.2f}"
    return row


def run_sliced(model, cfg, sessions: dict, checkpoint: Path, reps: int) -> dict:
    """The whole held-out tree photograph in the config's windows, mmdet against the runtime."""
    import sliced_trees

    from imagery.read import load_image, open_image
    from imagery.windows import SliceSettings
    from mmdet_plugin.apis import SlicedInferencer
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data
    from mmdet_plugin.deploy import whole_detector

    photo = deepforest_data() / TEST_IMAGE
    settings = SliceSettings.from_config(cfg)
    inferencer, rgb, gt = SlicedInferencer(model, cfg, settings), load_image(photo), sliced_trees.ground_truth(photo)
    assert sessions[1].slicing == settings, (sessions[1].slicing, settings)

    def eager(_):
        with open_image(photo) as image:
            return inferencer(image)

    torch.set_num_threads(1)
    want, got = eager(None), sessions[1].detect_sliced(rgb, sessions[1].slicing)
    row = dict(model="trees, whole photograph in windows", config=Path(cfg.filename).name,
               checkpoint=str(checkpoint.relative_to(ROOT)), images=1, windows=got["windows"],
               mmdet_boxes=len(want["scores"]), onnx_boxes=len(got["scores"]),
               matched=f"{whole_detector.match_detections(want, got):.4f}")
    for thr in (0.4, 0.5):
        row[f"mmdet_AP{round(thr * 100)}"] = f"{sliced_trees.average_precision([want], [gt], thr):.4f}"
        row[f"onnx_AP{round(thr * 100)}"] = f"{sliced_trees.average_precision([got], [gt], thr):.4f}"
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with_times(row, threads, timed({"torch": eager, "onnx": lambda x: sessions[threads].detect_sliced(
            x, sessions[threads].slicing)}, [rgb], reps, f"whole photograph, {threads} thread(s)"))
    return row


def run(name: str, reps: int) -> list[dict]:
    import mmdet_plugin  # noqa: F401
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import DATASETS
    from mmengine.config import Config

    from mmdet_plugin.deploy import whole_detector
    from sppnet_runtime import OnnxDetector, load_image

    config, work = (ROOT / p for p in MODELS[name])
    last = work / "last_checkpoint"
    if not last.exists():
        sys.exit(f"{name}: no checkpoint in {work} (run `make demo-real` / `make demo` first)")
    checkpoint = Path(last.read_text().strip())
    cfg = Config.fromfile(str(config))
    model = init_detector(cfg, str(checkpoint), device="cpu").eval()
    meta = model.dataset_meta
    onnx_path = checkpoint.with_name(checkpoint.stem + "_whole.onnx")
    start = time.perf_counter()
    whole_detector.export(model, cfg, onnx_path, meta["classes"], meta.get("palette"))
    export_s = time.perf_counter() - start
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=[]))
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    images = [load_image(info["img_path"]) for info in infos]
    sessions = {t: OnnxDetector(onnx_path, threads=t) for t in (1, 2)}

    def eager(rgb):
        with torch.no_grad():
            pred = inference_detector(model, np.ascontiguousarray(rgb[..., ::-1])).pred_instances
        return {"bboxes": pred.bboxes.numpy(), "scores": pred.scores.numpy(), "labels": pred.labels.numpy()}

    torch.set_num_threads(1)
    want = [eager(rgb) for rgb in images]
    got = [sessions[1](rgb) for rgb in images]
    boxes = sum(len(w["scores"]) for w in want)
    matched = sum(whole_detector.match_detections(w, g) * len(w["scores"]) for w, g in zip(want, got))
    gts = [ground_truth(info) for info in infos]
    row = dict(model=name, config=config.name, checkpoint=str(checkpoint.relative_to(ROOT)), images=len(images),
               export_s=f"{export_s:.1f}", onnx_mib=f"{onnx_path.stat().st_size / 2**20:.1f}", mmdet_boxes=boxes,
               onnx_boxes=sum(len(g["scores"]) for g in got), matched=f"{matched / max(boxes, 1):.4f}")
    for thr in (0.4, 0.5):
        key = f"AP{round(thr * 100)}"
        row[f"mmdet_{key}"] = f"{average_precision(want, gts, meta['classes'], thr):.4f}"
        row[f"onnx_{key}"] = f"{average_precision(got, gts, meta['classes'], thr):.4f}"
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with_times(row, threads, timed({"torch": eager, "onnx": sessions[threads]}, images, reps,
                                       f"{name} {threads} thread(s), image"))
    rows = [row]
    if cfg.get("sliced_infer_cfg"):
        rows.append(run_sliced(model, Config.fromfile(str(config)), sessions, checkpoint, reps))
    return rows


# --------------------------------------------------------------------------- --tune (issue 38, item 5)
PHOTO_MODEL = ROOT / "work_dirs/demo-real/epoch_36_whole.onnx"
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


def tune(reps: int) -> None:
    """--tune: every VARIANTS session and three int8 models on the held-out photograph in the
    model's windows, interleaved rep by rep; AP on val and test for float32 and int8."""
    import onnxruntime as ort
    import sliced_trees

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
        rows.append(dict(variant=name, threads=threads, model=path.name, detector=detector, times=[],
                         load_s=common.median_time(lambda: session(path, threads, attrs, entries), 3, warmup=0)))
    reference = rows[0]["detector"].detect_sliced(photo, rows[0]["detector"].slicing)
    for r in rows:
        got = r["detector"].detect_sliced(photo, r["detector"].slicing)
        r["matched"] = min(match_detections(reference, got), match_detections(got, reference))
    loads = [os.getloadavg()[0]]
    for rep in range(reps):
        for r in rows:
            r["times"].append(r["detector"].detect_sliced(photo, r["detector"].slicing)["seconds"])
        loads.append(os.getloadavg()[0])
        print(f"  rep {rep + 1}/{reps}, load {loads[-1]:.2f}", flush=True)
    base = {r["threads"]: statistics.median(r["times"]) for r in rows if r["variant"] == "default"}
    with open_image(data / TRAIN_IMAGE, max_pixels=None) as image:
        region = sliced_trees.val_area(image)
    images = {"val": (load_image(data / TRAIN_IMAGE, max_pixels=None), sliced_trees.ground_truth(data / TRAIN_IMAGE),
                      region), "test": (photo, sliced_trees.ground_truth(data / TEST_IMAGE), None)}
    for r in rows:
        median, detector = statistics.median(r.pop("times")), r.pop("detector")
        r.update(median_s=round(median, 4), s_per_mp=round(median / megapixels, 4), load_s=round(r["load_s"], 3),
                 ratio=round(median / base[r["threads"]], 3), matched=round(r["matched"], 4))
        if r["variant"] == "default" and r["threads"] == 1 or r["variant"] in int8:
            for split, (rgb, gt, area) in images.items():
                pred = detector.detect_sliced(rgb, detector.slicing)
                for thr in (0.4, 0.5):
                    ap = sliced_trees.average_precision([pred], [gt], thr, area)
                    r[f"{split}_AP{round(thr * 100)}"] = round(ap, 4)
    common.write_csv(RESULTS / "onnx_tuning.csv", rows, list(dict.fromkeys(k for r in rows for k in r)))
    lines = [f"ONNX Runtime session options and int8 on the tree detector ({PHOTO_MODEL.name}), the held-out "
             f"photograph ({photo.shape[1]} x {photo.shape[0]} px) in the model's windows; {platform.machine()} CPU, "
             f"{os.cpu_count()} cores, "
             f"onnxruntime {ort.__version__}; 1-min load average {min(loads):.1f}-{max(loads):.1f} during the "
             f"timing; medians of {reps} runs, all variants interleaved in one process; ratio: against `default` "
             "(ONNX Runtime's own options) at the same thread count; matched: boxes matched one to one with "
             "`default` (IoU >= 0.99, same label, score within 1e-3). AP: sliced, val (its area of the training "
             "photograph) and test.", "", "| variant | threads | session load s | s / photo | s / MP | ratio | matched "
             "| val AP40 / AP50 | test AP40 / AP50 |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        ap = [f"{r[f'{s}_AP40']:.4f} / {r[f'{s}_AP50']:.4f}" if f"{s}_AP40" in r else "" for s in images]
        lines.append(f"| {r['variant']} | {r['threads']} | {r['load_s']:.3f} | {r['median_s']:.3f} | "
                     f"{r['s_per_mp']:.3f} | {r['ratio']:.3f} | {r['matched']:.2%} | {ap[0]} | {ap[1]} |")
    common.write_text(RESULTS / "onnx_tuning.md", "\n".join(lines))


def main() -> None:
    p = common.parser(__doc__, reps=3)
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["trees", "demo"])
    p.add_argument("--tune", action="store_true", help="session options and int8 instead (onnx_tuning.{csv,md})")
    args = p.parse_args()
    if args.tune:
        return tune(args.reps)
    rows = [row for name in args.models for row in run(name, args.reps)]
    common.write_csv(RESULTS / "onnx_whole.csv", rows)
    lines = [f"Whole detector, ONNX Runtime against mmdet (PyTorch eager) on the test split, {common.machine()}; "
             f"time per image: medians over images of each image's median of {args.reps} runs, interleaved.", "",
             "| model | images | mmdet boxes | matched by ORT | AP40 mmdet / ORT | AP50 mmdet / ORT "
             "| 1 thread: PyTorch / ORT ms (ratio) | 2 threads: PyTorch / ORT ms (ratio) |",
             "| --- | ---: | ---: | ---: | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['images']} | {r['mmdet_boxes']} | {float(r['matched']):.2%} | "
                     f"{r['mmdet_AP40']} / {r['onnx_AP40']} | {r['mmdet_AP50']} / {r['onnx_AP50']} | "
                     f"{r['torch_ms_1t']} / {r['onnx_ms_1t']} ({r['onnx_over_torch_1t']}) | "
                     f"{r['torch_ms_2t']} / {r['onnx_ms_2t']} ({r['onnx_over_torch_2t']}) |")
    common.write_text(RESULTS / "onnx_whole.md", "\n".join(lines))


if __name__ == "__main__":
    main()
