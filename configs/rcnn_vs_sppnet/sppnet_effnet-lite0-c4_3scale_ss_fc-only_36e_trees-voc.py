# The paper's multi-scale system with its fine-tuning: ./sppnet_effnet-lite0-c4_3scale_ss_36e_trees-voc.py
# with every conv layer frozen; only the fc layers train.
_base_ = ['./sppnet_effnet-lite0-c4_3scale_ss_36e_trees-voc.py']
model = dict(backbone=dict(frozen_stages=3))
