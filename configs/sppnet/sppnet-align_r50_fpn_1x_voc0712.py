# SPP-Align on the R-50 FPN detector on VOC07+12: sppnet_r50_voc.py with the extractor's
# pyramid sampled bilinearly (_base_/models/spp_align.py); nothing else differs.
_base_ = ['../sppnet_r50_voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
