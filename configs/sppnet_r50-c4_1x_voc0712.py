# The paper-faithful single-level variant: one stride-16 map (ResNet-50 C4, the output
# of stage 3), pyramid 1/2/3/6 over it with the paper's corner projection, fc6/fc7.
# No FPN: the RPN and the SPP layer both read the C4 map.
_base_ = ['./sppnet_r50_voc.py']
model = dict(
    backbone=dict(num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, )),
    neck=None,
    rpn_head=dict(
        in_channels=1024,
        feat_channels=1024,
        anchor_generator=dict(scales=[2, 4, 8, 16, 32], ratios=[0.5, 1.0, 2.0], strides=[16])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=1024, featmap_strides=[16], projection='sppnet'),
        bbox_head=dict(in_channels=1024, fc_out_channels=2048)),
    test_cfg=dict(rpn=dict(nms_pre=6000, max_per_img=2000)))
