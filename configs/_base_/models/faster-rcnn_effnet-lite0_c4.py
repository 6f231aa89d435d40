# mmdet's stock RoIAlign 7x7 head on the pretrained EfficientNet-Lite0's single stride-16 map.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', './effnet-lite0_c4.py']
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
runner_type = 'DataCheckedRunner'
model = {{_base_.effnet_lite0_c4}}
