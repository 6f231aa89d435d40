# ./pretrained_36e_trees.py with the paper's region proposals instead of an RPN: selective
# search in fast mode, computed once per split (python -m mmdet_plugin.datasets.selective_search
# data/trees/VOCtrees) and read as mmdet proposal files, as mmdet's configs/fast_rcnn do
# (LoadProposals + ProposalBroadcaster: the proposals get the image's resize and flips).
# All windows are kept (at most 1,913 per tile). For RCNN, FastRCNN and MultiScaleSPPNet
# without an RPN.
_base_ = ['./pretrained_36e_trees.py']
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadProposals', num_max_proposals=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='ProposalBroadcaster', transforms=[
        dict(type='Resize', scale={{_base_.tile_scale}}, keep_ratio=True),
        dict(type='RandomFlip', prob=[0.25, 0.25, 0.25], direction=['horizontal', 'vertical', 'diagonal']),
    ]),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadProposals', num_max_proposals=None),
    dict(type='ProposalBroadcaster', transforms=[dict(type='Resize', scale={{_base_.tile_scale}}, keep_ratio=True)]),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(proposal_file='VOCtrees/proposals/ss_fast_train.pkl', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(proposal_file='VOCtrees/proposals/ss_fast_val.pkl', pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(proposal_file='VOCtrees/proposals/ss_fast_test.pkl', pipeline=test_pipeline))
