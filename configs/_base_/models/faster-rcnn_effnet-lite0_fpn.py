# mmdet's stock Faster R-CNN RoI head (SingleRoIExtractor + RoIAlign 7x7 +
# Shared2FCBBoxHead) on the pretrained EfficientNet-Lite0 FPN: the baseline of the
# SPPNet heads on the same backbone.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', './effnet-lite0_fpn.py']
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
runner_type = 'DataCheckedRunner'
model = {{_base_.effnet_lite0_fpn}}
