# Issue 30: the best one-pass SPP-net on the synthetic set (val's choice: bilinear samples
# on 512 px images; ./sppnet-align-max-2x_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py) with every layer but the stem
# fine-tuned, as R-CNN's table row (../rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_6e_synth-voc.py) and SPP-net's
# (../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_6e_synth-voc.py) are: the fine-tuned systems side by side.
_base_ = ['./sppnet-align-max-2x_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py']
model = dict(backbone=dict(frozen_stages=0))
