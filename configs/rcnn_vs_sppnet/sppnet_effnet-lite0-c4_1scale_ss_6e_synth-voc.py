# SPP-net, 1 scale, on the synthetic set with selective-search windows (mmdet's FastRCNN
# with the SPP extractor and head), all layers but the stem fine-tuned; as
# ./sppnet_effnet-lite0-c4_1scale_ss_36e_trees-voc.py.
_base_ = ['../_base_/models/fast-sppnet_effnet-lite0_c4.py', '../_base_/recipes/ss-proposals_6e_synth.py']
model = dict(roi_head=dict(bbox_head=dict(num_classes=5)))
