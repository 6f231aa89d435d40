# The paper's fine-tuning (conv layers frozen, fc layers train) of
# ./sppnet_effnet-lite0-c4_1scale_ss_6e_synth-voc.py.
_base_ = ['./sppnet_effnet-lite0-c4_1scale_ss_6e_synth-voc.py']
model = dict(backbone=dict(frozen_stages=3))
