# R-CNN on the pretrained EfficientNet-Lite0 (mmdet_plugin's RCNN detector): each window
# enlarged so that 16/227 of its crop is context on each side, warped to crop_size x
# crop_size, run through the backbone up to its stride-16 stage (C4, the same layers as
# ./fast-sppnet_effnet-lite0_c4.py's), pooled with the same pyramid, the same fc head.
# The windows come with the data (a recipe with proposal files). A config sets crop_size
# for its data (see configs/rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_36e_trees-voc.py).
_base_ = ['./fast-sppnet_effnet-lite0_c4.py']
model = dict(
    type='RCNN',
    roi_head=dict(bbox_roi_extractor=dict(_delete_=True, type='WarpedRegionExtractor', crop_size=64,
                                          padding_fraction=16 / 227, chunk_size=256, featmap_strides=[1])))
