# The paper's fine-tuning recipe at demo size: the conv layers of a trained
# sppnet_r18-w16-c4_1scale_24e_synth-voc.py run (nothing can be downloaded here, so that
# run stands in for ImageNet pre-training) are loaded and frozen (stem and all three
# stages, BN statistics too); only the RPN and the fc layers train, from scratch. Train
# the 1-scale config first, or point `model.backbone.init_cfg.checkpoint` elsewhere.
_base_ = ['./sppnet_r18-w16-c4_1scale_24e_synth-voc.py']
model = dict(backbone=dict(
    frozen_stages=3, norm_eval=True,
    init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                  checkpoint='work_dirs/sppnet_r18-w16-c4_1scale_24e_synth-voc/epoch_24.pth')))
