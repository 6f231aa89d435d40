# SPPNet-style detector: ResNet-50 (ImageNet init, torchvision://resnet50) + FPN + RPN +
# spatial-pyramid RoI pooling + fc6/fc7. VOC07+12 trainval, VOC07 test, 11-point mAP,
# with the schedule of mmdet's faster-rcnn_r50_fpn_1x_voc0712 (4 epochs over a 3x
# repeated set = 12 effective epochs). Expects data/VOCdevkit/VOC{2007,2012}.
_base_ = [
    './_base_/models/sppnet_r50_fpn.py',
    'mmdet::_base_/datasets/voc0712.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))

max_epochs = 4
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[3], gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
auto_scale_lr = dict(enable=False, base_batch_size=16)
