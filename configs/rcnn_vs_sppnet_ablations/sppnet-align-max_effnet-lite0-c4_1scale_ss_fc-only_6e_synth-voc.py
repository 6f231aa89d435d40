# Issue 30's ablation "sub-pixel sampling alone": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py with
# SPP-Align's bilinear samples (2 x 2 per bin of the 6 x 6 grid, mmcv's half-pixel shift)
# and nothing else changed: max pooling, the 1/2/3/6 pyramid (../_base_/models/spp_align.py's
# spp_align; the SPP-Align row of the table also switches to avg and 1/2/4/8).
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
