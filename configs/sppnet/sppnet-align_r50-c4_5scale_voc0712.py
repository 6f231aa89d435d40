# SPP-Align on the paper's 5-scale R-50 C4 system on VOC07+12:
# sppnet_r50-c4_5scale_voc0712.py with the extractor's pyramid sampled bilinearly
# (_base_/models/spp_align.py); nothing else differs.
_base_ = ['./sppnet_r50-c4_5scale_voc0712.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
