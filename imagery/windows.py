"""The windows of sliced inference, written once for ``tools/infer.py`` (mmdet) and the
ONNX runtime: the settings that choose them (``SliceSettings``, ``choose_slicing``), where
they lie (``window_grid``), and the loop that runs a detector over them and merges its
boxes (``detect_in_windows``). Plain Python and numpy.

The grid, along each axis of length L, for windows of at most ``tile`` px whose neighbours
share at least ``overlap`` px: L <= tile is one window, the whole axis; otherwise the fewest
windows that can do it, n = ceil((L - overlap) / (tile - overlap)), all of one size
ceil((L + (n - 1) * overlap) / n) <= tile, spread evenly from edge to edge. So the last
window never ends up a near-copy of the one before it (a 601 px axis is two 326 px
windows sharing 51 px, not two 600 px windows one pixel apart), and an object no larger
than ``overlap`` lies whole in some window. ``tile_voc`` cuts training tiles of a fixed
size instead (``fixed=True``: every ``tile - overlap`` px, the last one moved back to end
at the edge), so that a data set's tiles keep the size its configs train at.
"""
from __future__ import annotations

import math
import pickle
import time
import traceback
from dataclasses import asdict, dataclass

import numpy as np

from .merge import MERGE_RULES, merge_detections

# --tile alone: neighbours share an eighth of a window (75 px of 600; the tree configs'
# 50 of 600 was chosen on val).
DEFAULT_OVERLAP_FRACTION = 1 / 8
# A grid whose windows hold more than this many times the image's pixels is a mistake
# (600 px windows with overlap 599 on 10,000 px: 88 million windows); refused with its numbers.
MAX_REDUNDANCY = 16


class GridError(ValueError):
    """A grid of windows too large to run (its numbers in the message)."""


def default_overlap(tile: int) -> int:
    return int(tile * DEFAULT_OVERLAP_FRACTION)


@dataclass(frozen=True)
class SliceSettings:
    """Window size and overlap, and how boxes are merged across seams."""

    tile: int
    overlap: int = 0
    merge: str = "nms"
    merge_thr: float = 0.5

    def __post_init__(self):
        if not isinstance(self.tile, int) or self.tile <= 0:
            raise ValueError(f"tile must be a positive number of pixels, got {self.tile!r}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile) = [0, {self.tile}), got {self.overlap!r}")
        if self.merge not in MERGE_RULES:
            raise ValueError(f"merge must be one of {', '.join(MERGE_RULES)}, got {self.merge!r}")
        if not 0.0 <= self.merge_thr <= 1.0:
            raise ValueError(f"merge_thr must be in [0, 1], got {self.merge_thr!r}")

    @classmethod
    def from_config(cls, cfg) -> "SliceSettings | None":
        """A config's ``sliced_infer_cfg`` (any mapping with ``get``), or None if it has none."""
        got = cfg.get("sliced_infer_cfg")
        if got is None:
            return None
        try:
            return cls(**dict(got))
        except (TypeError, ValueError) as e:
            raise ValueError(f"sliced_infer_cfg: {e}") from None

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for the tools' logs."""
        return (f"windows of at most {self.tile} px sharing at least {self.overlap} px, boxes from different windows "
                f"merged by {self.merge} > {self.merge_thr}")

    def fits_one_window(self, width: int, height: int) -> bool:
        """Whether an image of this size runs as one window (no larger than a window)."""
        return width <= self.tile and height <= self.tile

    def record(self, windows: int, skipped: int = 0) -> dict:
        """The prediction JSON's ``sliced`` member: how an image was cut."""
        return dict(self.as_dict(), windows=windows, **({"skipped_no_data": skipped} if skipped else {}))


def choose_slicing(default: SliceSettings | None, tile: int | None = None, overlap: int | None = None,
                   merge: str | None = None, merge_thr: float | None = None,
                   no_slicing: bool = False) -> SliceSettings | None:
    """The command line's ``--tile``, ``--overlap``, ``--merge``, ``--merge-thr`` over the
    model's ``default``; None (every image whole, resized by the config) with
    ``--no-slicing``, or when neither gives a tile. ``--tile`` alone, on a model without
    default windows, gets ``default_overlap(tile)``. ValueError naming the option: a bad
    value, or an option that needs ``--tile``."""
    if no_slicing:
        given = [f for f, v in (("--tile", tile), ("--overlap", overlap), ("--merge", merge),
                                ("--merge-thr", merge_thr)) if v is not None]
        if given:
            raise ValueError(f"--no-slicing runs every image whole: it takes no {', '.join(given)}")
        return None
    if default is None and tile is None:
        given = [f for f, v in (("--overlap", overlap), ("--merge", merge), ("--merge-thr", merge_thr)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} need --tile: the model has no default windows (sliced_infer_cfg)")
        return None
    base = default.as_dict() if default else {}
    if default is None and overlap is None and tile is not None and tile > 0:
        overlap = default_overlap(tile)
    chosen = {k: v for k, v in dict(tile=tile, overlap=overlap, merge=merge, merge_thr=merge_thr).items() if v is not None}
    try:
        return SliceSettings(**{**base, **chosen})
    except ValueError as e:
        raise ValueError(f"--{str(e).replace('_', '-')}") from None


def axis_windows(length: int, tile: int, overlap: int, fixed: bool = False) -> list[tuple[int, int]]:
    """(start, size) of each window along one axis (the module docstring's rule; ``fixed``:
    ``tile_voc``'s fixed-size tiles)."""
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    if length <= tile:
        return [(0, length)]
    step = tile - overlap
    if fixed:
        starts = list(range(0, length - tile + 1, step))
        if starts[-1] + tile < length:
            starts.append(length - tile)
        return [(s, tile) for s in starts]
    n = math.ceil((length - overlap) / step)
    size = math.ceil((length + (n - 1) * overlap) / n)
    return [(round(k * (length - size) / (n - 1)), size) for k in range(n)]


def window_grid(width: int, height: int, tile: int, overlap: int, fixed: bool = False
                ) -> list[tuple[int, int, int, int]]:
    """(x0, y0, w, h) of every window, row by row. GridError with the numbers for a grid
    whose windows would hold more than ``MAX_REDUNDANCY`` times the image's pixels."""
    xs, ys = axis_windows(width, tile, overlap, fixed), axis_windows(height, tile, overlap, fixed)
    covered = sum(w for _, w in xs) * sum(h for _, h in ys)
    if covered > MAX_REDUNDANCY * width * height:
        raise GridError(f"windows of {tile} px sharing {overlap} px cut {width} x {height} px into "
                         f"{len(xs) * len(ys):,} windows holding {covered / (width * height):.0f} times its pixels "
                         f"(more than {MAX_REDUNDANCY}): lower --overlap or raise --tile")
    return [(x0, y0, w, h) for y0, h in ys for x0, w in xs]


class OneProcess:
    """The ``share`` of ``detect_in_windows`` and ``cli.run_images`` in a single process.

    A job over several processes (``tools/infer.py --launcher pytorch`` under torchrun)
    passes an object with the same members over torch.distributed
    (``mmdet_plugin.apis.distributed.Ranks``): ``rank`` of ``world``, ``all_gather(obj)``
    (every rank's ``obj``, in rank order, on every rank) and ``broadcast(obj)`` (rank 0's
    ``obj`` on every rank). Every rank must make the same calls in the same order."""

    rank, world = 0, 1

    def all_gather(self, obj) -> list:
        return [obj]

    def broadcast(self, obj):
        return obj


ONE_PROCESS = OneProcess()


class JobProgress:
    """One line per tenth of a job's windows (every image's, every rank's), with the time
    left; printed by rank 0 only (the others pass ``print_to=None``)."""

    def __init__(self, total: int, images: int = 1, print_to=print):
        self.total, self.images, self.print_to = max(total, 1), images, print_to
        self.start, self.printed = time.perf_counter(), 0

    def update(self, done: int) -> None:
        done = min(done, self.total)
        if self.print_to is None or done <= self.printed:
            return
        if done * 10 // self.total > self.printed * 10 // self.total or done == self.total:
            self.printed = done
            left = (time.perf_counter() - self.start) / done * (self.total - done)
            of = f" of {self.images} images" if self.images > 1 else ""
            self.print_to(f"    windows {done}/{self.total}{of}, {left:.0f} s left", flush=True)

    def image(self, base: int):
        """``progress(done, total)`` for ``detect_in_windows`` on an image whose windows
        follow ``base`` windows of the job."""
        return lambda done, total: self.update(base + done)


def _picklable(e: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


def detect_in_windows(image, settings: SliceSettings | None, detect, batch_size: int = 1, progress=None,
                      max_per_window: int | None = None, merge: bool = True, share=None) -> dict:
    """Runs a detector over an image in windows at the image's resolution and merges the
    boxes of different windows: the one window loop of both tools.

    Args:
        image: an ``imagery.read.Image`` (``ArrayImage`` for an array in memory).
        settings: the windows; None runs the image whole, resized by the model's rule.
        detect: ``detect(windows, native)`` -> one dict per window of ``bboxes`` (D, 4)
            x1, y1, x2, y2 in the window's pixels, ``scores`` (D,), ``labels`` (D,);
            ``windows`` is a list of (h, w, 3) uint8 RGB arrays, ``native`` False only for
            a whole image run without settings (resized by the model's rule).
        batch_size: windows per ``detect`` call.
        progress: ``progress(done, total)`` after each batch, or None.
        max_per_window: the model's cap on boxes per window (``max_per_img``), or None.
        merge: False returns every window's boxes unmerged, with ``window`` (N,) int64, the
            index of the window each came from (to score merge rules on one run).
        share: the processes that share out the windows (``OneProcess``'s members), or None
            for this process alone. The windows run in rounds of ``batch_size`` per rank:
            in a round, rank r reads and runs windows ``first + r * batch_size`` onwards, then
            every rank gathers every rank's boxes of the round (``share.all_gather``) and
            appends them in window order, so every rank merges exactly the boxes, in the
            order, that one process would (identical output when ``detect`` gives each
            window the same boxes). A rank holds the crops of its own batch only. An
            exception in one rank's windows is gathered too and raised on every rank (the
            collectives stay matched); the failing rank prints its traceback.

    An image no larger than a window runs as one window at its own resolution; a window
    with no data (``image.has_data``: all nodata or transparent) is skipped.

    Returns:
        ``bboxes`` (N, 4) float32 in the image's pixels, ``scores`` (N,) float32,
        ``labels`` (N,) int64 by descending score; ``windows`` (run), ``skipped`` (no
        data), ``capped`` (windows that returned ``max_per_window`` boxes: more may have
        been there), ``seconds`` and ``merge_seconds`` (of them, merging).
    """
    start = time.perf_counter()
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    native = settings is not None
    if settings is None or settings.fits_one_window(image.width, image.height):
        grid = [(0, 0, image.width, image.height)]
    else:
        grid = window_grid(image.width, image.height, settings.tile, settings.overlap)
    todo = [w for w in grid if image.has_data(*w)]
    # Each list starts with an empty block, so that no window (or no box) concatenates too.
    boxes, scores = [np.zeros((0, 4), np.float32)], [np.zeros(0, np.float32)]
    labels, origin = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    capped = 0
    share = share or ONE_PROCESS
    step = batch_size * share.world
    for first in range(0, len(todo), step):
        mine = range(min(first + share.rank * batch_size, len(todo)), min(first + (share.rank + 1) * batch_size,
                                                                            len(todo)))
        try:
            part = list(zip(mine, detect([image.read(*todo[i]) for i in mine], native))) if mine else []
        except Exception as e:
            if share.world == 1:
                raise
            traceback.print_exc()  # every rank must still come to the gather: it carries the failure
            part = _picklable(e)
        parts = share.all_gather(part)
        for part in parts:
            if isinstance(part, BaseException):
                raise part
        for part in parts:  # rank order, and each rank's windows in order: window order
            for k, pred in part:
                x0, y0 = todo[k][:2]
                n = len(pred["scores"])
                capped += max_per_window is not None and max_per_window > 0 and n >= max_per_window
                boxes.append(np.asarray(pred["bboxes"], np.float32).reshape(-1, 4)
                             + np.array([x0, y0, x0, y0], np.float32))
                scores.append(np.asarray(pred["scores"], np.float32))
                labels.append(np.asarray(pred["labels"], np.int64))
                origin.append(np.full(n, k, np.int64))
        if progress is not None and len(todo) > 1:
            progress(min(first + step, len(todo)), len(todo))
    out = dict(bboxes=np.concatenate(boxes), scores=np.concatenate(scores), labels=np.concatenate(labels))
    merging = time.perf_counter()
    if not merge:
        out["window"] = np.concatenate(origin)
    elif len(todo) > 1:
        merged = merge_detections(out["bboxes"], out["scores"], out["labels"], settings.merge, settings.merge_thr,
                                  windows=np.concatenate(origin))
        out.update(zip(("bboxes", "scores", "labels"), merged))
    end = time.perf_counter()
    return dict(out, windows=len(todo), skipped=len(grid) - len(todo), capped=int(capped), seconds=end - start,
                merge_seconds=end - merging)
