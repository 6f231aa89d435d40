# Real aerial photographs of tree crowns (NEON, Yellowstone) from the deepforest wheel, cut
# into 400 px tiles as a VOC devkit by `python -m mmdet_plugin.datasets.trees data/trees`
# (make demo does it): train and val are tiles of one area, test of another, never mixed.
# Settings are chosen on val; test only reports.
dataset_type = 'CheckedVOCDataset'
data_root = 'data/trees/'
metainfo = dict(classes=('Tree', ), palette=[(34, 139, 34)])
tile_scale = (400, 400)
# Aerial tiles have no up or down: every flip is a valid view.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=tile_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25], direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=tile_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]


def _split(name, test_mode):
    return dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                ann_file=f'VOCtrees/ImageSets/Main/{name}.txt', data_prefix=dict(sub_data_root='VOCtrees/'),
                test_mode=test_mode, pipeline=test_pipeline if test_mode else train_pipeline,
                **({} if test_mode else dict(filter_cfg=dict(filter_empty_gt=True))))


train_dataloader = dict(batch_size=2, num_workers=1, persistent_workers=True,
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        batch_sampler=dict(type='AspectRatioBatchSampler'), dataset=_split('train', False))
val_dataloader = dict(batch_size=2, num_workers=1, persistent_workers=True, drop_last=False,
                      sampler=dict(type='DefaultSampler', shuffle=False), dataset=_split('val', True))
test_dataloader = dict(val_dataloader, dataset=_split('test', True))
del _split

# Whole photographs (tools/infer.py, make infer): windows at the tiles' native resolution,
# not the photograph resized to one tile. Chosen on val (the whole training photograph,
# scored in its val area, 72 settings; benchmarks/accuracy/sliced_trees.py,
# benchmarks/results/sliced_trees.md): windows of at most 600 px sharing at least 100 px,
# boxes of different windows merged by NMS at IoU 0.3, the fewest windows within 0.005 of
# the best val AP40 (2026-12-07; 600/50/NMS 0.5 before windows were spread evenly and the
# merge kept to boxes of different windows).
sliced_infer_cfg = dict(tile=600, overlap=100, merge='nms', merge_thr=0.3)
