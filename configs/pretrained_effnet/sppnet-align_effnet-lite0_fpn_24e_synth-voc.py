# SPP-Align (max, r = 2) on the pretrained EfficientNet-Lite0 FPN and the synthetic set.
_base_ = ['./sppnet_effnet-lite0_fpn_24e_synth-voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
