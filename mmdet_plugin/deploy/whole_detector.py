"""A trained two-stage SPP detector as one ONNX graph: image in, boxes, scores and labels out.

``WholeDetector`` re-states mmdet's inference for ``FasterRCNN`` + ``RPNHead`` +
``StandardRoIHead`` (``SPPRoIExtractor``, ``SPPBBoxHead``) in traceable PyTorch, step for
step and in mmdet's float32 operation order, so that ``torch.export`` captures all of it
and ``torch.onnx`` writes standard ONNX (opset 18) with no custom-op library:

1. ``DetDataPreprocessor``: channel order, ``(x - mean) / std``, zero padding of the
   bottom and right to ``pad_size_divisor``.
2. The backbone and neck (mmdet's own modules, traced as they are).
3. ``RPNHead.predict_by_feat`` (one image): per level the sigmoid scores and deltas in
   (H, W, A) order, the top ``nms_pre`` (``TopK``), the anchors of mmdet's
   ``AnchorGenerator``, ``delta2bbox`` clipped to the image, the ``min_bbox_size`` filter,
   NMS per level (``spp_deploy::batched_nms`` -> ``NonMaxSuppression``), ``max_per_img``.
   Both stages' NMS take every setting of the config's ``nms`` that changes the result
   (``nms_settings``; ``check_exportable`` refuses the others by name).
4. ``StandardRoIHead.predict_bbox``: the SPP extractor (``spp_triton.export.onnx_export``'s
   translation: the cells exact, SPP-Align within float32 rounding) and the fc head,
   softmax, ``delta2bbox`` per class clipped to the image, division by ``scale_factor``
   (so boxes come back in the original image's pixels), ``multiclass_nms`` (score
   threshold, class-aware or class-agnostic NMS, ``max_per_img``).

What stays outside the graph, in ``sppnet_runtime`` (numpy + Pillow): decoding the file,
the test pipeline's ``Resize`` (its rule travels in the model's metadata) and the zero
padding to ``pad_size_divisor``; the graph fills the padding with ``pad_value`` after
normalising, as mmdet does. Padded sizes keep the traced shapes simple (multiples of the
divisor), which is what makes the export of EfficientNet-Lite take seconds, not minutes.

Graph inputs and outputs:
    image         (Hp, Wp, 3) uint8, RGB, resized by the test pipeline's rule, then zero-padded
                  at the bottom and right to multiples of ``pad_size_divisor`` (dynamic)
    image_size    (2,) int64: (h, w) of the resized image before padding
    scale_factor  (2,) float64: (new_w / w, new_h / h) of that resize (mmdet's ``scale_factor``)
    -> boxes (D, 4) float32 x1, y1, x2, y2 in the original image's pixels,
       scores (D,) float32, labels (D,) int64; D <= rcnn ``max_per_img`` (or nms ``max_num``,
       whichever is smaller; the metadata's ``max_per_img``), descending score.
"""
from __future__ import annotations

import contextlib
import json
import numbers
import types
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sppnet_runtime.detector import FORMAT as METADATA_FORMAT  # one name for the format, the runtime's
from sppnet_runtime.detector import pad_to
from imagery.windows import SliceSettings

from .nms_op import batched_nms



class ExportError(ValueError):
    """A part of the detector or its config that the whole-detector export does not handle."""


def _type_name(obj) -> str:
    return type(obj).__name__


def check_exportable(model: nn.Module, cfg) -> None:
    """Raises ``ExportError`` naming the first part that cannot be exported, and why."""
    name = _type_name(model)
    if name == "RCNN":
        raise ExportError("model 'RCNN' cannot be exported whole: it crops, warps and runs the backbone on every "
                          "selective-search window, and those windows come from a proposal file or OpenCV's "
                          "selective search, neither of which is in the graph")
    if name == "MultiScaleSPPNet":
        raise ExportError("model 'MultiScaleSPPNet' is not supported by the whole-detector export: it runs the "
                          "backbone at several image scales; export a one-scale detector")
    if not hasattr(model, "rpn_head") or getattr(model, "rpn_head", None) is None:
        raise ExportError(f"model {name!r} has no rpn_head: its RoIs come from proposal files (LoadProposals), "
                          "which the graph cannot read; export a detector with an RPN")
    parts = [("model", name, ("FasterRCNN", "TwoStageDetector")),
             ("model.data_preprocessor", _type_name(model.data_preprocessor), ("DetDataPreprocessor",)),
             ("model.rpn_head", _type_name(model.rpn_head), ("RPNHead",)),
             ("model.rpn_head.prior_generator", _type_name(model.rpn_head.prior_generator), ("AnchorGenerator",)),
             ("model.rpn_head.bbox_coder", _type_name(model.rpn_head.bbox_coder), ("DeltaXYWHBBoxCoder",)),
             ("model.roi_head", _type_name(model.roi_head), ("StandardRoIHead",)),
             ("model.roi_head.bbox_roi_extractor", _type_name(model.roi_head.bbox_roi_extractor),
              ("SPPRoIExtractor",)),
             ("model.roi_head.bbox_head", _type_name(model.roi_head.bbox_head), ("SPPBBoxHead",)),
             ("model.roi_head.bbox_head.bbox_coder", _type_name(model.roi_head.bbox_head.bbox_coder),
              ("DeltaXYWHBBoxCoder",))]
    for part, got, supported in parts:
        if got not in supported:
            raise ExportError(f"{part} is {got!r}; the whole-detector export handles {' or '.join(supported)}")
    if model.roi_head.with_shared_head or getattr(model.roi_head, "with_mask", False):
        raise ExportError("model.roi_head has a shared head or a mask branch, which the export does not handle")
    for part, coder in (("rpn_head", model.rpn_head.bbox_coder), ("roi_head.bbox_head", model.roi_head.bbox_head.bbox_coder)):
        if coder.add_ctr_clamp or not coder.clip_border:
            raise ExportError(f"model.{part}.bbox_coder: add_ctr_clamp=True or clip_border=False is not handled")
    if not model.rpn_head.use_sigmoid_cls:
        raise ExportError("model.rpn_head: a softmax RPN classifier (use_sigmoid=False) is not handled")
    if model.roi_head.bbox_head.custom_cls_channels:
        raise ExportError("model.roi_head.bbox_head: a custom classification loss's channels are not handled")
    pre = model.data_preprocessor
    if getattr(pre, "batch_augments", None):
        raise ExportError("model.data_preprocessor.batch_augments are not handled")
    same_padding = [m for m in model.modules() if type(m).__name__ == "Conv2dDynamicSamePadding"]
    if same_padding and pre.pad_size_divisor % 32:
        raise ExportError(f"model.data_preprocessor.pad_size_divisor={pre.pad_size_divisor}: the backbone's "
                          "'same'-padded convolutions export only on inputs padded to a multiple of 32 "
                          "(see static_same_padding)")
    rpn_max = model.test_cfg["rpn"].get("max_per_img")
    if not isinstance(rpn_max, int) or isinstance(rpn_max, bool) or rpn_max <= 0:
        # mmdet's RPN keeps results[:max_per_img]: -1 drops the last proposal, 0 all of them.
        raise ExportError(f"model.test_cfg.rpn.max_per_img={rpn_max!r}: mmdet's RPN keeps "
                          "results[:max_per_img], which only a positive int makes a cap; the export needs one")
    for stage in ("rpn", "rcnn"):
        nms_settings(model, stage)
    resize_rule(cfg)  # raises on a pipeline the runtime cannot reproduce


# The keys mmcv 2.1's batched_nms and nms read from an nms config; any other key is a
# TypeError in mmcv, so mmdet itself would fail on it.
NMS_KEYS = ("type", "iou_threshold", "iou_thr", "class_agnostic", "split_thr", "offset", "score_threshold",
            "max_num")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _boxes_into_nms(model, stage: str) -> tuple[int | None, str]:
    """The most boxes that can enter ``stage``'s NMS in mmdet (None: no bound), and how
    that follows from the config."""
    rpn = model.test_cfg["rpn"]
    levels = model.rpn_head.prior_generator.num_levels
    nms_pre = rpn.get("nms_pre", -1)
    rpn_most = nms_pre * levels if nms_pre > 0 else None
    if stage == "rpn":
        return rpn_most, (f"rpn nms_pre={nms_pre} x {levels} levels" if rpn_most else
                          f"rpn nms_pre={nms_pre} keeps every anchor")
    proposals = min(_max_num(rpn, nms_settings(model, "rpn", check_split=False)["max_num"]), rpn_most or NO_CAP)
    classes = model.roi_head.bbox_head.num_classes
    return proposals * classes, f"{proposals} proposals x {classes} classes"


def nms_settings(model, stage: str, check_split: bool = True) -> dict:
    """``model.test_cfg.<stage>.nms`` (stage "rpn" or "rcnn") as the graph carries it:
    ``{"iou_threshold": float, "class_agnostic": bool, "score_threshold": float (mmcv's
    filter inside NMS, kept where > 0), "max_num": int (a cap where > 0)}``.

    Raises ``ExportError`` naming the key and value the graph cannot reproduce: a ``type``
    but ``'nms'``, ``offset`` 1, an IoU threshold outside [0, 1], unknown keys, and
    ``class_agnostic=True`` where ``split_thr`` could be reached (mmcv then runs NMS per
    class id instead; ``check_split=False`` skips this check). ``split_thr`` only changes
    how mmcv loops otherwise, so it is not carried."""
    where = f"model.test_cfg.{stage}.nms"
    nms = model.test_cfg[stage].get("nms")
    if nms is None:
        raise ExportError(f"{where} is missing or None (mmcv then skips NMS); the export needs an NMS config")
    if not isinstance(nms, dict):
        raise ExportError(f"{where}={nms!r}: expected a dict of mmcv nms settings")
    for key, value in nms.items():
        if key not in NMS_KEYS:
            raise ExportError(f"{where}.{key}={value!r}: not a setting of mmcv's nms "
                              f"(it reads {', '.join(NMS_KEYS)}); mmdet would fail on it too")
    kind = nms.get("type", "nms")
    if kind != "nms":
        raise ExportError(f"{where}.type={kind!r}: only 'nms' is exported")
    if "iou_thr" in nms and "iou_threshold" in nms:
        raise ExportError(f"{where}: both iou_thr and iou_threshold; mmcv refuses that too")
    iou_key = "iou_thr" if "iou_thr" in nms else "iou_threshold"  # mmcv renames the deprecated iou_thr
    iou = nms.get(iou_key)
    if not _is_number(iou) or not 0 <= iou <= 1:
        # ONNX Runtime's NonMaxSuppression rejects a threshold outside [0, 1] at run time.
        raise ExportError(f"{where}.{iou_key}={iou!r}: the export needs an IoU threshold in [0, 1]")
    offset = nms.get("offset", 0)
    if offset != 0:
        # offset 1 adds 1 to widths and heights; NonMaxSuppression has no such term.
        raise ExportError(f"{where}.offset={offset!r}: only offset 0 is exported")
    score_threshold, max_num = nms.get("score_threshold", 0.0), nms.get("max_num", -1)
    split_thr = nms.get("split_thr", 10000)
    for key, value, ok in (("score_threshold", score_threshold, _is_number(score_threshold)),
                           ("max_num", max_num, isinstance(max_num, int) and not isinstance(max_num, bool)),
                           ("split_thr", split_thr, _is_number(split_thr))):
        if not ok:
            raise ExportError(f"{where}.{key}={value!r}: expected {'an int' if key == 'max_num' else 'a number'}")
    agnostic = nms.get("class_agnostic", False)
    if not isinstance(agnostic, bool):
        raise ExportError(f"{where}.class_agnostic={agnostic!r}: expected True or False")
    groups = model.rpn_head.prior_generator.num_levels if stage == "rpn" else model.roi_head.bbox_head.num_classes
    if agnostic and groups > 1 and check_split:
        # mmcv's batched_nms runs one NMS only while fewer than split_thr boxes enter it;
        # from there on it loops over the class ids (levels), ignoring class_agnostic.
        most, why = _boxes_into_nms(model, stage)
        if most is None or not most < split_thr:
            bound = f"up to {most} boxes can ({why})" if most else f"their number has no bound ({why})"
            default = "" if "split_thr" in nms else " (mmcv's default)"
            raise ExportError(f"{where}.split_thr={split_thr!r}{default} with class_agnostic=True: once split_thr "
                              f"boxes enter NMS, mmcv runs it per class id, and {bound}; the graph reproduces "
                              "class-agnostic NMS only" + (f", so set split_thr above {most}" if most else ""))
    return {"iou_threshold": float(iou), "class_agnostic": agnostic, "score_threshold": float(score_threshold),
            "max_num": max_num}


def resize_rule(cfg) -> dict:
    """The test pipeline's ``Resize`` as metadata for the runtime: ``{"scale": [w, h],
    "keep_ratio": bool}`` or ``{"scale_factor": f, "keep_ratio": True}``; no Resize: ``{}``."""
    pipeline = cfg.test_dataloader.dataset.pipeline
    rule: dict[str, Any] = {}
    for step in pipeline:
        kind = str(step["type"]).split(".")[-1]  # "mmdet.Resize" too
        if kind in ("LoadImageFromFile", "LoadAnnotations", "PackDetInputs", "LoadImageFromNDArray"):
            continue
        if kind == "LoadProposals":
            raise ExportError("test pipeline: LoadProposals reads RoIs from a proposal file, which the graph "
                              "cannot; export a detector with an RPN")
        if kind != "Resize" or rule:
            raise ExportError(f"test pipeline: transform {kind!r} has no counterpart in the ONNX runtime "
                              "(it reproduces LoadImageFromFile and one Resize)")
        if step.get("interpolation", "bilinear") != "bilinear" or step.get("backend", "cv2") != "cv2":
            raise ExportError("test pipeline: Resize must use bilinear interpolation (cv2), as the runtime does")
        if step.get("scale") is not None:
            scale = step["scale"]
            scale = [scale, scale] if isinstance(scale, int) else list(scale)
            rule = {"scale": [int(s) for s in scale], "keep_ratio": bool(step.get("keep_ratio", False))}
        else:
            rule = {"scale_factor": float(step["scale_factor"]), "keep_ratio": True}
    return rule


def decode_deltas(rois: Tensor, deltas: Tensor, coder, height: Tensor, width: Tensor) -> Tensor:
    """mmdet's ``delta2bbox`` for (N, 4) rois and (N, 4) deltas, clipped to the image,
    with its float32 operations in its order (``add_ctr_clamp=False``); no shape branch,
    so that it traces for any N, 0 included."""
    means = deltas.new_tensor(coder.means).view(1, -1)
    stds = deltas.new_tensor(coder.stds).view(1, -1)
    denorm = deltas * stds + means
    dxy, dwh = denorm[:, :2], denorm[:, 2:]
    pxy = (rois[:, :2] + rois[:, 2:]) * 0.5
    pwh = rois[:, 2:] - rois[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = float(np.abs(np.log(16 / 1000)))  # decode()'s default wh_ratio_clip, which mmdet's heads use
    dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * dwh.exp()
    boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
    x1, y1, x2, y2 = boxes.unbind(-1)
    w, h = width.to(boxes.dtype), height.to(boxes.dtype)  # 0-d tensors: the image size is a graph input
    return torch.stack([x1.clamp(min=0).minimum(w), y1.clamp(min=0).minimum(h),
                        x2.clamp(min=0).minimum(w), y2.clamp(min=0).minimum(h)], -1)


NO_CAP = 1 << 30  # a count of detections no image reaches


def _max_num(stage_cfg, nms_max_num: int) -> int:
    """The cap on a stage's detections: the smaller of its ``max_per_img`` and its nms's
    ``max_num`` (mmcv cuts there first); mmdet's "no limit" (<= 0 for both) as a count
    no image reaches."""
    caps = [int(c) for c in (stage_cfg.get("max_per_img", -1), nms_max_num) if c > 0]
    return min(caps) if caps else NO_CAP


class WholeDetector(nn.Module):
    """``(image, image_size, scale_factor) -> (boxes, scores, labels)`` of a trained mmdet
    detector; see the module docstring. Build with a model in eval mode; ``check_exportable``
    first."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.pad_divisor = int(model.data_preprocessor.pad_size_divisor)
        self.rpn_cfg = model.test_cfg["rpn"]
        self.rcnn_cfg = model.test_cfg["rcnn"]
        self.rpn_nms = nms_settings(model, "rpn")
        self.rcnn_nms = nms_settings(model, "rcnn")

    def preprocess(self, image: Tensor, image_size: Tensor) -> Tensor:
        """(Hp, Wp, 3) uint8 RGB, zero-padded to ``pad_size_divisor`` -> (1, 3, Hp, Wp)
        float32 as ``DetDataPreprocessor`` gives it: normalised, ``pad_value`` outside
        the (h, w) = ``image_size`` image."""
        pre = self.model.data_preprocessor
        x = image.permute(2, 0, 1).unsqueeze(0).float()
        if not pre._channel_conversion:  # the runtime feeds RGB; mmdet loads BGR, flipped only with bgr_to_rgb
            x = x.flip(1)
        if pre._enable_normalize:
            x = (x - pre.mean) / pre.std
        rows = torch.arange(x.shape[2], device=x.device).view(1, 1, -1, 1) < image_size[0]
        cols = torch.arange(x.shape[3], device=x.device).view(1, 1, 1, -1) < image_size[1]
        return torch.where(rows & cols, x, torch.full_like(x, float(pre.pad_value)))

    def proposals(self, feats, height, width) -> Tensor:
        """``RPNHead.predict_by_feat`` for one image, ``rescale=False``: (K, 4) boxes."""
        head, cfg = self.model.rpn_head, self.rpn_cfg
        cls_scores, bbox_preds = head(feats)
        priors = head.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores], dtype=cls_scores[0].dtype,
                                                  device=cls_scores[0].device)
        nms_pre = cfg.get("nms_pre", -1)
        all_scores, all_deltas, all_priors, all_levels = [], [], [], []
        for level, (score, delta, prior) in enumerate(zip(cls_scores, bbox_preds, priors)):
            score = score[0].permute(1, 2, 0).reshape(-1).sigmoid()
            delta = delta[0].permute(1, 2, 0).reshape(-1, 4)
            if nms_pre > 0:  # mmdet sorts when a level has more; TopK keeps the same set either way
                score, top = score.topk(torch.sym_min(nms_pre, score.shape[0]))
                delta, prior = delta[top], prior[top]
            all_scores.append(score)
            all_deltas.append(delta)
            all_priors.append(prior)
            all_levels.append(torch.full_like(score, level, dtype=torch.int64))
        scores, levels = torch.cat(all_scores), torch.cat(all_levels)
        boxes = decode_deltas(torch.cat(all_priors), torch.cat(all_deltas), head.bbox_coder, height, width)
        min_size = cfg.get("min_bbox_size", -1)
        if min_size >= 0:  # mmdet drops the others before NMS
            w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            scores = torch.where((w > min_size) & (h > min_size), scores, torch.full_like(scores, -torch.inf))
        keep = self.nms(boxes, scores, levels, self.rpn_nms, cfg, -float("inf"))
        return boxes[keep]

    def detections(self, feats, proposals: Tensor, height, width, scale_factor: Tensor):
        """``StandardRoIHead.predict_bbox`` for one image, ``rescale=True``."""
        roi_head, cfg = self.model.roi_head, self.rcnn_cfg
        head = roi_head.bbox_head
        rois = torch.cat([proposals.new_zeros(proposals.shape[0], 1), proposals], dim=1)
        extractor = roi_head.bbox_roi_extractor
        cls_score, bbox_pred = head(extractor(feats[:extractor.num_inputs], rois))
        scores = F.softmax(cls_score, dim=-1)
        num_classes = 1 if head.reg_class_agnostic else head.num_classes
        boxes = decode_deltas(proposals.repeat_interleave(num_classes, dim=0), bbox_pred.reshape(-1, 4),
                              head.bbox_coder, height, width)
        inverse = (1.0 / scale_factor).to(torch.float32)  # mmdet: new_tensor([1 / s for s in scale_factor])
        boxes = boxes * inverse.repeat(2)
        # multiclass_nms: every (RoI, class) pair but the background column.
        boxes = boxes.reshape(-1, num_classes, 4).expand(-1, head.num_classes, 4).reshape(-1, 4)
        class_scores = scores[:, :-1].reshape(-1)
        labels = torch.arange(head.num_classes, device=scores.device).repeat(scores.shape[0])
        keep = self.nms(boxes, class_scores, labels, self.rcnn_nms, cfg, float(cfg["score_thr"]))
        return boxes[keep], class_scores[keep], labels[keep]

    @staticmethod
    def nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms: dict, stage_cfg, score_threshold: float) -> Tensor:
        """mmcv's ``batched_nms`` with a stage's ``nms_settings`` after mmdet's filter
        ``score > score_threshold``, capped as ``_max_num`` says: the kept indices."""
        if nms["class_agnostic"]:  # one class id: offsets of 0, NMS on the unshifted boxes, as mmcv's
            idxs = torch.zeros_like(idxs)
        return batched_nms(boxes, scores, idxs, nms["iou_threshold"], score_threshold,
                           _max_num(stage_cfg, nms["max_num"]), nms["score_threshold"])

    def forward(self, image: Tensor, image_size: Tensor, scale_factor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        height, width = image_size[0].float(), image_size[1].float()
        feats = self.model.extract_feat(self.preprocess(image, image_size))
        return self.detections(feats, self.proposals(feats, height, width), height, width, scale_factor)


@contextlib.contextmanager
def static_same_padding(model: nn.Module):
    """EfficientNet-Lite's TF-style "same" convolutions compute their padding from the
    input size at run time; traced with symbolic sizes, ``torch.export`` spends many
    minutes on the nested ceilings. On inputs padded to a multiple of the backbone's
    total stride (``pad_size_divisor``; ``check_exportable`` requires it) every such
    conv sees a size divisible by its stride, and its padding is the constant
    ``(k - 1) * d + 1 - s``: the same numbers, set here for the duration of the export."""
    try:
        from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding
    except ImportError:
        yield
        return

    def forward(self, x):
        pads = [max((k - 1) * d + 1 - st, 0) for k, d, st in zip(self.weight.shape[-2:], self.dilation, self.stride)]
        x = F.pad(x, [pads[1] // 2, pads[1] - pads[1] // 2, pads[0] // 2, pads[0] - pads[0] // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    patched = [m for m in model.modules() if isinstance(m, Conv2dDynamicSamePadding)]
    for m in patched:
        m.forward = types.MethodType(forward, m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def metadata(cfg, model: nn.Module, classes, palette=None) -> dict[str, str]:
    """What the runtime needs besides the graph, stored as the ONNX model's metadata (the
    config's ``sliced_infer_cfg``, its default windows for large images, too).
    ``max_per_img``: the most detections the graph returns per image (window), the rcnn
    ``max_per_img`` or its nms's smaller ``max_num``; -1: no cap."""
    slicing = SliceSettings.from_config(cfg)
    rcnn = model.test_cfg["rcnn"]
    cap = _max_num(rcnn, nms_settings(model, "rcnn", check_split=False)["max_num"])
    extra = {"palette": json.dumps([list(map(int, c)) for c in palette])} if palette else {}
    return {**extra, "format": METADATA_FORMAT, "classes": json.dumps(list(classes)),
            "resize": json.dumps(resize_rule(cfg)),
            "pad_size_divisor": json.dumps(int(model.data_preprocessor.pad_size_divisor)),
            "score_thr": json.dumps(float(rcnn["score_thr"])),
            "max_per_img": json.dumps(cap if cap != NO_CAP else -1),
            "slicing": json.dumps(slicing.as_dict() if slicing else None)}


def export(model: nn.Module, cfg, path, classes, palette=None, example: np.ndarray | None = None,
           assume_finite: bool = False):
    """Exports ``model`` (eval mode, CPU) whole to ``path``; returns the ONNXProgram.

    Args:
        model, cfg: a built mmdet detector with its weights, and its Config.
        path: the .onnx file (one self-contained file).
        classes, palette: label names and their colours (the dataset's meta), stored in the
            metadata.
        example: an (H, W, 3) uint8 RGB image to trace with (default: a 200 x 270 grey
            one). Each of its feature maps must be larger than 1 x 1, or torch.export
            specialises that size to 1. The exported graph takes any H, W up to 8192.
        assume_finite: see ``spp_triton.export.onnx_export``.
    Raises:
        ExportError: a part that cannot be exported, named.
    """
    import onnx

    from spp_triton.export import onnx_export

    from . import nms_op

    check_exportable(model, cfg)
    wrapper = WholeDetector(model).eval()
    divisor = wrapper.pad_divisor
    if example is None:
        example = np.full((200, 270, 3), 128, np.uint8)
    padded = pad_to(example, divisor) if divisor > 1 else example  # as the runtime feeds it
    args = (torch.from_numpy(np.ascontiguousarray(padded)), torch.tensor(example.shape[:2], dtype=torch.int64),
            torch.tensor([1.0, 1.0], dtype=torch.float64))
    blocks = [torch.export.Dim(name, min=1, max=8192 // divisor) for name in ("rows", "cols")]
    dims = {0: divisor * blocks[0], 1: divisor * blocks[1]} if divisor > 1 else {0: blocks[0], 1: blocks[1]}
    table = {**onnx_export.custom_translation_table(assume_finite), **nms_op.translation_table()}
    with torch.no_grad(), static_same_padding(model):
        program = torch.onnx.export(wrapper, args, None, dynamo=True, dynamic_shapes=(dims, None, None),
                                    input_names=["image", "image_size", "scale_factor"],
                                    output_names=["boxes", "scores", "labels"], custom_translation_table=table,
                                    external_data=False)
    proto = program.model_proto
    for key, value in metadata(cfg, model, classes, palette).items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(proto, str(path))
    return program


def match_detections(want: dict, got: dict, iou: float = 0.99, score_tol: float = 1e-3) -> float:
    """The fraction of ``want``'s boxes that ``got`` has too, matched one to one: same label,
    IoU >= ``iou``, scores within ``score_tol`` (greedy, ``want``'s boxes by descending
    score; each of ``got``'s boxes matches once). Both: {"bboxes", "scores", "labels"}.
    1.0 when both are empty; 0.0 when only ``got`` is."""
    wb, ws, wl = (np.asarray(want[k], np.float64) for k in ("bboxes", "scores", "labels"))
    gb, gs, gl = (np.asarray(got[k], np.float64) for k in ("bboxes", "scores", "labels"))
    wb, gb = wb.reshape(-1, 4), gb.reshape(-1, 4)
    if len(ws) == 0:
        return 1.0 if len(gs) == 0 else 0.0
    free = np.ones(len(gs), bool)
    matched = 0
    for i in np.argsort(-ws, kind="stable"):
        x1, y1 = np.maximum(wb[i, 0], gb[:, 0]), np.maximum(wb[i, 1], gb[:, 1])
        x2, y2 = np.minimum(wb[i, 2], gb[:, 2]), np.minimum(wb[i, 3], gb[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = ((wb[i, 2] - wb[i, 0]) * (wb[i, 3] - wb[i, 1]) + (gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1])
                 - inter)
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), (wb[i] == gb).all(1).astype(float))
        ok = free & (gl == wl[i]) & (overlap >= iou) & (np.abs(gs - ws[i]) <= score_tol)
        if ok.any():
            free[np.flatnonzero(ok)[np.argmax(overlap[ok])]] = False
            matched += 1
    return matched / len(ws)
