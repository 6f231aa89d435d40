# The small network of the CPU demo, as a patch over a two-stage detector (mmdet's
# Faster R-CNN R-50-FPN or ./sppnet_r50_fpn.py): a narrow ResNet-18 (16 base channels,
# random init: nothing is downloaded) + a 64-channel FPN, the RoI head sized to it and
# to the 5 classes of the synthetic set, fewer proposals. A config applies it with
#     model = {{_base_.narrow_r18_w16_fpn}}
# (a variable, not `model`, so that it merges into whichever model base comes with it).
fpn_channels = 64
narrow_r18_w16_fpn = dict(
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=fpn_channels, num_outs=5),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        anchor_generator=dict(scales=[4], ratios=[0.33, 1.0, 3.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=256, num_classes=5)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
