# SPP-Align (max, r = 2) on the pretrained EfficientNet-Lite0 FPN and the tree tiles:
# sppnet_effnet-lite0_fpn_36e_trees-voc.py with the pyramid sampled bilinearly
# (_base_/models/spp_align.py); nothing else differs.
_base_ = ['./sppnet_effnet-lite0_fpn_36e_trees-voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
