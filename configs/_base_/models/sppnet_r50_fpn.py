# SPPNet-style two-stage detector: mmdet's Faster R-CNN R-50-FPN with the RoI head's
# extractor and bbox head replaced by spatial-pyramid pooling (1x1, 2x2, 3x3, 6x6 =
# 50 bins per channel, the paper's detection pyramid) and the paper's fc6/fc7 head.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py']
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
# Stops at once with a message, not a stack trace, when a data root is missing.
runner_type = 'DataCheckedRunner'
spp_pyramid = (1, 2, 3, 6)
model = dict(
    roi_head=dict(
        bbox_roi_extractor=dict(
            _delete_=True,
            type='SPPRoIExtractor',
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
            pyramid=spp_pyramid,
            mode='max',
            projection='sppnet',
            level_mapping='fpn',
            finest_scale=56),
        bbox_head=dict(
            _delete_=True,
            type='SPPBBoxHead',
            pyramid=spp_pyramid,
            in_channels=256,
            num_fcs=2,
            fc_out_channels=1024,
            num_classes=80,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))))
