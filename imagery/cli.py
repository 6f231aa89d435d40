"""What ``tools/infer.py`` and ``python -m sppnet_runtime`` share on the command line: the
options for images, windows and outputs (``add_arguments``, ``slicing_from``) and the
loop over IMAGE_OR_FOLDER (``run_images``), so that both tools read, cut, merge, write and
fail alike. The tools differ only in the detector they hand the loop.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from .merge import MERGE_RULES
from .outputs import draw_boxes, prediction_record, vis_name, write_geojson, write_json
from .read import DEFAULT_MAX_PIXELS, ImageReadError, open_image, peek_size
from .windows import (DEFAULT_OVERLAP_FRACTION, ONE_PROCESS, GridError, JobProgress, SliceSettings, choose_slicing,
                      window_grid)


def add_arguments(p: argparse.ArgumentParser, out_dir: Path) -> None:
    """IMAGE_OR_FOLDER's options: outputs, decoding limit and sliced inference."""
    p.add_argument("inputs", type=Path, metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out-dir", type=Path, default=out_dir, help=f"where preds/ and vis/ go (default {out_dir})")
    p.add_argument("--score-thr", type=float, default=0.3, help="boxes drawn above this score (all are in the JSON)")
    p.add_argument("--vis-max-side", type=int, default=4096, help="longest side of the pictures drawn")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="largest image decoded whole, in pixels (default: Pillow's decompression-bomb limit; "
                        "TIFFs read window by window have none)")
    g = p.add_argument_group("sliced inference (default: the model's windows, sliced_infer_cfg, if it has them)")
    g.add_argument("--tile", type=int, help="largest window in pixels; windows run at the image's resolution")
    g.add_argument("--overlap", type=int, help="pixels neighbouring windows share at least (< --tile; with --tile "
                                               f"alone: the model's, else --tile / {round(1 / DEFAULT_OVERLAP_FRACTION)})")
    g.add_argument("--merge", choices=MERGE_RULES, help="how boxes of different windows are merged: nms by IoU, ios "
                                                        "by intersection over the smaller box, join unites them")
    g.add_argument("--merge-thr", type=float, help="IoU (nms) or intersection over the smaller box (ios, join)")
    g.add_argument("--no-slicing", action="store_true", help="run every image whole, resized by the config's rule")


def check_arguments(args) -> str | None:
    """The first bad value among ``add_arguments``' options, as a message naming it."""
    if not 0.0 <= args.score_thr <= 1.0:
        return f"--score-thr must be in [0, 1], got {args.score_thr}"
    if args.vis_max_side <= 0:
        return f"--vis-max-side must be positive, got {args.vis_max_side}"
    if args.max_pixels <= 0:
        return f"--max-pixels must be positive, got {args.max_pixels}"
    return None


def slicing_from(args, default: SliceSettings | None) -> SliceSettings | None:
    """The windows to cut: the options over the model's ``default`` (ValueError naming the option)."""
    return choose_slicing(default, args.tile, args.overlap, args.merge, args.merge_thr, args.no_slicing)


def describe_slicing(settings: SliceSettings | None, from_command_line: bool) -> str:
    if settings is None:
        return "every image whole, resized by the model's rule"
    return (f"sliced inference: {settings.describe()} (from {'the command line' if from_command_line else 'the model'}); "
            "an image no larger than a window runs as one window at its own resolution")


class ImageFailed(Exception):
    """One image's failure, as the summary lists it."""


def run_images(images: list[Path], detect_image, classes, out_dir: Path, score_thr: float = 0.3,
               vis_max_side: int = 4096, max_pixels: int | None = DEFAULT_MAX_PIXELS, palette=None,
               settings: SliceSettings | None = None, max_per_window: int | None = None,
               prog: str = "infer", model: str = "", share=None) -> dict[Path, str]:
    """Runs ``detect_image(image, progress)`` (an ``imagery.read.Image`` in, the dict of
    ``windows.detect_in_windows`` out) on every image and writes its outputs. An image
    that cannot be read is reported with its file and reason; an error of the detector is
    reported as one, with its traceback; either way the other images are still written.
    One progress line for the whole job: windows done of all the images' windows.

    A killed run resumes: the JSON is written last, atomically, with a ``run`` member
    naming ``model`` and every setting that shapes the outputs; an image whose JSON in
    ``out_dir`` names the same image and run is done, and is skipped with a line saying so.

    ``share`` (``windows.OneProcess``'s members; None: this process alone): the job's
    processes (ranks), each running this same call. Rank 0 decides which images are left
    and how many windows each has (from the file's header), and every rank takes its list.
    An image of several windows is run by every rank together, ``detect_image(image,
    progress, share=share)`` sharing out its windows (``detect_in_windows``), and written
    by rank 0; the other images are dealt out, one per rank in turn, each run and written
    by its rank alone. Rank 0 prints the log (the others' lines gathered after each turn);
    the other ranks print only errors. Returns {image: why it failed}, the same on every rank."""
    share = share or ONE_PROCESS
    say = print if share.rank == 0 else None
    run = dict(model=model, slicing=settings.as_dict() if settings else None, score_thr=score_thr,
               vis_max_side=vis_max_side)
    plan = share.broadcast(_plan(images, out_dir, run, settings, say) if share.rank == 0 else None)
    job = JobProgress(sum(n for _, _, n in plan), len(plan), say)
    write = dict(classes=classes, out_dir=out_dir, score_thr=score_thr, vis_max_side=vis_max_side,
                 max_pixels=max_pixels, palette=palette, settings=settings, max_per_window=max_per_window, prog=prog,
                 run=run)
    failed, done = {}, 0
    for shared, turn in _turns(plan, share.world):
        progress = job.image(done) if share.rank == 0 else None
        if shared:  # every rank runs its share of the image's windows; rank 0 writes
            (k, path, _), = turn
            why = _image(k, path, len(images), detect_image, progress, None, share, **write)
            if why is not None:
                failed[path] = why
        else:  # one image per rank, each run and written by its rank; rank 0 prints the others' lines
            mine = turn[share.rank] if share.rank < len(turn) else None
            lines = [] if share.rank else None
            got = _image(*mine[:2], len(images), detect_image, progress, lines, ONE_PROCESS, **write) if mine else None
            for rank, (their_lines, why) in enumerate(share.all_gather((lines, got))):
                for line in (their_lines or ()) if share.rank == 0 else ():
                    print(line, flush=True)
                if why is not None:
                    failed[turn[rank][1]] = why
        done += sum(n for _, _, n in turn)
        job.update(done)
    return failed


def _turns(plan: list[tuple], world: int):
    """(shared, entries) in plan order: an image of several windows alone when there are
    several ranks (they share its windows), the other images up to one per rank."""
    turn = []
    for entry in plan:
        if world > 1 and entry[2] > 1:
            if turn:
                yield False, turn
                turn = []
            yield True, [entry]
            continue
        turn.append(entry)
        if len(turn) == world:
            yield False, turn
            turn = []
    if turn:
        yield False, turn


def _plan(images: list[Path], out_dir: Path, run: dict, settings: SliceSettings | None, say) -> list[tuple]:
    """(number, image, windows) of each image left to run, saying which are done already."""
    plan = []
    for k, path in enumerate(images, 1):
        if _done_before(out_dir / "preds" / f"{path.stem}.json", path, run):
            say(f"[{k}/{len(images)}] {path}\n    done by an earlier run into {out_dir} with the same model and "
                "settings: skipped", flush=True)
            continue
        size = peek_size(path) if settings is not None else None
        windows = 1
        if size is not None and not settings.fits_one_window(*size):
            try:  # an EXIF rotation swaps the axes, not the count
                windows = len(window_grid(*size, settings.tile, settings.overlap))
            except GridError:
                pass  # the image fails when it runs, with this message
        plan.append((k, path, windows))
    return plan


def _image(k: int, path: Path, count: int, detect_image, progress, lines, share, *, classes, out_dir: Path,
           score_thr, vis_max_side, max_pixels, palette, settings, max_per_window, prog, run) -> str | None:
    """Runs and writes one image (``run_images``); returns why it failed, or None.
    ``progress``: the job's, on rank 0 (else None). ``lines``: a list to keep the log in (a
    rank other than 0 running an image alone), else None (rank 0 prints; another rank
    sharing rank 0's image says nothing). ``share``: the ranks that share the image's windows."""
    writes = share.rank == 0

    def say(line):
        if lines is not None:
            lines.append(line)
        elif writes:
            print(line, flush=True)

    say(f"[{k}/{count}] {path}")
    try:
        with open_image(path, max_pixels) as image:
            for note in image.notes:
                say(f"    note: {note}")
            if settings is not None and not settings.fits_one_window(image.width, image.height):
                say(f"    {image.size}")
            try:
                pred = detect_image(image, progress) if share.world == 1 else detect_image(image, progress, share=share)
            except (ImageReadError, GridError):
                raise
            except Exception as e:  # the model, not the file: say so, with where it broke
                if share.world == 1:  # else the rank where it broke printed it
                    traceback.print_exc()
                raise ImageFailed(f"the detector failed on it ({type(e).__name__}: {e})") from None
            record = prediction_record(pred, classes, path)
            if pred["windows"] > 1 or pred.get("skipped"):
                record["sliced"] = settings.record(pred["windows"], pred.get("skipped", 0))
            geo = None
            if writes:
                draw_boxes(image, record, out_dir / "vis" / vis_name(path), score_thr, palette, vis_max_side)
                geo = write_geojson(record, image, out_dir / "preds" / f"{path.stem}.geojson")
                write_json(dict(record, run=run), out_dir / "preds" / f"{path.stem}.json")  # last: the image is done
    except ImageReadError as e:
        if writes:
            print(f"{prog}: {e}", file=sys.stderr, flush=True)
        return str(e).removeprefix(f"{path}: ")
    except (ImageFailed, GridError) as e:
        if writes:
            print(f"{prog}: {path}: {e}", file=sys.stderr, flush=True)
        return str(e)
    above = sum(s > score_thr for s in record["scores"])
    how = f" in {pred['windows']} windows" if pred["windows"] > 1 else ""
    skipped = f" ({pred['skipped']} windows without data skipped)" if pred.get("skipped") else ""
    merged = f" (merging {pred['merge_seconds']:.2f} s)" if pred["windows"] > 1 else ""
    say(f"    {len(record['scores'])} boxes ({above} above {score_thr}) in {pred['seconds']:.2f} s{how}{skipped}"
        + merged + (f"; map coordinates ({image.crs}) in {geo}" if geo else ""))
    if pred.get("capped"):
        say(f"    warning: {pred['capped']} of {pred['windows']} window(s) returned the model's cap of "
            f"{max_per_window} boxes (max_per_img): more objects may be there; use smaller windows "
            "(--tile) or raise max_per_img (test_cfg.rcnn) and export again")
    return None


def model_id(*files: Path) -> str:
    """What names a model for ``run_images``' resume: each file's path, size and time of
    change (a checkpoint trained again at the same path is another model)."""
    parts = []
    for f in files:
        st = Path(f).stat()
        parts.append(f"{Path(f).resolve()}@{st.st_size}:{st.st_mtime_ns}")
    return " ".join(parts)


def _done_before(json_path: Path, image: Path, run: dict) -> bool:
    """Whether ``json_path`` holds a finished result of ``image`` by the same ``run``."""
    try:
        record = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return False
    return record.get("image") == str(image) and record.get("run") == run


def report(failed: dict[Path, str], written: int, out_dir: Path, prog: str) -> int:
    """The closing lines; the exit status: 0, or 1 if any image failed."""
    print(f"{written} image(s): pictures with boxes in {out_dir / 'vis'}, predictions as JSON in {out_dir / 'preds'}")
    if failed:
        print(f"{prog}: {len(failed)} image(s) failed:\n" + "\n".join(f"  {p}: {why}" for p, why in failed.items()),
              file=sys.stderr)
        return 1
    return 0
