# The demo detector (`make demo`): the SPPNet head on a narrow ResNet-18 FPN, trained
# from scratch on CPU on the embedded synthetic VOC-format set (data/synth_voc).
_base_ = [
    './_base_/models/sppnet_r50_fpn.py',
    './_base_/datasets/synth_voc.py',
    './_base_/synth_cpu.py',
]
model = dict(
    backbone={{_base_.narrow_backbone}},
    neck={{_base_.narrow_neck}},
    rpn_head={{_base_.narrow_rpn_head}},
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=5)),
    train_cfg={{_base_.small_train_cfg}},
    test_cfg={{_base_.small_test_cfg}})
