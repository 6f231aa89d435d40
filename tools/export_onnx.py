"""Export a trained SPPNet detector to ONNX and check it in ONNX Runtime.

    python tools/export_onnx.py CONFIG CHECKPOINT --whole [--out FILE] [--num-images N]
    python tools/export_onnx.py CONFIG CHECKPOINT [--out FILE] [--num-images N]   # the RoI stage

``--whole``: the whole detector, image in, boxes, scores and labels out, in one standard
ONNX graph (``mmdet_plugin.deploy.whole_detector``), run by ``python -m sppnet_runtime`` with
onnxruntime, numpy and Pillow only; the config's windows for large images
(``sliced_infer_cfg``) travel in the file, so the runtime slices as ``tools/infer.py`` does. The check runs mmdet's ``DetInferencer`` and the
runtime on the first N held-out images (the config's test split) and prints the share of
mmdet's boxes that ONNX Runtime also gives (same label, IoU >= 0.99, score within 1e-3).

Without ``--whole``:

What is exported: the RoI stage, from the neck's feature levels and the proposals to
the class scores and box deltas, i.e. ``SPPRoIExtractor`` (level mapping + spatial
pyramid pooling, ``spp_triton.export.onnx_export``'s exact translation) and ``SPPBBoxHead``
(fc6, fc7, classifier, regressor). For ``MultiScaleSPPNet`` the levels are the maps of
every image scale, and the RPN's proposals come from the base scale:

    inputs:  feat_0 .. feat_{L-1}  (N, C, H_l, W_l) float32, H_l and W_l dynamic
             rois                  (K, 5) float32 (batch_index, x1, y1, x2, y2), K dynamic
    outputs: cls_score             (K, num_classes + 1) float32
             bbox_pred             (K, 4 * num_classes) float32

The backbone, the RPN and the post-processing around this stage are in ``--whole``'s graph.

Checks: on the first N held-out images (the config's test split) the script runs the
detector in PyTorch up to its proposals, feeds the same features and proposals to the
PyTorch RoI stage and to ONNX Runtime, prints the largest absolute difference of the
scores and deltas, and times both (median per image over all repeats, CPU, each with
its default threads).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn


class RoIStage(nn.Module):
    """(feature levels, rois (K, 5)) -> (cls_score, bbox_pred) of a two-stage detector's
    ``roi_head`` built with ``SPPRoIExtractor`` and ``SPPBBoxHead``."""

    def __init__(self, roi_head: nn.Module):
        super().__init__()
        self.extractor = roi_head.bbox_roi_extractor
        self.head = roi_head.bbox_head

    def forward(self, feats: list[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.extractor(feats, rois))


def load_detector(config: str, checkpoint: str):
    """(model in eval mode on CPU, its Config); importing mmdet_plugin registers the
    plugin and makes checkpoint loading safe under torch >= 2.6."""
    import mmdet_plugin  # noqa: F401
    from mmdet.apis import init_detector
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    return init_detector(cfg, checkpoint, device="cpu").eval(), cfg


def held_out_inputs(model, cfg, count: int):
    """[(feats, rois)] of the first ``count`` test images: the neck's levels the RoI
    extractor reads, and the RPN's proposals as (K, 5) rois, as ``StandardRoIHead`` gets them."""
    from mmdet.registry import DATASETS
    from mmdet.structures.bbox import bbox2roi
    from mmengine.dataset import pseudo_collate

    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    levels = model.roi_head.bbox_roi_extractor.num_inputs
    out = []
    with torch.no_grad():
        for i in range(min(count, len(dataset))):
            data = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
            if hasattr(model, "rpn_and_roi_maps"):  # MultiScaleSPPNet: the RPN sees one scale
                rpn_feats, feats = model.rpn_and_roi_maps(data["inputs"])
            else:
                rpn_feats = feats = model.extract_feat(data["inputs"])
            proposals = model.rpn_head.predict(rpn_feats, data["data_samples"], rescale=False)
            out.append(([f.contiguous() for f in feats[:levels]], bbox2roi([p.bboxes for p in proposals])))
    return out


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def export_whole(args) -> int:
    """--whole: export, then compare with mmdet on held-out images; exit 2 on an ExportError."""
    import numpy as np
    from mmdet.apis import DetInferencer

    from mmdet_plugin.deploy import whole_detector
    from sppnet_runtime import OnnxDetector, load_image

    out = Path(args.out or Path(args.checkpoint).with_suffix("").as_posix() + "_whole.onnx")
    model, cfg = load_detector(args.config, args.checkpoint)
    meta = model.dataset_meta or {}
    t = time.perf_counter()
    try:
        whole_detector.export(model, cfg, out, meta.get("classes", ()), meta.get("palette"),
                              assume_finite=args.assume_finite)
    except whole_detector.ExportError as err:
        print(f"export_onnx: cannot export {args.config} whole: {err}", file=sys.stderr)
        return 2
    print(f"exported {out} ({out.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t:.1f} s")
    runtime = OnnxDetector(out)
    s = runtime.slicing
    print(f"large images: {s.describe()} (the config's sliced_infer_cfg, stored in the model)" if s else
          "large images: run whole, resized by the config's rule (no sliced_infer_cfg; the runtime's --tile cuts "
          "windows)")
    from mmdet.registry import DATASETS

    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    paths = [dataset.get_data_info(i)["img_path"] for i in range(min(args.num_images, len(dataset)))]
    reference = DetInferencer(model=cfg, weights=args.checkpoint, device="cpu", show_progress=False)
    shares, boxes = [], 0
    for path in paths:
        want = reference(path, no_save_vis=True)["predictions"][0]
        got = runtime(load_image(path))
        shares.append(whole_detector.match_detections(want, got))
        boxes += len(want["scores"])
    print(f"{len(paths)} held-out images, {boxes} boxes from mmdet: {np.mean(shares):.2%} matched by ONNX Runtime "
          f"(worst image {min(shares):.2%})")
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--whole", action="store_true", help="export the whole detector (image in, detections out)")
    p.add_argument("--out", default=None, help="ONNX file (default: CHECKPOINT with suffix _whole.onnx or "
                   "_roi_stage.onnx)")
    p.add_argument("--num-images", type=int, default=20, help="held-out images to check and time on")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per image and runtime")
    p.add_argument("--assume-finite", action="store_true",
                   help="skip the pass that makes NaN / all -inf bins exact (see spp_triton.export.onnx_export)")
    args = p.parse_args()
    if args.whole:
        sys.exit(export_whole(args))

    import onnxruntime as ort

    from spp_triton.export import onnx_export

    out = Path(args.out or Path(args.checkpoint).with_suffix("").as_posix() + "_roi_stage.onnx")
    model, cfg = load_detector(args.config, args.checkpoint)
    stage = RoIStage(model.roi_head).eval()
    inputs = held_out_inputs(model, cfg, args.num_images)
    if not inputs:
        sys.exit("no held-out images: check the config's test_dataloader")

    feats, rois = inputs[0]
    k = torch.export.Dim("K")
    dims = [{2: torch.export.Dim(f"H{i}"), 3: torch.export.Dim(f"W{i}")} for i in range(len(feats))]
    names = [f"feat_{i}" for i in range(len(feats))] + ["rois"]
    t = time.perf_counter()
    onnx_export.export(stage, (feats, rois), out, dynamic_shapes=(dims, {0: k}), input_names=names,
                       output_names=["cls_score", "bbox_pred"], assume_finite=args.assume_finite)
    print(f"exported {out} in {time.perf_counter() - t:.1f} s")

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    worst, eager_ms, ort_ms = [0.0, 0.0], [], []
    for feats, rois in inputs:
        feed = dict(zip(names, [f.numpy() for f in feats] + [rois.numpy()]))
        onnx_export.check_inputs(session, feed)
        with torch.no_grad():
            expected = stage(feats, rois)
        got = session.run(None, feed)
        for j, (e, g) in enumerate(zip(expected, got)):
            worst[j] = max(worst[j], (e - torch.from_numpy(g)).abs().max().item() if e.numel() else 0.0)
        with torch.no_grad():
            eager_ms.append(median_ms(lambda: stage(feats, rois), args.repeat))
        ort_ms.append(median_ms(lambda: session.run(None, feed), args.repeat))

    ks = [r.shape[0] for _, r in inputs]
    shapes = " ".join(f"{tuple(f.shape[2:])}" for f in inputs[0][0])
    eager, onnx = statistics.median(eager_ms), statistics.median(ort_ms)
    print(f"{len(inputs)} held-out images, K = {min(ks)}..{max(ks)} proposals, C = {feats[0].shape[1]}, "
          f"levels {shapes}")
    print(f"max |ORT - PyTorch|: cls_score {worst[0]:.3g}, bbox_pred {worst[1]:.3g}")
    print(f"RoI stage, median ms per image: PyTorch eager {eager:.2f} ({torch.get_num_threads()} threads), "
          f"ONNX Runtime {onnx:.2f}; ORT / PyTorch = {onnx / eager:.2f}")


if __name__ == "__main__":
    main()
