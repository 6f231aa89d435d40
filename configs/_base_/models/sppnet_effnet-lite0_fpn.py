# The SPPNet detector (./sppnet_r50_fpn.py) on the pretrained EfficientNet-Lite0 FPN
# (./effnet-lite0_fpn.py); configs set the classes, data and schedule.
_base_ = ['./sppnet_r50_fpn.py', './effnet-lite0_fpn.py']
model = {{_base_.effnet_lite0_fpn}}
