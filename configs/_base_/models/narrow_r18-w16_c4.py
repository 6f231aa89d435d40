# The demo's small network in the paper's single-map form, as a patch over a two-stage
# detector (the demo configs, or any model with ./narrow_r18-w16_fpn.py's layout): the
# narrow ResNet-18 (16 base channels, random init) cut after stage 3, one stride-16 map
# of 64 channels (C4), no neck; the RPN and the RoI head both read that map. Applied with
#     model = {{_base_.narrow_r18_w16_c4}}
c4_channels = 64
narrow_r18_w16_c4 = dict(
    backbone=dict(depth=18, base_channels=16, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                  out_indices=(2, ), frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=None,
    rpn_head=dict(
        in_channels=c4_channels,
        feat_channels=c4_channels,
        anchor_generator=dict(scales=[1, 2, 4, 8], ratios=[0.33, 1.0, 3.0], strides=[16])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=c4_channels, featmap_strides=[16]),
        bbox_head=dict(in_channels=c4_channels, fc_out_channels=256, num_classes=5)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
