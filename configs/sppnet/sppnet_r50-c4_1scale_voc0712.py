# The paper-faithful single-scale detector: one stride-16 map (ResNet-50 C4, the output
# of stage 3), pyramid 1/2/3/6 over it with the paper's corner projection, fc6/fc7;
# images at the paper's single scale (shorter side 688). No FPN: the RPN and the SPP
# layer both read the C4 map. The 5-scale system: sppnet_r50-c4_5scale_voc0712.py.
_base_ = ['../sppnet_r50_voc.py']
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

# mmdet's VOC07+12 data at the paper's single scale: shorter side 688 (the long side may
# grow to 2000, which no VOC image reaches), for train and test.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(2000, 688), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2000, 688), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# Both halves of the ConcatDataset take the new pipeline (lists are replaced, not merged).
train_dataloader = dict(dataset=dict(dataset=dict(datasets=[
    dict(type='VOCDataset', data_root='data/VOCdevkit/', ann_file='VOC2007/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root='VOC2007/'),
         filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
         pipeline=train_pipeline),
    dict(type='VOCDataset', data_root='data/VOCdevkit/', ann_file='VOC2012/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root='VOC2012/'),
         filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
         pipeline=train_pipeline),
])))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
