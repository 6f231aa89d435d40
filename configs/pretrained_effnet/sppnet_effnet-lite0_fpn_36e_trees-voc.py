# The SPPNet head (cells, the paper's pooling) on the ImageNet-pretrained EfficientNet-Lite0
# FPN, fine-tuned on the real tree-crown tiles (data/trees:
# python -m mmdet_plugin.datasets.trees data/trees); chosen on val, reported on test.
_base_ = ['../_base_/models/sppnet_effnet-lite0_fpn.py', '../_base_/recipes/pretrained_36e_trees.py']
model = dict(roi_head=dict(bbox_head=dict(num_classes=1)))
