"""How far one window's forward pass is from this CPU's limit, and where a photograph's time goes.

The tree detector (``make demo-real``; its ONNX export, ``make export-onnx``) on the first
window the config cuts from the held-out photograph, one thread everywhere:

1. Work: MMEngine's ``FlopAnalyzer`` on the window (what mmdet's get_flops counts, the SPP
   stage included through mmdet_plugin's handle). It counts a multiply-add as one
   operation (fvcore's convention), so floating-point operations = 2 x its count.
2. Time per window: PyTorch (``SlicedInferencer.detect``: the test pipeline at scale 1, then
   the model) and ONNX Runtime (``OnnxDetector``: numpy padding, then the graph); medians.
3. The practical peak: float32 ``torch.matmul`` of 2048 x 2048 matrices on the same thread
   (2 n^3 operations). Achieved = 2 x count / time; the distance = achieved / peak.
4. Time per stage in PyTorch (decode of the photograph, pipeline, backbone, neck, RPN, RoI
   stage with its head) on the window, and for the photograph's windows: merge, JSON,
   drawing. Medians of --reps.
Writes benchmarks/results/window_limit.{csv,md}.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py

from common import (RESULTS, ROOT, detector_args, machine, markdown_table, median_time, parser,
                    setup_threads, tree_detector, write_csv, write_text)


def matmul_peak(reps: int, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / median_time(lambda: torch.matmul(a, b), reps) / 1e9


def main():
    p = parser(__doc__, reps=5, threads=1, quick=False)
    detector_args(p, onnx=True)
    a = p.parse_args()
    setup_threads(a.threads)
    cfg, model, checkpoint = tree_detector(a)  # imports mmdet_plugin: the SPP's FLOP handle too

    from mmengine.analysis import FlopAnalyzer
    from mmengine.dataset import pseudo_collate

    from imagery.merge import merge_detections
    from imagery.outputs import draw_boxes, prediction_record, write_json
    from imagery.read import ArrayImage, load_image
    from imagery.windows import SliceSettings, window_grid
    from mmdet_plugin.apis import SlicedInferencer
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data
    from sppnet_runtime import OnnxDetector

    settings = SliceSettings.from_config(cfg)
    photo_path = deepforest_data() / TEST_IMAGE
    timed = partial(median_time, reps=a.reps)
    decode_s = timed(lambda: load_image(photo_path))
    photo = load_image(photo_path)
    x0, y0, w, h = window_grid(photo.shape[1], photo.shape[0], settings.tile, settings.overlap)[0]
    window = np.ascontiguousarray(photo[y0:y0 + h, x0:x0 + w])
    inferencer = SlicedInferencer(model, cfg, settings)

    def model_input() -> dict:  # the test pipeline at scale 1 on the window, then the data preprocessor
        return model.data_preprocessor(pseudo_collate([inferencer.pipelines[True](
            dict(img=np.ascontiguousarray(window[..., ::-1]), img_id=0))]), False)

    # 1. work, counted on exactly what the model gets for this window
    data = model_input()
    counted = FlopAnalyzer(_Predict(model, data["data_samples"]), (data["inputs"],))
    counted.unsupported_ops_warnings(False)
    counted.uncalled_modules_warnings(False)
    macs = counted.total()
    by_module = {k: counted.by_module().get(k, 0) for k in ("model.backbone", "model.neck", "model.rpn_head",
                                                              "model.roi_head")}

    # 2. time per window, 3. the peak, measured before and after them (the higher kept)
    ort = OnnxDetector(a.model, threads=a.threads) if Path(a.model).is_file() else None
    peak = matmul_peak(a.reps)
    torch_s = timed(lambda: inferencer.detect([window], True))
    ort_s = timed(lambda: ort(window, native=True)) if ort else float("nan")
    peak = max(peak, matmul_peak(a.reps))

    # 4. stages (PyTorch) on the window
    inputs, samples = data["inputs"], data["data_samples"]
    with torch.no_grad():
        feats = model.backbone(inputs)
        neck = model.neck(feats)
        proposals = model.rpn_head.predict(neck, samples, rescale=False)
        stages = {
            "pipeline (to the model's input)": timed(model_input),
            "backbone": timed(lambda: model.backbone(inputs)),
            "neck": timed(lambda: model.neck(feats)),
            "RPN (head, decode, NMS)": timed(lambda: model.rpn_head.predict(neck, samples, rescale=False)),
            "RoI stage (SPP pooling, head, NMS)": timed(lambda: model.roi_head.predict(neck, proposals, samples,
                                                                                       rescale=True)),
        }
    raw = inferencer(ArrayImage(photo), merge=False)
    out = ROOT / "work_dirs" / "window_limit"

    def merge():
        return merge_detections(raw["bboxes"], raw["scores"], raw["labels"], settings.merge, settings.merge_thr,
                                windows=raw["window"])

    record = prediction_record(dict(zip(("bboxes", "scores", "labels"), merge())), ["Tree"], photo_path)
    photo_stages = {
        "decode the photograph (PNG, 1.3 MP)": decode_s,
        f"merge ({len(raw['scores'])} boxes of {raw['windows']} windows)": timed(merge),
        "write the JSON": timed(lambda: write_json(record, out / "photo.json")),
        "draw the picture": timed(lambda: draw_boxes(ArrayImage(photo), record, out / "photo.png", 0.3)),
    }

    ops = 2 * macs
    rows = [dict(what="window", size=f"{w} x {h} px", counted_macs=macs, gflop=round(ops / 1e9, 2),
                 **{f"gflop_{k.split('.')[-1]}": round(2 * v / 1e9, 2) for k, v in by_module.items()},
                 matmul_peak_gflops=round(peak, 1),
                 torch_s=round(torch_s, 4), torch_gflops=round(ops / torch_s / 1e9, 1),
                 torch_of_peak=round(ops / torch_s / 1e9 / peak, 3),
                 onnx_s=round(ort_s, 4), onnx_gflops=round(ops / ort_s / 1e9, 1),
                 onnx_of_peak=round(ops / ort_s / 1e9 / peak, 3))]
    rows += [dict(what=f"stage: {k}", torch_s=round(v, 4)) for k, v in {**stages, **photo_stages}.items()]
    write_csv(RESULTS / "window_limit.csv", rows, list(dict.fromkeys(k for r in rows for k in r)))
    r = rows[0]
    text = (f"{machine()}; checkpoint {checkpoint.name}; medians of {a.reps}.\n\n"
            f"One window of the held-out photograph, {r['size']} (the config's first): "
            f"{r['gflop']} GFLOP (2 x MMEngine's {macs:,} multiply-adds; backbone {r['gflop_backbone']}, "
            f"neck {r['gflop_neck']}, RPN head {r['gflop_rpn_head']}, RoI head {r['gflop_roi_head']}). "
            f"Practical peak: float32 torch.matmul 2048 x 2048, {peak:.1f} GFLOP/s on {a.threads} thread(s).\n\n"
            + markdown_table(["runtime", "s per window", "GFLOP/s", "of the matmul peak"], [
                ["PyTorch (test pipeline + model)", f"{torch_s:.3f}", r["torch_gflops"], f"{r['torch_of_peak']:.0%}"],
                ["ONNX Runtime (padding + graph)", f"{ort_s:.3f}", r["onnx_gflops"], f"{r['onnx_of_peak']:.0%}"]])
            + "\n\n" + markdown_table(["stage (PyTorch, one thread)", "ms"],
                                       [[k, f"{v * 1000:.1f}"] for k, v in {**stages, **photo_stages}.items()]))
    write_text(RESULTS / "window_limit.md", text)


class _Predict(torch.nn.Module):
    """The detector's predict path as a module of one tensor, for the FLOP analyser."""

    def __init__(self, model, samples):
        super().__init__()
        self.model, self.samples = model, samples

    def forward(self, inputs):
        pred = self.model.predict(inputs, self.samples)[0].pred_instances  # the tracer takes tensors only
        return pred.bboxes, pred.scores, pred.labels


if __name__ == "__main__":
    main()
