"""``MultiScaleSPPNet``: SPP-net's multi-scale detection system as an mmdet detector.

The paper's best detector (He et al., section 4.2): the conv layers run once per image
scale (shorter side 480, 576, 688, 864, 1200), and each candidate window is pooled from
the one scale where its scaled area is closest to 224 x 224 pixels.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor

from .given_proposals import given_proposals


@MODELS.register_module()
class MultiScaleSPPNet(TwoStageDetector):
    """A two-stage detector whose RoI head sees the image at several scales.

    The batch arrives at the pipeline's scale, ``base_scale`` (its shorter side). For
    each entry s of ``scales`` the batch tensor is resized by ``f = s / base_scale``
    (bilinear, with ``f`` itself as the coordinate scale, so a map of stride t shows the
    input at exactly ``f / t``) and the backbone (and neck) runs on it: the only loop,
    over scales. All maps of all scales become the levels of the RoI extractor, which
    must be ``SPPRoIExtractor``: this class sets its strides to the effective ones,
    ``t * base_scale / s`` input pixels per cell (fractional), and its level mapping to
    the paper's rule, so that each RoI is pooled from the map where its window is closest
    in area to ``target_size`` squared, all RoIs in one ``spp_roi_pool`` call.

    The RPN runs on the ``base_scale`` maps (so its anchors and ground truth need no
    rescaling), or proposals come with the data (``rpn_head=None``).

    With batches of one image (the paper's setting) the scales are the paper's per-image
    shorter sides exactly. A padded batch is resized as one tensor: images of another
    aspect ratio than the batch's get the same factor ``f``, so their shorter side is
    ``f`` times theirs rather than ``s``.

    Args:
        scales: shorter sides of the image pyramid, e.g. (480, 576, 688, 864, 1200).
        base_scale: the shorter side the data pipeline resizes to; must be in ``scales``.
        target_size: side of the window each RoI should cover at its chosen scale.
        Other arguments: as ``TwoStageDetector``. ``roi_head.bbox_roi_extractor``'s
        ``featmap_strides`` are the network's strides at one scale (e.g. [16] for C4).
    """

    def __init__(self, *, scales: Sequence[int], base_scale: int, roi_head: dict, target_size: float = 224.0,
                 **kwargs) -> None:
        self.scales = tuple(int(s) for s in scales)
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive shorter sides, got {tuple(scales)!r}")
        if base_scale not in self.scales:
            raise ValueError(f"base_scale ({base_scale}), the pipeline's shorter side on which the RPN runs, "
                             f"must be one of scales {self.scales}")
        self.base_index = self.scales.index(base_scale)
        self.scale_factors = tuple(s / base_scale for s in self.scales)
        extractor = roi_head.get("bbox_roi_extractor", {})
        if extractor.get("type") != "SPPRoIExtractor":
            raise ValueError("MultiScaleSPPNet pools every RoI from all scales in one call: "
                             "roi_head.bbox_roi_extractor must be SPPRoIExtractor, got "
                             f"{extractor.get('type')!r}")
        roi_head = copy.deepcopy(roi_head)
        self.levels_per_scale = len(extractor["featmap_strides"])
        roi_head["bbox_roi_extractor"].update(
            featmap_strides=[t / f for f in self.scale_factors for t in extractor["featmap_strides"]],
            level_mapping="sppnet", target_size=target_size)
        super().__init__(roi_head=roi_head, **kwargs)

    def extract_scales(self, batch_inputs: Tensor) -> list[tuple[Tensor, ...]]:
        """The backbone's (and neck's) outputs at every scale, in ``scales`` order."""
        outputs = []
        for f in self.scale_factors:
            images = batch_inputs if f == 1 else F.interpolate(
                batch_inputs, scale_factor=f, mode="bilinear", align_corners=False, recompute_scale_factor=False)
            outputs.append(tuple(super().extract_feat(images)))
        return outputs

    def rpn_and_roi_maps(self, batch_inputs: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """(the RPN's maps: the base scale's; the RoI head's: every scale's first
        ``levels_per_scale`` maps, scale-major, as the extractor's strides are)."""
        per_scale = self.extract_scales(batch_inputs)
        roi_maps = tuple(m for maps in per_scale for m in maps[:self.levels_per_scale])
        return per_scale[self.base_index], roi_maps

    def extract_feat(self, batch_inputs: Tensor) -> tuple[Tensor, ...]:
        """The RoI head's input: all scales' maps, scale-major."""
        return self.rpn_and_roi_maps(batch_inputs)[1]

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        rpn_maps, roi_maps = self.rpn_and_roi_maps(batch_inputs)
        losses = dict()
        if self.with_rpn:
            proposal_cfg = self.train_cfg.get("rpn_proposal", self.test_cfg.rpn)
            rpn_data_samples = copy.deepcopy(batch_data_samples)
            for sample in rpn_data_samples:  # the RPN is class-agnostic
                sample.gt_instances.labels = torch.zeros_like(sample.gt_instances.labels)
            rpn_losses, proposals = self.rpn_head.loss_and_predict(rpn_maps, rpn_data_samples,
                                                                   proposal_cfg=proposal_cfg)
            losses.update({(f"rpn_{k}" if "loss" in k and "rpn" not in k else k): v for k, v in rpn_losses.items()})
        else:
            proposals = given_proposals(batch_data_samples, "MultiScaleSPPNet without rpn_head")
        losses.update(self.roi_head.loss(roi_maps, proposals, batch_data_samples))
        return losses

    def _proposals(self, rpn_maps, batch_data_samples: SampleList) -> list:
        if self.with_rpn and batch_data_samples[0].get("proposals", None) is None:
            return self.rpn_head.predict(rpn_maps, batch_data_samples, rescale=False)
        return given_proposals(batch_data_samples, "MultiScaleSPPNet without rpn_head")

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        rpn_maps, roi_maps = self.rpn_and_roi_maps(batch_inputs)
        results = self.roi_head.predict(roi_maps, self._proposals(rpn_maps, batch_data_samples),
                                        batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> tuple:
        rpn_maps, roi_maps = self.rpn_and_roi_maps(batch_inputs)
        return (self.roi_head.forward(roi_maps, self._proposals(rpn_maps, batch_data_samples), batch_data_samples),)
