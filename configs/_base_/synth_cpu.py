# Runtime, schedule and a small network for training on two CPU cores in minutes:
# a narrow ResNet-18 (16 base channels, random init: nothing is downloaded) + FPN.
# Configs put the *_cfg pieces into their model with {{_base_.xxx}}.
_base_ = ['mmdet::_base_/default_runtime.py']
fpn_channels = 64
narrow_backbone = dict(depth=18, base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None)
narrow_neck = dict(in_channels=[16, 32, 64, 128], out_channels=fpn_channels, num_outs=5)
narrow_rpn_head = dict(
    in_channels=fpn_channels,
    feat_channels=fpn_channels,
    anchor_generator=dict(scales=[4], ratios=[0.33, 1.0, 3.0], strides=[4, 8, 16, 32, 64]))
small_train_cfg = dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128)))
small_test_cfg = dict(rpn=dict(nms_pre=500, max_per_img=300))

max_epochs = 24
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[16, 22], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    # AdamW trains this from-scratch net much faster than SGD: after 12 epochs the demo
    # detector reached VOC mAP 0.42 (AdamW lr 2e-3), 0.39 (1e-3), 0.16 (SGD lr 0.04).
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
