# The SPPNet detector on the pretrained EfficientNet-Lite0's single stride-16 map
# (./effnet-lite0_c4.py): the paper's single-map system on an ImageNet backbone.
_base_ = ['./sppnet_r50_fpn.py', './effnet-lite0_c4.py']
model = {{_base_.effnet_lite0_c4}}
