# mmdet's stock RoIAlign 7x7 head on the ImageNet-pretrained EfficientNet-Lite0
# FPN, fine-tuned on the real tree-crown tiles (data/trees:
# python -m mmdet_plugin.datasets.trees data/trees); chosen on val, reported on test.
_base_ = ['../_base_/models/faster-rcnn_effnet-lite0_fpn.py', '../_base_/recipes/pretrained_36e_trees.py']
model = dict(roi_head=dict(bbox_head=dict(num_classes=1)))
