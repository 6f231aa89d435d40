# The demo detector (`make demo`): the SPPNet head on a narrow ResNet-18 FPN, trained
# from scratch on CPU on the embedded synthetic VOC-format set (data/synth_voc).
_base_ = [
    '../_base_/models/sppnet_r50_fpn.py',
    '../_base_/models/narrow_r18-w16_fpn.py',
    '../_base_/datasets/synth_voc.py',
    '../_base_/schedules/adamw_24e.py',
    '../_base_/cpu_runtime.py',
]
model = {{_base_.narrow_r18_w16_fpn}}
