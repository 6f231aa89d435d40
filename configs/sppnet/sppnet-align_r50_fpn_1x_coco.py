# SPP-Align on the SPP head on mmdet's COCO recipe: sppnet_r50_fpn_1x_coco.py with the
# extractor's pyramid sampled bilinearly (_base_/models/spp_align.py); nothing else
# differs.
_base_ = ['./sppnet_r50_fpn_1x_coco.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
