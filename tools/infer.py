"""Detect objects in your own images with a trained detector: one image or a folder, of any size.

    .venv/bin/python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_FOLDER [--out-dir DIR]
        [--score-thr 0.3] [--device cpu] [--batch-size 1]
        [--tile PX --overlap PX --merge nms|ios|join --merge-thr T | --no-slicing]

    # after `make demo`:
    .venv/bin/python tools/infer.py configs/sppnet_r18-w16_fpn_24e_synth-voc.py \
        work_dirs/demo/epoch_24.pth data/synth_voc/VOCsynth/JPEGImages/000000.jpg
    # after `make demo-real`, on a whole aerial photograph at native resolution:
    .venv/bin/python tools/infer.py configs/sppnet_effnet-lite0_fpn_36e_trees-voc.py \
        $(cat work_dirs/demo-real/last_checkpoint) photo.png

Large images (sliced inference, ``mmdet_plugin.apis.SlicedInferencer``). A detector trained
on tiles must see a large photograph at the tiles' resolution, not resized to one tile.
With ``--tile``, or by default for a config with ``sliced_infer_cfg`` (the tree
detectors: 400 px, overlap and merge rule chosen on val), every image larger than one tile
is cut into windows of ``--tile`` px every ``tile - overlap`` px, run in batches of
``--batch-size`` windows at scale 1 (a progress bar over the windows), and the boxes are
merged across seams (``--merge``: ``nms`` by IoU, ``ios`` by intersection over the smaller
box, ``join`` unites the pieces of a cut object; ``--merge-thr``). Images no larger than a
tile, and every image with ``--no-slicing`` or without a tile from either place, run whole
through the config's test pipeline, as mmdet's ``DetInferencer`` runs them. Memory stays
bounded: TIFFs are read window by window, other formats are decoded once (3 bytes a
pixel), and only boxes are kept.

Writes, for every image, ``DIR/vis/<name>`` (the image with its boxes, labels and scores
above ``--score-thr``; PNG for a TIFF, at most ``--vis-max-side`` px) and
``DIR/preds/<stem>.json`` (every box: ``labels``, ``scores``, ``bboxes`` as x1, y1, x2,
y2 in the image's pixels, ``classes``, the label names, and ``sliced``, the windows
used). For a georeferenced raster (a GeoTIFF) it also writes ``DIR/preds/<stem>.geojson``:
the boxes as polygons in the raster's map coordinates and CRS (``apis.outputs``).

Bad input: arguments are checked before the model is loaded (exit 2). An image that
cannot be read (missing, truncated, empty, not an image), or that is smaller than an
explicit ``--tile``, fails alone with its name and the reason; the others are written,
and the tool ends with the list of failures (exit 1).

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
import sys
from pathlib import Path

from sppnet_runtime.outputs import list_images as images_of
from sppnet_runtime.outputs import vis_name
from sppnet_runtime.windows import check_tile_fits



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
    try:
        return images_of(path)
    except ValueError as e:
        raise UsageError(str(e)) from None


def slice_settings(cfg, tile, overlap, merge, merge_thr, no_slicing: bool):
    """The windows to cut: ``--tile``, ``--overlap``, ``--merge``, ``--merge-thr`` over the
    config's ``sliced_infer_cfg``; None (every image whole) with ``--no-slicing``, or when
    neither the command line nor the config gives a tile."""
    from sppnet_runtime.windows import SliceSettings, choose_slicing

    try:
        default = None if no_slicing else SliceSettings.from_config(cfg)
    except ValueError as e:
        raise UsageError(f"CONFIG: {e}") from None
    try:
        return choose_slicing(default, tile, overlap, merge, merge_thr, no_slicing)
    except ValueError as e:
        raise UsageError(str(e)) from None


def infer(config: Path, checkpoint: Path, inputs: Path, out_dir: Path, score_thr: float = 0.3,
          device: str = "cpu", batch_size: int = 1, tile: int | None = None, overlap: int | None = None,
          merge: str | None = None, merge_thr: float | None = None, no_slicing: bool = False,
          vis_max_side: int = 4096) -> tuple[list[Path], dict[Path, str]]:
    """Run the detector on ``inputs``; returns (prediction JSON files written, {image: why it
    failed}). An image that cannot be read, or that is smaller than an explicit ``--tile``,
    fails alone: the others are still written."""
    for name, path in (("CONFIG", config), ("CHECKPOINT", checkpoint)):
        if not path.is_file():
            raise UsageError(f"{name} {path} does not exist")
    if not 0.0 <= score_thr <= 1.0:
        raise UsageError(f"--score-thr must be in [0, 1], got {score_thr}")
    if batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {batch_size}")
    images = list_images(inputs)

    from mmengine.config import Config

    cfg = Config.fromfile(str(config))  # imports mmdet_plugin through custom_imports
    settings = slice_settings(cfg, tile, overlap, merge, merge_thr, no_slicing)
    try:
        if proposals_on_the_fly(cfg):
            print("this detector takes proposals: computing each image's selective-search windows "
                  "(fast mode, ~1 s per 400 x 400 image) in place of its LoadProposals", flush=True)
    except UsageError as e:
        raise UsageError(f"CONFIG {config}: {e}") from None

    import mmdet_plugin  # noqa: F401  (safe checkpoint loading; registers the plugin)
    from mmdet.apis import init_detector
    from mmengine.registry import init_default_scope

    from mmdet_plugin.apis import SlicedInferencer, draw_boxes, prediction_record, write_geojson, write_json
    from mmdet_plugin.datasets.large_image import ImageReadError, open_large_image

    init_default_scope("mmdet")  # as mim's tools do: the pipeline's names are mmdet's
    model = init_detector(cfg, str(checkpoint), device=device)
    meta = model.dataset_meta or {}
    classes, palette = list(meta.get("classes", ())), meta.get("palette")
    inferencer = SlicedInferencer(model, cfg, settings, batch_size)
    if settings:
        print(f"sliced inference: {settings.describe()} (from {'the command line' if tile else 'the config'}); "
              "images no larger than a window run whole", flush=True)
    written, failed = [], {}
    for k, path in enumerate(images, 1):
        print(f"[{k}/{len(images)}] {path}", flush=True)
        try:
            with open_large_image(path) as image:
                check_tile_fits(tile, image.width, image.height)
                pred = inferencer(image)
                record = prediction_record(pred, classes, path)
                if pred["windows"] > 1:
                    record["sliced"] = settings.record(pred["windows"])
                written.append(write_json(record, out_dir / "preds" / f"{path.stem}.json"))
                draw_boxes(image, record, out_dir / "vis" / vis_name(path), score_thr, palette, vis_max_side)
                geo = write_geojson(record, image, out_dir / "preds" / f"{path.stem}.geojson")
                above = sum(s > score_thr for s in record["scores"])
                print(f"    {len(record['scores'])} boxes ({above} above {score_thr}) in {pred['seconds']:.1f} s"
                      + (f"; map coordinates ({image.crs}) in {geo}" if geo else ""), flush=True)
        except (ImageReadError, ValueError) as e:
            print(f"    failed: {e}", file=sys.stderr, flush=True)
            failed[path] = str(e)
    return written, failed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("inputs", type=Path, metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out-dir", type=Path, default=Path("work_dirs/infer"))
    p.add_argument("--score-thr", type=float, default=0.3, help="boxes drawn above this score (all are saved)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass (1 is fastest on a CPU)")
    g = p.add_argument_group("sliced inference (default: the config's sliced_infer_cfg, if it has one)")
    g.add_argument("--tile", type=int, help="window size in pixels; windows run at native resolution")
    g.add_argument("--overlap", type=int, help="pixels shared by neighbouring windows (< --tile)")
    g.add_argument("--merge", help="how boxes are merged across seams: nms, ios or join")
    g.add_argument("--merge-thr", type=float, help="IoU (nms) or intersection over the smaller box (ios, join)")
    g.add_argument("--no-slicing", action="store_true", help="run every image whole, resized by the config")
    p.add_argument("--vis-max-side", type=int, default=4096, help="pictures are drawn at most this many px wide")
    a = p.parse_args(argv)
    try:
        written, failed = infer(a.config, a.checkpoint, a.inputs, a.out_dir, a.score_thr, a.device, a.batch_size,
                                a.tile, a.overlap, a.merge, a.merge_thr, a.no_slicing, a.vis_max_side)
    except UsageError as e:
        print(f"infer: {e}", file=sys.stderr)
        return 2
    print(f"{len(written)} image(s): pictures with boxes in {a.out_dir / 'vis'}, predictions as JSON in "
          f"{a.out_dir / 'preds'}")
    if failed:
        print(f"{len(failed)} image(s) failed:\n" + "\n".join(f"  {p}: {why}" for p, why in failed.items()),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
