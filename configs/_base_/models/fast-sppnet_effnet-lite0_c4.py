# SPP-net as the paper ran it: no RPN, the windows come with the data (mmdet's FastRCNN
# detector; a recipe with proposal files, e.g. ../recipes/ss-proposals_36e_trees.py), the
# conv layers run once per image, each window pooled from the stride-16 map into the
# 1x1, 2x2, 3x3, 6x6 pyramid (./sppnet_effnet-lite0_c4.py's backbone and head).
# 128 windows per image, 32 positives (IoU >= 0.5) and 96 background: R-CNN's batches
# (./rcnn_effnet-lite0.py), so that the two differ only in where the features come from.
_base_ = ['./sppnet_effnet-lite0_c4.py']
model = dict(
    _delete_=True, type='FastRCNN', data_preprocessor={{_base_.model.data_preprocessor}},
    backbone={{_base_.model.backbone}}, roi_head={{_base_.model.roi_head}},
    train_cfg=dict(rcnn={{_base_.model.train_cfg.rcnn}}), test_cfg=dict(rcnn={{_base_.model.test_cfg.rcnn}}))
