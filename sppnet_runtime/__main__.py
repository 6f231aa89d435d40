"""python -m sppnet_runtime MODEL.onnx IMAGE_OR_FOLDER [--out-dir DIR] [--score-thr 0.3] [--threads N] [--workers N]
    [--tile PX --overlap PX --merge nms|ios|join --merge-thr T | --no-slicing] [--max-pixels N]

Runs a detector exported by ``tools/export_onnx.py CONFIG CHECKPOINT --whole`` on an image
or on every image of a folder, with ONNX Runtime, numpy and Pillow only, and writes what
``tools/infer.py`` writes, through the same code (``imagery.cli``): ``DIR/preds/<stem>.json``,
``DIR/vis/<name>`` and, for a GeoTIFF with a CRS, ``DIR/preds/<stem>.geojson``. Images are
read as mmdet reads them (``imagery.read``); large ones are cut into windows at their own
resolution and the boxes of different windows merged, with the windows the config chose
(stored in the model file) or ``--tile`` etc. An image that cannot be read, or on which the
model fails, is named with the reason; the others are written, and the exit status is 1.
Exit 2: a bad argument or model file. ``--workers N`` runs a large image's windows in N
processes of ``--threads`` (default 1) threads each, one ONNX Runtime session per process
(``workers.py``); the output is that of one process with the same ``--threads``.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from imagery import cli
from imagery.outputs import list_images
from imagery.windows import detect_in_windows

from .detector import ModelFileError, OnnxDetector
from .workers import WindowPool


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sppnet_runtime", description=__doc__.split("\n")[3])
    p.add_argument("model", type=Path, help="the .onnx file of tools/export_onnx.py --whole")
    cli.add_arguments(p, out_dir=Path("onnx_out"))
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads per process (default: all cores; 1 with --workers)")
    p.add_argument("--workers", type=int, default=1, help="processes that share out a large image's windows")
    args = p.parse_args(argv)
    if error := cli.check_arguments(args):
        p.error(error)
    for name in ("threads", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    try:
        images = list_images(args.inputs)
    except ValueError as err:
        p.error(str(err))
    try:
        detector = OnnxDetector(args.model, threads=args.threads)
    except ModelFileError as err:
        print(f"sppnet_runtime: {err}", file=sys.stderr)
        return 2
    try:
        slicing = cli.slicing_from(args, detector.slicing)
    except ValueError as err:
        p.error(str(err))
    print(cli.describe_slicing(slicing, args.tile is not None), flush=True)
    with contextlib.ExitStack() as stack:
        detect = detector.detect
        if args.workers > 1:
            detect = stack.enter_context(WindowPool(args.model, args.workers, args.threads or 1)).detect
            print(f"{args.workers} worker processes of {args.threads or 1} thread(s) each", flush=True)

        def detect_image(image, progress):  # two windows per worker a batch: none waits long
            return detect_in_windows(image, slicing, detect, 2 * args.workers, progress, detector.max_per_img)

        failed = cli.run_images(images, detect_image, detector.classes, args.out_dir, args.score_thr,
                                args.vis_max_side, args.max_pixels, detector.palette, slicing, detector.max_per_img,
                                prog="sppnet_runtime", model=cli.model_id(args.model))
    return cli.report(failed, len(images) - len(failed), args.out_dir, "sppnet_runtime")


if __name__ == "__main__":
    sys.exit(main())
