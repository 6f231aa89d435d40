# ./pretrained_24e_synth.py with selective-search windows instead of an RPN (as
# ./ss-proposals_36e_trees.py; python -m mmdet_plugin.datasets.selective_search
# data/synth_voc/VOCsynth) and 6 epochs (480 iterations; LR x 0.1 at epoch 5), not 24:
# R-CNN runs the backbone on 512 crops per iteration (6-12 s on one thread of this
# workplace's 2-core CPU beside other runs: about 1.5 h for 6 epochs, 6 h for 24), and
# every row of the table gets the same schedule.
_base_ = ['./pretrained_24e_synth.py']
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[5], gamma=0.1),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadProposals', num_max_proposals=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='ProposalBroadcaster', transforms=[
        dict(type='Resize', scale=(256, 256), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
    ]),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadProposals', num_max_proposals=None),
    dict(type='ProposalBroadcaster', transforms=[dict(type='Resize', scale=(256, 256), keep_ratio=True)]),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(proposal_file='VOCsynth/proposals/ss_fast_train.pkl', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(proposal_file='VOCsynth/proposals/ss_fast_val.pkl', pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(proposal_file='VOCsynth/proposals/ss_fast_test.pkl', pipeline=test_pipeline))
