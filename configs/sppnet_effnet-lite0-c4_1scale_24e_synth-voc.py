# The same detector as sppnet_effnet-lite0-c4_1scale_24e_trees-voc.py on the synthetic set (data/synth_voc):
# the pretrained EfficientNet-Lite0 on generated shapes, so that pretraining and real
# data can be told apart. The synthetic generator is deterministic; its val split is
# the trainval images' last 80 (val.txt); train.txt is the other 320.
_base_ = [
    './_base_/models/sppnet_effnet-lite0_c4.py',
    './_base_/datasets/synth_voc.py',
    './_base_/schedules/adamw_24e_trees.py',
    './_base_/cpu_runtime.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=5)))
train_dataloader = dict(dataset=dict(ann_file='VOCsynth/ImageSets/Main/train.txt'))
val_dataloader = dict(dataset=dict(ann_file='VOCsynth/ImageSets/Main/val.txt'))
test_dataloader = dict(dataset=dict(ann_file='VOCsynth/ImageSets/Main/test.txt'))
