# Issue 30: the best one-pass SPP-net on the tree tiles (val's choice: bilinear samples,
# R-CNN's context, the stride-8 C4 map; ./sppnet-align-max-context-stride8_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py) with
# every layer but the stem fine-tuned, as R-CNN's table row (../rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_36e_trees-voc.py)
# and SPP-net's (../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_36e_trees-voc.py) are: the fine-tuned systems side by side.
_base_ = ['./sppnet-align-max-context-stride8_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py']
model = dict(backbone=dict(frozen_stages=0))
