# Issue 30's ablation "under-training": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py
# for 24 epochs instead of 6 (the 6-epoch schedule exists because R-CNN is slow, not because
# SPP-net needs it), LR x 0.1 at epoch 20 as the 6-epoch schedule drops at 5 of 6. One change.
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py']
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[20], gamma=0.1),
]
