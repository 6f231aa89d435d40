# Issue 30's ablation "cells by rounding": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py with Fast R-CNN's
# RoIPool corner rule (x -> round(x / 16)) in place of the paper's (x1 -> floor((x1 + 1) / 16),
# x2 -> ceil((x2 + 1) / 16) - 2), which on a ~50 px window covers about two thirds of it,
# shifted up-left. One change.
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py']
model = dict(roi_head=dict(bbox_roi_extractor=dict(projection='round')))
