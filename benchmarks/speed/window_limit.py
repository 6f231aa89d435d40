"""How far one window's forward pass is from this CPU's limit, and where a photograph's time goes.

    .venv/bin/python benchmarks/speed/window_limit.py [--checkpoint CKPT] [--model M.onnx] [--reps 5]

The tree detector (``configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py``, the `make demo-real`
checkpoint; its ONNX export, `make export-onnx`) on the first window the config cuts from the
held-out photograph, one thread everywhere:

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
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py

from common import RESULTS, ROOT, machine, median_time, parser, setup_threads, write_csv, write_text

CONFIG = ROOT / "configs" / "pretrained_effnet" / "sppnet_effnet-lite0_fpn_36e_trees-voc.py"


def matmul_peak(reps: int, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / median_time(lambda: torch.matmul(a, b), reps) / 1e9


def main():
    p = parser(__doc__, reps=5, threads=1)
    p.add_argument("--checkpoint", default=None, help="default: work_dirs/demo-real's last checkpoint")
    p.add_argument("--model", default=str(ROOT / "work_dirs/demo-real/epoch_36_whole.onnx"))
    a = p.parse_args()
    setup_threads(a.threads)
    checkpoint = a.checkpoint or (ROOT / "work_dirs/demo-real/last_checkpoint").read_text().strip()

    import mmdet_plugin  # noqa: F401  (registers the plugin and the SPP FLOP handle)
    from mmdet.apis import init_detector
    from mmengine.analysis import FlopAnalyzer
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from imagery.merge import merge_detections
    from imagery.outputs import draw_boxes, prediction_record, write_json
    from imagery.read import ArrayImage, load_image
    from imagery.windows import SliceSettings, window_grid
    from mmdet_plugin.apis import SlicedInferencer
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data
    from sppnet_runtime import OnnxDetector

    init_default_scope("mmdet")
    cfg = Config.fromfile(str(CONFIG))
    model = init_detector(cfg, checkpoint, device="cpu").eval()
    settings = SliceSettings.from_config(cfg)
    photo_path = deepforest_data() / TEST_IMAGE
    decode_s = median_time(lambda: load_image(photo_path), a.reps)
    photo = load_image(photo_path)
    grid = window_grid(photo.shape[1], photo.shape[0], settings.tile, settings.overlap)
    x0, y0, w, h = grid[0]
    window = np.ascontiguousarray(photo[y0:y0 + h, x0:x0 + w])
    inferencer = SlicedInferencer(model, cfg, settings)

    # 1. work, counted on exactly what the model gets for this window
    data = model.data_preprocessor(pseudo_collate([inferencer.pipelines[True](
        dict(img=np.ascontiguousarray(window[..., ::-1]), img_id=0))]), False)
    counted = FlopAnalyzer(_Predict(model, data["data_samples"]), (data["inputs"],))
    counted.unsupported_ops_warnings(False)
    counted.uncalled_modules_warnings(False)
    macs = counted.total()
    by_module = {k: counted.by_module().get(k, 0) for k in ("model.backbone", "model.neck", "model.rpn_head",
                                                              "model.roi_head")}

    # 2. time per window, 3. the peak, interleaved so the machine's drift hits each alike
    ort = OnnxDetector(a.model, threads=a.threads) if Path(a.model).is_file() else None
    peak = matmul_peak(a.reps)
    torch_s = median_time(lambda: inferencer.detect([window], True), a.reps)
    ort_s = median_time(lambda: ort(window, native=True), a.reps) if ort else float("nan")
    peak = max(peak, matmul_peak(a.reps))

    # 4. stages (PyTorch) on the window
    inputs, samples = data["inputs"], data["data_samples"]
    with torch.no_grad():
        feats = model.backbone(inputs)
        neck = model.neck(feats)
        proposals = model.rpn_head.predict(neck, samples, rescale=False)
        stages = {
            "pipeline (to the model's input)": median_time(lambda: model.data_preprocessor(pseudo_collate(
                [inferencer.pipelines[True](dict(img=np.ascontiguousarray(window[..., ::-1]), img_id=0))]), False),
                a.reps),
            "backbone": median_time(lambda: model.backbone(inputs), a.reps),
            "neck": median_time(lambda: model.neck(feats), a.reps),
            "RPN (head, decode, NMS)": median_time(lambda: model.rpn_head.predict(neck, samples, rescale=False), a.reps),
            "RoI stage (SPP pooling, head, NMS)": median_time(
                lambda: model.roi_head.predict(neck, proposals, samples, rescale=True), a.reps),
        }
    raw = inferencer(ArrayImage(photo), merge=False)
    out = ROOT / "work_dirs" / "window_limit"
    merged = merge_detections(raw["bboxes"], raw["scores"], raw["labels"], settings.merge, settings.merge_thr,
                              windows=raw["window"])
    record = prediction_record(dict(zip(("bboxes", "scores", "labels"), merged)), ["Tree"], photo_path)
    photo_stages = {
        "decode the photograph (PNG, 1.3 MP)": decode_s,
        f"merge ({len(raw['scores'])} boxes of {raw['windows']} windows)": median_time(lambda: merge_detections(
            raw["bboxes"], raw["scores"], raw["labels"], settings.merge, settings.merge_thr, windows=raw["window"]),
            a.reps),
        "write the JSON": median_time(lambda: write_json(record, out / "photo.json"), a.reps),
        "draw the picture": median_time(lambda: draw_boxes(ArrayImage(photo), record, out / "photo.png", 0.3), a.reps),
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
    text = (f"{machine()}; checkpoint {Path(checkpoint).name}; medians of {a.reps}.\n\n"
            f"One window of the held-out photograph, {r['size']} (the config's first): "
            f"{r['gflop']} GFLOP (2 x MMEngine's {macs:,} multiply-adds; backbone {r['gflop_backbone']}, "
            f"neck {r['gflop_neck']}, RPN head {r['gflop_rpn_head']}, RoI head {r['gflop_roi_head']}). "
            f"Practical peak: float32 torch.matmul 2048 x 2048, {peak:.1f} GFLOP/s on {a.threads} thread(s).\n\n"
            "| runtime | s per window | GFLOP/s | of the matmul peak |\n|---|---|---|---|\n"
            f"| PyTorch (test pipeline + model) | {torch_s:.3f} | {r['torch_gflops']} | {r['torch_of_peak']:.0%} |\n"
            f"| ONNX Runtime (padding + graph) | {ort_s:.3f} | {r['onnx_gflops']} | {r['onnx_of_peak']:.0%} |\n\n"
            "| stage (PyTorch, one thread) | ms |\n|---|---|\n"
            + "".join(f"| {k} | {v * 1000:.1f} |\n" for k, v in {**stages, **photo_stages}.items()))
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
