"""``torch.ops.spp_deploy.batched_nms``: mmcv's ``batched_nms`` as one PyTorch op that
``torch.export`` can trace and ``torch.onnx`` translates to ONNX's ``NonMaxSuppression``.

mmdet's post-processing filters boxes with boolean masks and calls mmcv's compiled NMS
from Python; neither traces. This op packs one such step (score filter, class-aware NMS
by mmcv's offset trick, the first ``max_num`` kept) behind a fixed signature whose output
length is data-dependent (``torch.library``'s ``new_dynamic_size``).

Semantics (eager: mmcv itself, so eager equals mmdet by construction):
    boxes (N, 4) float32 x1, y1, x2, y2; scores (N,) float32; idxs (N,) int64 class ids
    -> keep (M,) int64: indices into the inputs of the boxes with ``score > score_threshold``
    (mmdet's filter before NMS) and, where ``nms_score_threshold > 0``, ``score >
    nms_score_threshold`` (mmcv's nms's own ``score_threshold``) that survive NMS within
    their class (IoU > ``iou_threshold`` suppresses, areas without +1), in descending
    score order, at most ``max_num``. Class-agnostic NMS: one idx for all boxes.

ONNX (``translation``): the same offset trick as mmcv (every box shifted by ``idx * (m + 1)``,
m the largest coordinate of the boxes above ``score_threshold``: mmcv applies its own
threshold after shifting), then one ``NonMaxSuppression`` over a single class with the
larger of the two thresholds: ONNX Runtime selects
in descending score order, compares IoU with ``>`` and computes areas and intersections
with the same float32 operations as mmcv's CPU kernel (``tests/test_deploy.py`` checks the
indices against mmcv on random and tied boxes).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


@torch.library.custom_op("spp_deploy::batched_nms", mutates_args=())
def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, score_threshold: float,
                max_num: int, nms_score_threshold: float = 0.0) -> Tensor:
    """See the module docstring."""
    from mmcv.ops import batched_nms as mmcv_batched_nms

    valid = (scores > score_threshold).nonzero().view(-1)
    if valid.numel() == 0:
        return valid
    _, keep = mmcv_batched_nms(boxes[valid], scores[valid], idxs[valid],
                               dict(type="nms", iou_threshold=iou_threshold, score_threshold=nms_score_threshold))
    return valid[keep[:max_num]]


@batched_nms.register_fake
def _(boxes, scores, idxs, iou_threshold, score_threshold, max_num, nms_score_threshold=0.0):
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.int64)


def translation(boxes, scores, idxs, iou_threshold: float, score_threshold: float, max_num: int,
                nms_score_threshold: float = 0.0):
    """The op in standard ONNX (opset 18), for ``custom_translation_table``."""
    from onnxscript import ir
    from onnxscript import opset18 as op

    def const(values, dtype):
        return op.Constant(value=ir.tensor(np.asarray(values, dtype=dtype)))

    valid = op.Greater(scores, const(score_threshold, np.float32))  # (N,)
    # mmcv filters by its own threshold (if > 0) after the shift: one filter, the larger.
    selecting = max(score_threshold, nms_score_threshold) if nms_score_threshold > 0 else score_threshold
    # mmcv: boxes.max() over the boxes left after the score filter; none left: nothing is
    # selected, 0 keeps the arithmetic finite.
    masked = op.Where(op.Unsqueeze(valid, const([1], np.int64)), boxes, const(-np.inf, np.float32))
    top = op.ReduceMax(op.Concat(op.Reshape(masked, const([-1], np.int64)), const([-np.inf], np.float32),
                                 axis=0), keepdims=0)
    top = op.Where(op.IsInf(top), const(0.0, np.float32), top)
    offsets = op.Mul(op.Cast(idxs, to=ir.DataType.FLOAT), op.Add(top, const(1.0, np.float32)))
    shifted = op.Add(boxes, op.Unsqueeze(offsets, const([1], np.int64)))
    selected = op.NonMaxSuppression(
        op.Unsqueeze(shifted, const([0], np.int64)),  # (1, N, 4)
        op.Unsqueeze(scores, const([0, 1], np.int64)),  # (1, 1, N)
        const([max_num], np.int64), const([iou_threshold], np.float32), const([selecting], np.float32))
    return op.Reshape(op.Slice(selected, const([2], np.int64), const([3], np.int64), const([1], np.int64)),
                      const([-1], np.int64))


def translation_table() -> dict:
    return {torch.ops.spp_deploy.batched_nms.default: translation}
