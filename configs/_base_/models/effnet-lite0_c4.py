# The pretrained EfficientNet-Lite0 in the paper's single-map form ("C4"), as a patch like
# narrow_r18-w16_c4.py: the backbone cut after its stride-16 stage (112 channels, blocks
# 0-10), no neck; the RPN and the RoI head both read that map.
#     model = {{_base_.effnet_lite0_c4}}
c4_channels = 112
effnet_lite0_c4 = dict(
    backbone=dict(_delete_=True, type='EfficientNetLite', arch='lite0', out_indices=(2, ), frozen_stages=0,
                  norm_eval=True, pretrained=True),
    neck=None,
    rpn_head=dict(
        in_channels=c4_channels,
        feat_channels=c4_channels,
        anchor_generator=dict(scales=[1, 2, 4, 8], ratios=[0.5, 1.0, 2.0], strides=[16])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=c4_channels, featmap_strides=[16]),
        bbox_head=dict(in_channels=c4_channels, fc_out_channels=256)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300), rcnn=dict(max_per_img=300)))
