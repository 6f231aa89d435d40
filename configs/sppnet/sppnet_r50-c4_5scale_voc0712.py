# SPP-net's multi-scale system (He et al., section 4.2) on ResNet-50 C4: the conv layers
# run on the image at 5 scales (shorter side 480, 576, 688, 864, 1200), and each RoI is
# pooled, in one spp_roi_pool call, from the scale where its window is closest in area to
# 224 x 224 pixels. The pipeline gives the 688 scale, on which the RPN runs. Everything
# else is sppnet_r50-c4_1scale_voc0712.py.
_base_ = ['./sppnet_r50-c4_1scale_voc0712.py']
model = dict(type='MultiScaleSPPNet', scales=(480, 576, 688, 864, 1200), base_scale=688, target_size=224)
