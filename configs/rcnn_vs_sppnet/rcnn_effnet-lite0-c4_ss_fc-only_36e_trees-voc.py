# R-CNN with the paper's SPP-net fine-tuning: ./rcnn_effnet-lite0-c4_ss_36e_trees-voc.py with
# every conv layer frozen (ImageNet weights and batch-norm statistics), as
# ./sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py freezes SPP-net's: only fc6,
# fc7, the classifier and the box regressor train. With it, "SPP-net fc-only against
# R-CNN" changes one thing, where a window's features come from (issue 30).
_base_ = ['./rcnn_effnet-lite0-c4_ss_36e_trees-voc.py']
model = dict(backbone=dict(frozen_stages=3))
