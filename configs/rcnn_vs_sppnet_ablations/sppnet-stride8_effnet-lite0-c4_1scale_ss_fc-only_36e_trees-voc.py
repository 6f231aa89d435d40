# Issue 30's ablation "more cells per window, one pass": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py with
# the C4 map at stride 8 instead of 16 (the first stride-16 block at stride 1, dilation 2
# after it, the same pretrained weights: EfficientNetLite(dilate_stride16=True)), so every
# window spans twice the cells a side at the image's own size. One change (the extractor's
# stride follows the map).
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py']
model = dict(backbone=dict(dilate_stride16=True), roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[8])))
