# The demo's baseline: identical to sppnet_r18-w16_fpn_24e_synth-voc.py except for the
# RoI head: mmdet's stock SingleRoIExtractor + RoIAlign 7x7 + Shared2FCBBoxHead.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './_base_/datasets/synth_voc.py',
    './_base_/synth_cpu.py',
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
runner_type = 'DataCheckedRunner'
model = dict(
    backbone={{_base_.narrow_backbone}},
    neck={{_base_.narrow_neck}},
    rpn_head={{_base_.narrow_rpn_head}},
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=5)),
    train_cfg={{_base_.small_train_cfg}},
    test_cfg={{_base_.small_test_cfg}})
