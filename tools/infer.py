"""Detect objects in your own images with a trained detector: one image or a folder, of any size.

    .venv/bin/python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_FOLDER [--out-dir DIR]
        [--score-thr 0.3] [--device cpu] [--batch-size 1] [--launcher none|pytorch|slurm|mpi]
        [--tile PX --overlap PX --merge nms|ios|join --merge-thr T | --no-slicing] [--max-pixels N]
    # the same job over 2 processes (ranks) of 1 thread each, output identical:
    torchrun --nproc_per_node 2 tools/infer.py CONFIG CHECKPOINT IMAGE_OR_FOLDER --launcher pytorch

    # after `make demo`:
    .venv/bin/python tools/infer.py configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py \
        work_dirs/demo/epoch_24.pth data/synth_voc/VOCsynth/JPEGImages/000000.jpg
    # after `make demo-real`, on a whole aerial photograph at native resolution:
    .venv/bin/python tools/infer.py configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py \
        $(cat work_dirs/demo-real/last_checkpoint) photo.png

Images are read as mmdet's ``LoadImageFromFile`` reads them (EXIF orientation, grey,
palette and 16-bit files; ``imagery.read``); what cannot be read is refused with its
reason. Large images (sliced inference, ``imagery.windows``, shared with the ONNX runtime):
a detector trained on tiles must see a large photograph at the tiles' resolution, not
resized to one tile. With ``--tile``, or by default for a config with ``sliced_infer_cfg``
(the tree detectors: 600 px, overlap 50, chosen on val), an image is cut into windows of at
most ``--tile`` px whose neighbours share at least ``--overlap`` px (default with
``--tile`` alone: an eighth of it), run in batches of ``--batch-size`` windows at scale 1,
and the boxes of different windows merged across seams (``--merge``: ``nms`` by IoU,
``ios`` by intersection over the smaller box, ``join`` unites the pieces of a cut object;
``--merge-thr``); inside a window the detector's own NMS decides. An image no larger than a
window runs as one window at its own resolution; every image with ``--no-slicing``, or
without a tile from either place, runs whole through the config's test pipeline, as mmdet's
``DetInferencer`` runs it. GeoTIFF windows that are all nodata are skipped. Memory stays
bounded: TIFFs are read window by window, other formats are decoded once (3 bytes a
pixel, up to ``--max-pixels``), and only boxes are kept.

Writes, for every image, ``DIR/vis/<name>`` (the image with its boxes, labels and scores
above ``--score-thr``; PNG for a TIFF, at most ``--vis-max-side`` px) and
``DIR/preds/<stem>.json`` (every box: ``labels``, ``scores``, ``bboxes`` as x1, y1, x2,
y2 in the image's pixels, ``classes``, the label names, and ``sliced``, the windows
used). For a georeferenced raster (a GeoTIFF with a CRS) it also writes
``DIR/preds/<stem>.geojson``: the boxes as polygons in the raster's map coordinates and CRS.

Across processes and machines (``--launcher pytorch`` under torchrun; ``slurm`` and ``mpi``
as mmdet's tools take them; ``mmdet_plugin.apis.distributed``): the windows of a large image
and the images of a folder are shared out over the ranks, every rank's boxes gathered and
merged as one process merges them (the same batches of windows too), so the outputs are
byte for byte those of one process with as many threads as each rank (torchrun gives each
1: OMP_NUM_THREADS); each file is written by one rank, the log printed by rank 0.
IMAGE_OR_FOLDER, CHECKPOINT and --out-dir must be the same files on every machine (a shared
file system). Tested with 2 ranks on one machine over gloo on CPU only.

Bad input: arguments are checked before the model is loaded (exit 2). An image that
cannot be read (missing, truncated, empty, not an image, too large to decode whole), or on
which the detector fails (reported as the detector's failure, with its traceback), fails
alone with its name and the reason; the others are written, and the tool ends with the list
of failures (exit 1).

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

from imagery import cli
from imagery.outputs import list_images as images_of


class UsageError(ValueError):
    """A bad argument, found before the model is loaded."""


PROPOSAL_MODELS = ("FastRCNN", "RCNN")
# mmdet_plugin.apis.distributed.LAUNCHERS, named here so that --help and bad arguments need no mmdet import
LAUNCHERS = ("none", "pytorch", "slurm", "mpi")


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


def infer(config: Path, checkpoint: Path, args) -> tuple[list[Path], dict[Path, str], object]:
    """Runs the detector on ``args.inputs`` (the options of ``imagery.cli.add_arguments``
    and ``--device``, ``--batch-size``, ``--launcher``); returns (the images, {image: why
    it failed}, the ranks or None)."""
    for name, path in (("CONFIG", config), ("CHECKPOINT", checkpoint)):
        if not path.is_file():
            raise UsageError(f"{name} {path} does not exist")
    if error := cli.check_arguments(args):
        raise UsageError(error)
    if args.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    images = list_images(args.inputs)

    from mmdet_plugin.apis.distributed import init_ranks

    ranks = init_ranks(args.launcher)
    rank0 = ranks is None or ranks.rank == 0
    device = args.device
    if ranks is not None and device == "cuda":
        import torch

        device = f"cuda:{torch.cuda.current_device()}"  # the GPU init_dist gave this rank
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))  # imports mmdet_plugin through custom_imports
    from imagery.windows import SliceSettings

    try:
        default = None if args.no_slicing else SliceSettings.from_config(cfg)
    except ValueError as e:
        raise UsageError(f"CONFIG {config}: {e}") from None
    try:
        settings = cli.slicing_from(args, default)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        if proposals_on_the_fly(cfg) and rank0:
            print("this detector takes proposals: computing each image's selective-search windows "
                  "(fast mode, ~1 s per 400 x 400 image) in place of its LoadProposals", flush=True)
    except UsageError as e:
        raise UsageError(f"CONFIG {config}: {e}") from None
    import mmdet_plugin  # noqa: F401  (safe checkpoint loading; registers the plugin)
    from mmdet.apis import init_detector
    from mmengine.registry import init_default_scope

    from mmdet_plugin.apis import SlicedInferencer

    init_default_scope("mmdet")  # as mim's tools do: the pipeline's names are mmdet's
    try:  # the pipelines before the model: a config whose pipeline cannot be built is refused first
        inferencer = SlicedInferencer(None, cfg, settings, args.batch_size)
    except ValueError as e:
        raise UsageError(f"CONFIG {config}: {e}") from None
    inferencer.model = init_detector(cfg, str(checkpoint), device=device)
    meta = inferencer.model.dataset_meta or {}
    if rank0:
        print(cli.describe_slicing(settings, args.tile is not None), flush=True)
    if ranks is not None and rank0:
        print(f"{ranks.world} ranks share out the windows and images", flush=True)
    failed = cli.run_images(images, inferencer, list(meta.get("classes", ())), args.out_dir, args.score_thr,
                            args.vis_max_side, args.max_pixels, meta.get("palette"), settings, inferencer.max_per_img,
                            model=cli.model_id(config, checkpoint), share=ranks)
    if ranks is not None and rank0:
        print(f"rank 0 spent {ranks.seconds:.2f} s in gathering (waiting for the other ranks included)", flush=True)
    return images, failed, ranks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path)
    p.add_argument("checkpoint", type=Path)
    cli.add_arguments(p, out_dir=Path("work_dirs/infer"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass (1 is fastest on a CPU)")
    p.add_argument("--launcher", choices=LAUNCHERS, default="none",
                   help="share the job out over processes started by torchrun (pytorch), srun (slurm) or mpirun "
                        "(mpi), as mmdet's tools; tested: torchrun on one machine, gloo, CPU (not slurm, mpi, NCCL)")
    a = p.parse_args(argv)
    try:
        images, failed, ranks = infer(a.config, a.checkpoint, a)
    except UsageError as e:
        print(f"infer: {e}", file=sys.stderr)
        return 2
    # rank 0 reports for the job; every rank's exit status says whether an image failed
    status = (cli.report(failed, len(images) - len(failed), a.out_dir, "infer") if ranks is None or ranks.rank == 0
              else int(bool(failed)))
    if ranks is not None:
        ranks.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
