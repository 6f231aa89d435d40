# SPP-net's multi-scale system on the tree tiles with selective-search windows: the conv
# layers run on the tile at 300, 400 and 600 px (the pipeline gives 400), each window
# pooled from the scale where it is closest to 64 x 64 px, the side of R-CNN's crop in
# ./rcnn_effnet-lite0-c4_ss_36e_trees-voc.py (the paper's 224 is its R-CNN's crop size).
_base_ = ['./sppnet_effnet-lite0-c4_1scale_ss_36e_trees-voc.py']
model = dict(type='MultiScaleSPPNet', scales=(300, 400, 600), base_scale=400, target_size=64)
