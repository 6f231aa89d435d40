# R-CNN fc-only on the synthetic set: ./rcnn_effnet-lite0-c4_ss_6e_synth-voc.py with every
# conv layer frozen, as ./sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py (issue 30).
_base_ = ['./rcnn_effnet-lite0-c4_ss_6e_synth-voc.py']
model = dict(backbone=dict(frozen_stages=3))
