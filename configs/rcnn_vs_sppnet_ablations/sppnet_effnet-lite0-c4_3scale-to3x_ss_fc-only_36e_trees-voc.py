# Issue 30's ablation "a multi-scale set reaching ~3x": ../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py with the
# frozen conv layers run on the tile at 400, 800 and 1200 px (the pipeline gives 400), each
# window pooled from the scale where its area is closest to 64 x 64 px, R-CNN's crop
# (../rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_fc-only_36e_trees-voc.py). The paper's rule (224 px):
# ./sppnet-224_effnet-lite0-c4_3scale-to3x_ss_fc-only_36e_trees-voc.py.
_base_ = ['../rcnn_vs_sppnet/sppnet_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py']
model = dict(type='MultiScaleSPPNet', scales=(400, 800, 1200), base_scale=400, target_size=64)
