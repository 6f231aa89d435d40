# The SPP head on mmdet's COCO recipe, to show registry reuse: data, schedule and
# runtime are mmdet's own files, exactly as in faster-rcnn_r50_fpn_1x_coco.py.
_base_ = [
    '../_base_/models/sppnet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
