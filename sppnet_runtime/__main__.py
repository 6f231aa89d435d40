"""python -m sppnet_runtime MODEL.onnx IMAGE_OR_FOLDER [--out-dir DIR] [--score-thr 0.3] [--threads N]

Runs a detector exported by ``tools/export_onnx.py CONFIG CHECKPOINT --whole`` on an image
or on every image of a folder, with ONNX Runtime, numpy and Pillow only, and writes what
``tools/infer.py`` writes: ``DIR/preds/<stem>.json`` (every box the model outputs: labels,
scores, bboxes in the image's pixels, classes, image) and ``DIR/vis/<name>`` (the image with
the boxes above ``--score-thr``, PNG for a TIFF, at most ``--vis-max-side`` px). An image
that cannot be read is named and skipped; the others are written, and the exit status
is 1. Exit 2: a bad argument or model file.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .detector import ImageReadError, ModelFileError, OnnxDetector, load_image
from .outputs import draw_record, list_images, prediction_record, shrink, vis_name, write_json


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sppnet_runtime", description=__doc__.split("\n")[2])
    p.add_argument("model", type=Path, help="the .onnx file of tools/export_onnx.py --whole")
    p.add_argument("inputs", type=Path, metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out-dir", type=Path, default=Path("onnx_out"))
    p.add_argument("--score-thr", type=float, default=0.3, help="boxes drawn above this score (all are in the JSON)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--vis-max-side", type=int, default=4096, help="longest side of the pictures drawn")
    args = p.parse_args(argv)
    if not 0.0 <= args.score_thr <= 1.0:
        p.error(f"--score-thr must be in [0, 1], got {args.score_thr}")
    try:
        images = list_images(args.inputs)
    except ValueError as err:
        p.error(str(err))
    try:
        detector = OnnxDetector(args.model, threads=args.threads)
    except ModelFileError as err:
        print(f"sppnet_runtime: {err}", file=sys.stderr)
        return 2
    failed = []
    for i, path in enumerate(images, 1):
        try:
            rgb = load_image(path)
        except ImageReadError as err:
            print(f"sppnet_runtime: {err}", file=sys.stderr)
            failed.append(path)
            continue
        start = time.perf_counter()
        record = prediction_record(detector(rgb), detector.classes, path)
        seconds = time.perf_counter() - start
        write_json(record, args.out_dir / "preds" / f"{path.stem}.json")
        rgb, scale = shrink(rgb, args.vis_max_side)
        draw_record(rgb, record, args.out_dir / "vis" / vis_name(path), args.score_thr, detector.palette, scale)
        above = sum(s > args.score_thr for s in record["scores"])
        print(f"[{i}/{len(images)}] {path}: {len(record['scores'])} boxes ({above} above {args.score_thr}) "
              f"in {seconds:.2f} s")
    print(f"wrote {args.out_dir / 'preds'} and {args.out_dir / 'vis'}")
    if failed:
        print(f"sppnet_runtime: {len(failed)} image(s) failed: " + ", ".join(map(str, failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
