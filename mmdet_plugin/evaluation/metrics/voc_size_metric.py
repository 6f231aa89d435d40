"""``VOCSizeMetric``: VOC AP per object-size bin, the bins counted in feature-map cells.

mmdet 3.3's ``VOCMetric`` accepts ``scale_ranges`` but cannot report them: ``eval_map``
then returns one AP per range and ``VOCMetric.compute_metrics`` calls ``round()`` on that
list (TypeError). This metric calls ``eval_map`` as ``VOCMetric`` does (VOC's legacy
+1-pixel areas, ``eval_mode``), once per IoU threshold with every bin at once, and reports
each bin's AP and its number of ground-truth boxes.

A box's size is the square root of its area in the image's pixels (mmdet's
``scale_ranges`` rule), and the bins are edges in cells of ``stride`` pixels: with the
default ``stride=16, cell_edges=(2, 4, 8)`` the bins are < 2 cells (< 32 px), 2-4, 4-8 and
>= 8 cells (>= 128 px) on a side. A ground-truth box outside a bin is ignored in it, and
a detection outside it counts neither as right nor as wrong (mmdet's area ranges). Keys:
``AP40_lt2cells``, ``AP40_2to4cells``, ``AP40_4to8cells``, ``AP40_ge8cells`` (one group per
IoU threshold) and ``gts_<bin>`` (the count, as a float). A bin without ground truth has AP 0 and ``gts`` 0 (as
``eval_map`` reports it): read the two together.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
from mmdet.evaluation import VOCMetric
from mmdet.evaluation.functional import eval_map
from mmdet.registry import METRICS


def size_bins(stride: float, cell_edges: Sequence[float]) -> list[tuple[str, float, float]]:
    """[(name, low px, high px)] of the bins between ``cell_edges`` cells of ``stride`` px."""
    edges = [0.0, *[float(e) for e in cell_edges], float("inf")]
    names = ([f"lt{edges[1]:g}cells"] + [f"{lo:g}to{hi:g}cells" for lo, hi in zip(edges[1:-2], edges[2:-1])]
             + [f"ge{edges[-2]:g}cells"])
    return [(name, lo * stride, hi * stride) for name, lo, hi in zip(names, edges[:-1], edges[1:])]


@METRICS.register_module()
class VOCSizeMetric(VOCMetric):
    """VOC AP per object-size bin (module docstring).

    Args:
        stride: pixels per feature-map cell (16: SPP-net's and R-CNN's C4 map).
        cell_edges: bin edges in cells, increasing.
        iou_thrs, eval_mode, prefix and the rest: as ``VOCMetric`` (metric 'mAP' only).
    """

    def __init__(self, stride: float = 16, cell_edges: Sequence[float] = (2, 4, 8), **kwargs):
        if kwargs.get("scale_ranges") is not None:
            raise ValueError("VOCSizeMetric sets the size ranges from stride and cell_edges; drop scale_ranges")
        if kwargs.get("metric", "mAP") != "mAP":
            raise ValueError(f"VOCSizeMetric reports AP ('mAP'), got metric={kwargs['metric']!r}")
        if list(cell_edges) != sorted(cell_edges) or not all(e > 0 for e in cell_edges):
            raise ValueError(f"cell_edges must be positive and increasing, got {cell_edges!r}")
        super().__init__(**kwargs)
        self.bins = size_bins(stride, cell_edges)

    def compute_metrics(self, results: list) -> dict:
        gts, preds = zip(*results)
        ranges = [(lo, hi if np.isfinite(hi) else 1e8) for _, lo, hi in self.bins]
        out = OrderedDict()
        for iou_thr in self.iou_thrs:
            per_bin, per_class = eval_map(preds, gts, scale_ranges=ranges, iou_thr=iou_thr,
                                          dataset=self.dataset_meta["classes"], logger="silent",
                                          eval_mode=self.eval_mode, use_legacy_coordinate=True)
            gts_per_bin = np.sum([np.asarray(c["num_gts"]).reshape(-1) for c in per_class], axis=0)
            for (name, _, _), ap, n in zip(self.bins, per_bin, gts_per_bin):
                out[f"AP{int(round(iou_thr * 100)):02d}_{name}"] = float(ap)
                out[f"gts_{name}"] = float(n)  # a float: MMEngine's test dump writes ints as null
        return out
