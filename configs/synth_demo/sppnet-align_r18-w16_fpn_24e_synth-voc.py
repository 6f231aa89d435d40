# SPP-Align on the FPN demo (make demo's detector): sppnet_r18-w16_fpn_24e_synth-voc.py
# with the extractor's pyramid sampled bilinearly (_base_/models/spp_align.py); nothing
# else differs.
_base_ = ['./sppnet_r18-w16_fpn_24e_synth-voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
