"""python -m sppnet_runtime MODEL.onnx IMAGE_OR_FOLDER [--out-dir DIR] [--score-thr 0.3] [--threads N]
    [--tile PX --overlap PX --merge nms|ios|join --merge-thr T | --no-slicing] [--max-pixels N]

Runs a detector exported by ``tools/export_onnx.py CONFIG CHECKPOINT --whole`` on an image
or on every image of a folder, with ONNX Runtime, numpy and Pillow only, and writes what
``tools/infer.py`` writes, through the same code (``imagery.cli``): ``DIR/preds/<stem>.json``,
``DIR/vis/<name>`` and, for a GeoTIFF with a CRS, ``DIR/preds/<stem>.geojson``. Images are
read as mmdet reads them (``imagery.read``); large ones are cut into windows at their own
resolution and the boxes of different windows merged, with the windows the config chose
(stored in the model file) or ``--tile`` etc. An image that cannot be read, or on which the
model fails, is named with the reason; the others are written, and the exit status is 1.
Exit 2: a bad argument or model file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagery import cli
from imagery.outputs import list_images

from .detector import ModelFileError, OnnxDetector


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sppnet_runtime", description=__doc__.split("\n")[3])
    p.add_argument("model", type=Path, help="the .onnx file of tools/export_onnx.py --whole")
    cli.add_arguments(p, out_dir=Path("onnx_out"))
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    args = p.parse_args(argv)
    if error := cli.check_arguments(args):
        p.error(error)
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
    failed = cli.run_images(images, lambda image, progress: detector.detect_sliced(image, slicing, progress),
                            detector.classes, args.out_dir, args.score_thr, args.vis_max_side, args.max_pixels,
                            detector.palette, slicing, detector.max_per_img, prog="sppnet_runtime",
                            model=cli.model_id(args.model))
    return cli.report(failed, len(images) - len(failed), args.out_dir, "sppnet_runtime")


if __name__ == "__main__":
    sys.exit(main())
