# The fine-tuning schedule of the pretrained detectors on the synthetic set: 24 epochs of
# AdamW (lr 5e-4, weight decay 0.05), linear warm-up over 100 iterations, LR x 0.1 at
# epochs 16 and 22, gradient clipping at norm 10; validation on `val` at the end.
_base_ = ['./adamw_24e.py']
optim_wrapper = dict(optimizer=dict(lr=5e-4))
