# The demo's baseline: sppnet_r18-w16_fpn_24e_synth-voc.py with mmdet's stock RoI head
# (SingleRoIExtractor + RoIAlign 7x7 + Shared2FCBBoxHead) instead of the SPP head;
# everything else comes from the same bases.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/models/narrow_r18-w16_fpn.py',
    '../_base_/datasets/synth_voc.py',
    '../_base_/schedules/adamw_24e.py',
    '../_base_/cpu_runtime.py',
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
runner_type = 'DataCheckedRunner'
model = {{_base_.narrow_r18_w16_fpn}}
