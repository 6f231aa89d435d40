# SPP-net's multi-scale system on the synthetic set with selective-search windows and the
# paper's fine-tuning (conv frozen): the conv layers at 192, 256 and 384 px (the pipeline
# gives 256), each window pooled at the scale where it is closest to 64 x 64 px, the side
# of R-CNN's crop in ./rcnn_effnet-lite0-c4_ss_6e_synth-voc.py.
_base_ = ['./sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py']
model = dict(type='MultiScaleSPPNet', scales=(192, 256, 384), base_scale=256, target_size=64)
