# SPP-net, 1 scale, on the tree tiles with selective-search windows (mmdet's FastRCNN with
# the SPP extractor and head): the 400 px tile through the pretrained EfficientNet-Lite0
# once, every window pooled from its stride-16 map. All layers but the stem fine-tuned:
# the fix of the paper's weakness; ..._ss_fc-only_... is the paper's recipe.
_base_ = ['../_base_/models/fast-sppnet_effnet-lite0_c4.py', '../_base_/recipes/ss-proposals_36e_trees.py']
model = dict(roi_head=dict(bbox_head=dict(num_classes=1)))
