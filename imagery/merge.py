"""Merge the detections of overlapping windows into one set: NMS across tile seams.

An object on a seam between two windows is found twice: whole (or nearly) in one window,
cut by the edge in the other, or cut in both. ``merge_detections`` resolves such groups
greedily, highest score first, among boxes of the same label and, given each box's
window, only between boxes of different windows: inside a window the detector's own NMS
has decided already (a small crown inside a big crown's box stays), and the merge
threshold tunes the seams alone.

* ``'nms'``: a box is dropped if its IoU with a kept, higher-scoring box exceeds ``thr``
  (mmdet's NMS, applied across windows);
* ``'ios'``: the same with intersection over the smaller box's area, so a cut box lying
  inside the whole box is dropped even when its IoU is low;
* ``'join'``: matched by IoS as ``'ios'``, but the kept box grows to the union of the
  boxes it absorbs (sahi's greedy NMM), so an object cut in both windows is joined whole.

Boxes are (N, 4) float x1, y1, x2, y2. Only pairs of boxes that intersect can match, and
they are found through a grid of cells as large as the largest box, comparing each box
with the boxes of its own and the eight neighbouring cells: the cost grows with the
number of neighbours, not N squared, so a 10,000 x 10,000 px image with tens of
thousands of boxes merges in seconds.
"""
from __future__ import annotations

import numpy as np

MERGE_RULES = ("nms", "ios", "join")
_CHUNK = 4096  # boxes whose candidate pairs are generated at a time (bounds memory)


def _ranges(lo: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(lo[k], lo[k] + counts[k]) over k."""
    starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    return np.arange(counts.sum()) + starts


def overlapping_pairs(bboxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j), i < j, of boxes whose intersection has positive area, and that area.

    Returns (i, j, intersection) as int64, int64, float64 arrays of one length."""
    n = len(bboxes)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if n < 2:
        return empty
    b = bboxes.astype(np.float64)
    cell = max(float((b[:, 2:] - b[:, :2]).max()), 1.0)
    cx = np.floor(b[:, 0] / cell).astype(np.int64)
    cy = np.floor(b[:, 1] / cell).astype(np.int64)
    cx -= cx.min()
    cy -= cy.min()
    ncx = int(cx.max()) + 2  # column ncx - 1 stays empty, so cx = -1 never aliases a real cell
    key = cy * ncx + cx
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    found_i, found_j, found_inter = [], [], []
    for start in range(0, n, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, n))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                # Two intersecting boxes no larger than a cell start less than a cell apart.
                target = (cy[rows] + dy) * ncx + cx[rows] + dx
                lo = np.searchsorted(sorted_key, target, "left")
                counts = np.searchsorted(sorted_key, target, "right") - lo
                i = np.repeat(rows, counts)
                j = order[_ranges(lo, counts)]
                keep = i < j
                i, j = i[keep], j[keep]
                w = np.minimum(b[i, 2], b[j, 2]) - np.maximum(b[i, 0], b[j, 0])
                h = np.minimum(b[i, 3], b[j, 3]) - np.maximum(b[i, 1], b[j, 1])
                hit = (w > 0) & (h > 0)
                found_i.append(i[hit])
                found_j.append(j[hit])
                found_inter.append((w * h)[hit])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_inter)


def merge_detections(bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, rule: str = "nms",
                     thr: float = 0.5, windows: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy merge of overlapping same-label boxes, highest score first (module docstring).

    Args:
        bboxes: (N, 4) float x1, y1, x2, y2.
        scores: (N,) float.
        labels: (N,) int.
        rule: ``'nms'``, ``'ios'`` or ``'join'``.
        thr: a lower-scoring box matches a kept box when their IoU (``'nms'``) or
            intersection over the smaller area (``'ios'``, ``'join'``) is above ``thr``.
        windows: (N,) int, the window each box came from: only boxes of different windows
            match. None: every pair may match (one set of boxes, as plain NMS).

    Returns:
        (bboxes, scores, labels) of the kept boxes, by descending score (ties: input
        order); under ``'join'`` each kept box is the union of itself and what it absorbed.
    """
    if rule not in MERGE_RULES:
        raise ValueError(f"merge rule must be one of {MERGE_RULES}, got {rule!r}")
    if not 0.0 <= thr <= 1.0:
        raise ValueError(f"merge threshold must be in [0, 1], got {thr}")
    bboxes = np.asarray(bboxes, np.float32).reshape(-1, 4)
    scores, labels = np.asarray(scores, np.float32), np.asarray(labels, np.int64)
    n = len(bboxes)
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)

    i, j, inter = overlapping_pairs(bboxes)
    area = (bboxes[:, 2] - bboxes[:, 0]).astype(np.float64) * (bboxes[:, 3] - bboxes[:, 1])
    if rule == "nms":
        overlap = inter / (area[i] + area[j] - inter)
    else:
        overlap = inter / np.maximum(np.minimum(area[i], area[j]), 1e-12)
    match = (overlap > thr) & (labels[i] == labels[j])
    if windows is not None:
        windows = np.asarray(windows).reshape(-1)
        if len(windows) != n:
            raise ValueError(f"windows must give one window per box ({n}), got {len(windows)}")
        match &= windows[i] != windows[j]
    i, j = i[match], j[match]
    higher = np.where(rank[i] < rank[j], i, j)
    lower = np.where(rank[i] < rank[j], j, i)
    by_higher = np.argsort(higher, kind="stable")
    lower = lower[by_higher]
    starts = np.searchsorted(higher[by_higher], np.arange(n + 1))

    merged = bboxes.copy()
    suppressed = np.zeros(n, bool)
    kept = []
    for k in order:  # one pass in score order; each box's matches are a short slice
        if suppressed[k]:
            continue
        kept.append(k)
        absorbed = lower[starts[k]:starts[k + 1]]
        absorbed = absorbed[~suppressed[absorbed]]
        if rule == "join" and len(absorbed):
            group = np.concatenate([merged[[k]], bboxes[absorbed]])
            merged[k] = (*group[:, :2].min(0), *group[:, 2:].max(0))
        suppressed[absorbed] = True
    kept = np.asarray(kept, np.int64)
    return merged[kept], scores[kept], labels[kept]
