# The RoIAlign baseline of the multi-scale comparison: the demo's baseline
# (faster-rcnn_r18-w16_fpn_24e_synth-voc.py: SingleRoIExtractor + RoIAlign 7x7 +
# Shared2FCBBoxHead) on the same C4 map as sppnet_r18-w16-c4_1scale_24e_synth-voc.py.
_base_ = ['./faster-rcnn_r18-w16_fpn_24e_synth-voc.py', '../_base_/models/narrow_r18-w16_c4.py']
model = {{_base_.narrow_r18_w16_c4}}
