# R-CNN on the synthetic set with selective-search windows (as
# ./rcnn_effnet-lite0-c4_ss_36e_trees-voc.py): 64 px crops; the median window of the
# train split is 57 px a side on the 256 px images, which a 64 px crop shows at 55 px.
_base_ = ['../_base_/models/rcnn_effnet-lite0.py', '../_base_/recipes/ss-proposals_6e_synth.py']
model = dict(roi_head=dict(bbox_roi_extractor=dict(crop_size=64), bbox_head=dict(num_classes=5)))
