# SPP-net's multi-scale system on the synthetic set with selective-search windows, all
# layers but the stem fine-tuned: ./sppnet_effnet-lite0-c4_3scale_ss_fc-only_6e_synth-voc.py
# without the frozen conv layers.
_base_ = ['./sppnet_effnet-lite0-c4_3scale_ss_fc-only_6e_synth-voc.py']
model = dict(backbone=dict(frozen_stages=0))
