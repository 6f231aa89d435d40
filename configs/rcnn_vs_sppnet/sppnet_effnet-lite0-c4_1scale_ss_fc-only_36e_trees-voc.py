# The paper's fine-tuning: ./sppnet_effnet-lite0-c4_1scale_ss_36e_trees-voc.py with every
# conv layer frozen (ImageNet weights and batch-norm statistics); only fc6, fc7 and the
# classifier and box regressor train.
_base_ = ['./sppnet_effnet-lite0-c4_1scale_ss_36e_trees-voc.py']
model = dict(backbone=dict(frozen_stages=3))
