"""``RCNN``: R-CNN (Girshick et al., 2014) as an mmdet detector, on given proposals."""
from __future__ import annotations

from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor

from .given_proposals import given_proposals


@MODELS.register_module()
class RCNN(TwoStageDetector):
    """R-CNN: every proposal cropped from the image, warped and run through the whole conv net.

    The baseline SPP-net was built to beat: where SPP-net runs the conv layers once per
    image and pools each window from the shared map, R-CNN runs them once per window. Here
    both use the same backbone, head and proposals, so the table compares exactly that.

    * Proposals come with the data (``LoadProposals`` + ``ProposalBroadcaster`` in the
      pipeline, a ``proposal_file`` per dataset), as for mmdet's ``FastRCNN``; no RPN.
    * ``roi_head`` is mmdet's ``StandardRoIHead`` with ``WarpedRegionExtractor``: R-CNN's
      crop (the box enlarged about its centre so that 16 / 227 of the crop is context on
      each side, clipped to the image, warped bilinearly, 0 outside the image), the crops
      through ``backbone`` in chunks, then the bbox head (``SPPBBoxHead`` pools each
      crop's map with the paper's pyramid, so fc6 is as wide as SPP-net's).
    * Training: R-CNN's fine-tuning batches, 128 windows per image with 32 positives
      (IoU >= 0.5 with a ground-truth box) and 96 background (``train_cfg.rcnn``).
    * Scores: a softmax classifier and a class-specific box regressor trained jointly,
      not R-CNN's per-class linear SVMs (hard-negative mining on fc7) and separate ridge
      regressor: Fast R-CNN (Girshick, 2015, section 5.4) showed softmax as good as or
      better than the SVMs, and one stage keeps the comparison with SPP-net's head exact.

    Args: as ``TwoStageDetector``, without ``neck`` and ``rpn_head``. ``backbone`` is what
    each crop goes through; the extractor uses its last output.
    """

    def __init__(self, backbone: dict, roi_head: dict, train_cfg: dict, test_cfg: dict, data_preprocessor=None,
                 init_cfg=None) -> None:
        extractor = roi_head.get("bbox_roi_extractor", {}).get("type")
        if extractor != "WarpedRegionExtractor":
            raise ValueError("RCNN crops every proposal from the image: roi_head.bbox_roi_extractor must be "
                             f"WarpedRegionExtractor, got {extractor!r}")
        super().__init__(backbone=backbone, roi_head=roi_head, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.roi_head.bbox_roi_extractor.attach_conv(self.backbone)

    def extract_feat(self, batch_inputs: Tensor) -> tuple[Tensor]:
        """The images themselves: the conv net runs per crop, inside the RoI extractor."""
        return (batch_inputs, )

    # TwoStageDetector runs the RoI head on the samples' proposals when there is no RPN;
    # these check first, so that a batch without them gets a message, not an assert.
    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        given_proposals(batch_data_samples, "RCNN")
        return super().loss(batch_inputs, batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        given_proposals(batch_data_samples, "RCNN")
        return super().predict(batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> tuple:
        given_proposals(batch_data_samples, "RCNN")
        return super()._forward(batch_inputs, batch_data_samples)
