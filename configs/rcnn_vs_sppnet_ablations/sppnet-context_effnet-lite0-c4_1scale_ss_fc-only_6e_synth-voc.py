# Issue 30's ablation "R-CNN's context": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py with every
# window enlarged about its centre by 227 / 195 before pooling, as R-CNN's crop enlarges it
# (16/227 of the crop on each side: configs/_base_/models/rcnn_effnet-lite0.py). One change.
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py']
model = dict(roi_head=dict(bbox_roi_extractor=dict(roi_scale_factor=227 / 195)))
