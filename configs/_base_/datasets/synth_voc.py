# The embedded synthetic VOC-format data set (mmdet_plugin.datasets.synthetic_voc), 256x256
# images of five shape classes. `make demo` generates it under data/synth_voc.
dataset_type = 'CheckedVOCDataset'  # mmdet_plugin: bad annotations raise, naming the file
data_root = 'data/synth_voc/'
classes = ('ellipse', 'rectangle', 'triangle', 'cross', 'ring')
metainfo = dict(classes=classes, palette=[(220, 20, 60), (0, 128, 255), (255, 165, 0),
                                          (60, 179, 113), (148, 0, 211)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='VOCsynth/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOCsynth/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='VOCsynth/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOCsynth/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
