# Issue 30's ablation "a multi-scale set reaching ~3x": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py with the
# frozen conv layers run on the image at 256, 512 and 768 px (the pipeline gives 256), each
# window pooled from the scale where its area is closest to 64 x 64 px, R-CNN's crop
# (../rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_fc-only_6e_synth-voc.py).
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_6e_synth-voc.py']
model = dict(type='MultiScaleSPPNet', scales=(256, 512, 768), base_scale=256, target_size=64)
