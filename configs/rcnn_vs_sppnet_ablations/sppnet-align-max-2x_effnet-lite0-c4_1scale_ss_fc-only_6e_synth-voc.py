# Issue 30 on the synthetic set: the two changes that raised val AP50 most on their own,
# together: ./sppnet-2x_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py (the images at 512 px) with SPP-Align's bilinear
# samples (max, 1/2/3/6: ../_base_/models/spp_align.py's spp_align). One conv pass per image,
# frozen.
_base_ = ['./sppnet-2x_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
