# SPP-net's single-scale system at demo size: the demo detector
# (sppnet_r18-w16_fpn_24e_synth-voc.py) cut to the paper's single map, the narrow
# ResNet-18's stride-16 C4 output, no FPN; the synthetic set at its 256 px scale. The
# reference of the multi-scale comparison (README, "Multi-scale SPP-net on the synthetic set").
_base_ = ['./sppnet_r18-w16_fpn_24e_synth-voc.py', '../_base_/models/narrow_r18-w16_c4.py']
model = {{_base_.narrow_r18_w16_c4}}
