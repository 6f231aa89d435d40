# Issue 30: every one-pass change that raised val AP40 on its own, together: ./sppnet-align-max-context_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py
# (bilinear samples, R-CNN's context) on the stride-8 C4 map
# (./sppnet-stride8_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py: dilated, the same
# weights). The conv layers still run once per image, frozen.
_base_ = ['./sppnet-align-max-context_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py']
model = dict(backbone=dict(dilate_stride16=True), roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[8])))
