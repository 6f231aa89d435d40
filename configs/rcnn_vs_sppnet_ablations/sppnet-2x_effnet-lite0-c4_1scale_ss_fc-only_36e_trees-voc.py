# Issue 30's ablation "more cells per window": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py with the
# tiles at 800 px instead of 400 in training and testing, so that every window spans twice
# as many stride-16 cells a side (the windows are resized with the image; boxes come back
# in the tile's pixels). One change: the pipelines below are the recipe's
# (../_base_/recipes/ss-proposals_36e_trees.py) with scale (800, 800).
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py']
scale = (800, 800)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadProposals', num_max_proposals=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='ProposalBroadcaster', transforms=[
        dict(type='Resize', scale=scale, keep_ratio=True),
        dict(type='RandomFlip', prob=[0.25, 0.25, 0.25], direction=['horizontal', 'vertical', 'diagonal']),
    ]),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadProposals', num_max_proposals=None),
    dict(type='ProposalBroadcaster', transforms=[dict(type='Resize', scale=scale, keep_ratio=True)]),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
