# SPP-Align beside cells in the paper's system on the synthetic set:
# ./sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py with the C4 SPP-Align head
# (avg, adaptive samples, pyramid 1/2/4/8; ../_base_/models/spp_align.py).
_base_ = ['./sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align_c4}},
                           bbox_head=dict(pyramid={{_base_.spp_align_c4.pyramid}})))
