# The fine-tuning schedule of the pretrained detectors on the tree tiles, chosen on val
# (benchmarks/accuracy/trees_recipe.py): 36 epochs of AdamW (lr 5e-4, weight decay 0.05), linear
# warm-up over 100 iterations, LR x 0.1 at epochs 24 and 33, gradient clipping at norm 10;
# validation on `val` at the end. 36 epochs beat 24 by 0.048 val AP40 at both seeds.
_base_ = ['./adamw_24e_lr5e-4.py']
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[24, 33], gamma=0.1),
]
