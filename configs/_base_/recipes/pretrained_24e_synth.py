# The recipe of ./pretrained_36e_trees.py on the synthetic set, at 24 epochs (its
# epochs were chosen on the trees' val; 24 epochs here are 1,920 iterations, 3.8x the trees'), with a validation
# split of its own: train.txt (320 images) to train, val.txt (the trainval images' last
# 80) to choose settings, test.txt (100) to report. A config adds a model base and
# `num_classes=5`.
_base_ = ['../datasets/synth_voc.py', '../evaluators/voc_ap40_and_range.py', '../schedules/adamw_24e_lr5e-4.py',
          '../cpu_runtime.py']
val_evaluator = {{_base_.voc_ap40_and_range}}
test_evaluator = val_evaluator
train_dataloader = dict(dataset=dict(ann_file='VOCsynth/ImageSets/Main/train.txt'))
val_dataloader = dict(dataset=dict(ann_file='VOCsynth/ImageSets/Main/val.txt'))
test_dataloader = dict(dataset=dict(ann_file='VOCsynth/ImageSets/Main/test.txt'))
