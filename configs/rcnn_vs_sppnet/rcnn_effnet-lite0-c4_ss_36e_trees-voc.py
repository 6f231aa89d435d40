# R-CNN on the tree tiles with selective-search windows (benchmarks/accuracy/rcnn_vs_sppnet_table.py):
# every window cropped with context, warped to 64 x 64 and run through the pretrained
# EfficientNet-Lite0 up to stride 16 (all layers but the stem fine-tuned, as R-CNN did),
# the SPP-net head on top. 64 px: the median selective-search window on these 400 px tiles
# is 45-54 px a side (per split); with 16/227 of the crop as context on each side a 64 px
# crop shows it at 55 px, about the pixels SPP-net's stride-16 map sees of it. R-CNN's 227
# would enlarge every window ~4x and cost ~13x the conv time.
_base_ = ['../_base_/models/rcnn_effnet-lite0.py', '../_base_/recipes/ss-proposals_36e_trees.py']
model = dict(roi_head=dict(bbox_roi_extractor=dict(crop_size=64), bbox_head=dict(num_classes=1)))
