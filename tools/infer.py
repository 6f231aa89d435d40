"""Detect objects in your own images with a trained detector: one image or a folder.

    .venv/bin/python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_FOLDER [--out-dir DIR]
        [--score-thr 0.3] [--device cpu] [--batch-size 1]

    # after `make demo`:
    .venv/bin/python tools/infer.py configs/sppnet_r18-w16_fpn_24e_synth-voc.py \
        work_dirs/demo/epoch_24.pth data/synth_voc/VOCsynth/JPEGImages/000000.jpg

Writes, for every image, ``DIR/vis/<name>`` (the image with its boxes, labels and scores
above ``--score-thr``) and ``DIR/preds/<name>.json`` (every box: ``labels``, ``scores``,
``bboxes`` as x1, y1, x2, y2 in the image's pixels, and ``classes``, the label names),
with a progress bar over the images. mmdet's ``DetInferencer`` does the work (its
pipeline, batching and visualizer); this tool adds the project's plugin and checks its
arguments before loading anything.

Detectors that read proposals from a file (``RCNN``, mmdet's ``FastRCNN``,
``MultiScaleSPPNet`` without an RPN: configs whose test pipeline has ``LoadProposals``)
have no proposals for a new image, and mmdet's ``inference_detector`` / ``DetInferencer``
fail on them deep inside (mmdet issue #10676). For them this tool replaces
``LoadProposals`` with ``SelectiveSearchProposals``, which computes the image's windows
as the proposal files were made (selective search, fast mode; about 1 s per 400 x 400
image). A proposal-based model whose test pipeline has no ``LoadProposals`` is refused
with a message before the model is loaded.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class UsageError(ValueError):
    """A bad argument, found before the model is loaded."""


PROPOSAL_MODELS = ("FastRCNN", "RCNN")


def proposals_on_the_fly(cfg) -> bool:
    """Swaps the test pipeline's ``LoadProposals`` for ``SelectiveSearchProposals`` (same
    ``num_max_proposals``), so that a proposal-based detector runs on new images; True if
    it did. Raises UsageError for a proposal-based model whose test pipeline has no
    ``LoadProposals`` (its proposals would have nowhere to go)."""
    pipeline = cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline", [])
    swapped = False
    for i, step in enumerate(pipeline):
        if isinstance(step, dict) and step.get("type") == "LoadProposals":
            pipeline[i] = dict(type="SelectiveSearchProposals", num_max_proposals=step.get("num_max_proposals"))
            swapped = True
    model_type = str(cfg.model.get("type", ""))
    needs = model_type in PROPOSAL_MODELS or (model_type == "MultiScaleSPPNet" and not cfg.model.get("rpn_head"))
    if needs and not swapped:
        raise UsageError(
            f"model type {model_type!r} takes proposals, not an RPN, and the config's test pipeline has no "
            "LoadProposals step to compute them in (mmdet issue #10676): add LoadProposals and "
            "ProposalBroadcaster as configs/_base_/recipes/ss-proposals_36e_trees.py does")
    return swapped


def list_images(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise UsageError(f"IMAGE_OR_FOLDER {path} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [path]
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UsageError(f"IMAGE_OR_FOLDER {path} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        return images
    raise UsageError(f"IMAGE_OR_FOLDER {path} does not exist")


def infer(config: Path, checkpoint: Path, inputs: Path, out_dir: Path, score_thr: float = 0.3,
          device: str = "cpu", batch_size: int = 1) -> list[Path]:
    """Run the detector on ``inputs``; returns the prediction JSON files written."""
    for name, path in (("CONFIG", config), ("CHECKPOINT", checkpoint)):
        if not path.is_file():
            raise UsageError(f"{name} {path} does not exist")
    if not 0.0 <= score_thr <= 1.0:
        raise UsageError(f"--score-thr must be in [0, 1], got {score_thr}")
    images = list_images(inputs)

    from mmengine.config import Config

    cfg = Config.fromfile(str(config))  # imports mmdet_plugin through custom_imports
    try:
        if proposals_on_the_fly(cfg):
            print("this detector takes proposals: computing each image's selective-search windows "
                  "(fast mode, ~1 s per 400 x 400 image) in place of its LoadProposals", flush=True)
    except UsageError as e:
        raise UsageError(f"CONFIG {config}: {e}") from None

    import mmdet_plugin  # noqa: F401  (safe checkpoint loading; registers the plugin)
    from mmdet.apis import DetInferencer
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")  # as mim's tools do: the pipeline's names are mmdet's

    inferencer = DetInferencer(model=cfg, weights=str(checkpoint), device=device, show_progress=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    inferencer([str(p) for p in images], batch_size=batch_size, out_dir=str(out_dir), pred_score_thr=score_thr,
               no_save_pred=False)
    classes = list(inferencer.model.dataset_meta.get("classes", ()))
    written = []
    for image in images:
        pred_file = out_dir / "preds" / f"{image.stem}.json"
        pred = json.loads(pred_file.read_text())
        pred["classes"] = [classes[i] if 0 <= i < len(classes) else str(i) for i in pred["labels"]]
        pred["image"] = str(image)
        pred_file.write_text(json.dumps(pred))
        written.append(pred_file)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("inputs", type=Path, metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out-dir", type=Path, default=Path("work_dirs/infer"))
    p.add_argument("--score-thr", type=float, default=0.3, help="boxes drawn above this score (all are saved)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1)
    a = p.parse_args(argv)
    try:
        written = infer(a.config, a.checkpoint, a.inputs, a.out_dir, a.score_thr, a.device, a.batch_size)
    except UsageError as e:
        print(f"infer: {e}", file=sys.stderr)
        return 2
    print(f"{len(written)} image(s): pictures with boxes in {a.out_dir / 'vis'}, predictions as JSON in "
          f"{a.out_dir / 'preds'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
