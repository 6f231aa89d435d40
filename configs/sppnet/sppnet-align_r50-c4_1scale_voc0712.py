# SPP-Align on the paper's single-scale R-50 C4 system on VOC07+12:
# sppnet_r50-c4_1scale_voc0712.py with the extractor's pyramid sampled bilinearly in
# the C4 variant (_base_/models/spp_align.py: avg over adaptive samples, pyramid
# 1/2/4/8, the head sized to match); nothing else differs.
_base_ = ['./sppnet_r50-c4_1scale_voc0712.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align_c4}},
                           bbox_head=dict(pyramid={{_base_.spp_align_c4.pyramid}})))
