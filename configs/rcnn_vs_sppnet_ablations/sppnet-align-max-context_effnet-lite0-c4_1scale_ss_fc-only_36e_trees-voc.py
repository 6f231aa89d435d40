# Issue 30: the two one-pass changes that val chose, together: ./sppnet-align-max_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py
# (bilinear samples, max, 1/2/3/6) with R-CNN's context (every window x 227/195 before
# pooling, as ./sppnet-context_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py). The conv
# layers still run once per image, frozen.
_base_ = ['./sppnet-align-max_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py']
model = dict(roi_head=dict(bbox_roi_extractor=dict(roi_scale_factor=227 / 195)))
