# The paper's fine-tuning recipe on the 5-scale system: the ImageNet conv layers stay
# frozen (stem and all three C4 stages, BN statistics too); only the RPN and the fc
# layers (fc6, fc7, classifier, box regressor) train. The paper fine-tuned fc6-fc8 on
# frozen ZF-5 conv5 features the same way.
_base_ = ['./sppnet_r50-c4_5scale_voc0712.py']
model = dict(backbone=dict(frozen_stages=3, norm_eval=True))
