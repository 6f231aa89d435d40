"""python -m sppnet_runtime MODEL.onnx IMAGE_OR_FOLDER [--out-dir DIR] [--score-thr 0.3] [--threads N]
    [--tile PX --overlap PX --merge nms|ios|join --merge-thr T | --no-slicing]

Runs a detector exported by ``tools/export_onnx.py CONFIG CHECKPOINT --whole`` on an image
or on every image of a folder, with ONNX Runtime, numpy and Pillow only, and writes what
``tools/infer.py`` writes: ``DIR/preds/<stem>.json`` (every box the model outputs: labels,
scores, bboxes in the image's pixels, classes, image) and ``DIR/vis/<name>`` (the image with
the boxes above ``--score-thr``, PNG for a TIFF, at most ``--vis-max-side`` px). An image
that cannot be read is named and skipped; the others are written, and the exit status
is 1. Exit 2: a bad argument or model file.

Large images are cut into windows at their own resolution and the windows' boxes merged,
as ``tools/infer.py`` does: by default with the windows the config chose
(``sliced_infer_cfg``, stored in the model file: the tree detectors' 600 px windows,
overlap 50, NMS 0.5), or with ``--tile`` etc.; an image no larger than one window, every
image with ``--no-slicing``, and every image of a model without default windows run whole,
resized by the config's rule. The JSON's ``sliced`` member says how an image was cut.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .detector import ImageReadError, ModelFileError, OnnxDetector, load_image
from .outputs import draw_record, list_images, prediction_record, shrink, vis_name, write_json
from .merge_detections import MERGE_RULES
from .windows import check_tile_fits, choose_slicing


class WindowProgress:
    """Prints a line per tenth of an image's windows, with the time left."""

    def __init__(self):
        self.start, self.shown = time.perf_counter(), 0

    def __call__(self, done: int, total: int) -> None:
        if done * 10 // total > self.shown or done == total:
            self.shown = done * 10 // total
            left = (time.perf_counter() - self.start) / done * (total - done)
            print(f"    windows {done}/{total}, {left:.0f} s left", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sppnet_runtime", description=__doc__.split("\n")[2])
    p.add_argument("model", type=Path, help="the .onnx file of tools/export_onnx.py --whole")
    p.add_argument("inputs", type=Path, metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out-dir", type=Path, default=Path("onnx_out"))
    p.add_argument("--score-thr", type=float, default=0.3, help="boxes drawn above this score (all are in the JSON)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--vis-max-side", type=int, default=4096, help="longest side of the pictures drawn")
    g = p.add_argument_group("sliced inference (default: the windows stored in the model, if any)")
    g.add_argument("--tile", type=int, help="window size in pixels; windows run at the image's resolution")
    g.add_argument("--overlap", type=int, help="pixels shared by neighbouring windows (< --tile)")
    g.add_argument("--merge", choices=MERGE_RULES, help="how boxes are merged across seams")
    g.add_argument("--merge-thr", type=float, help="IoU (nms) or intersection over the smaller box (ios, join)")
    g.add_argument("--no-slicing", action="store_true", help="run every image whole, resized by the config's rule")
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
    try:
        slicing = choose_slicing(detector.slicing, args.tile, args.overlap, args.merge, args.merge_thr,
                                 args.no_slicing)
    except ValueError as err:
        p.error(str(err))
    if slicing:
        print(f"sliced inference: {slicing.describe()} (from {'the command line' if args.tile else 'the model'}); "
              "images no larger than a window run whole")
    failed = []
    for i, path in enumerate(images, 1):
        print(f"[{i}/{len(images)}] {path}", flush=True)
        try:
            rgb = load_image(path)
            check_tile_fits(args.tile, rgb.shape[1], rgb.shape[0])
        except ImageReadError as err:
            print(f"sppnet_runtime: {err}", file=sys.stderr)
            failed.append(path)
            continue
        except ValueError as err:
            print(f"sppnet_runtime: {path}: {err}", file=sys.stderr)
            failed.append(path)
            continue
        start = time.perf_counter()
        pred = detector.detect_sliced(rgb, slicing, WindowProgress())
        seconds = time.perf_counter() - start
        record = prediction_record(pred, detector.classes, path)
        if pred["windows"] > 1:
            record["sliced"] = slicing.record(pred["windows"])
        write_json(record, args.out_dir / "preds" / f"{path.stem}.json")
        rgb, scale = shrink(rgb, args.vis_max_side)
        draw_record(rgb, record, args.out_dir / "vis" / vis_name(path), args.score_thr, detector.palette, scale)
        above = sum(s > args.score_thr for s in record["scores"])
        how = f" in {pred['windows']} windows" if pred["windows"] > 1 else ""
        print(f"    {len(record['scores'])} boxes ({above} above {args.score_thr}) in {seconds:.2f} s{how}", flush=True)
    print(f"wrote {args.out_dir / 'preds'} and {args.out_dir / 'vis'}")
    if failed:
        print(f"sppnet_runtime: {len(failed)} image(s) failed: " + ", ".join(map(str, failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
