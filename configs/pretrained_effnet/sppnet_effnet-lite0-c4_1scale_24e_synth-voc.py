# The same detector as sppnet_effnet-lite0-c4_1scale_36e_trees-voc.py on the synthetic set (data/synth_voc):
# the pretrained EfficientNet-Lite0 on generated shapes, so that pretraining and real
# data can be told apart (its own val split: _base_/recipes/pretrained_24e_synth.py).
_base_ = ['../_base_/models/sppnet_effnet-lite0_c4.py', '../_base_/recipes/pretrained_24e_synth.py']
model = dict(roi_head=dict(bbox_head=dict(num_classes=5)))
