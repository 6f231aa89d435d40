# All-point (area) VOC AP at IoU 0.4 (DeepForest's convention for tree crowns; prefix
# iou40/) and over the COCO-style range 0.5:0.05:0.95 (prefix voc_range/: AP50, AP75 and
# their mean, voc_range/mAP), and AP40 / AP50 per object size in stride-16 cells (< 2, 2-4,
# 4-8, >= 8 cells a side; prefix size/, mmdet_plugin's VOCSizeMetric: mmdet's VOCMetric
# cannot report scale_ranges). The pretrained recipes use it on both data sets, so the
# tree and synthetic tables have the same columns:
#     val_evaluator = {{_base_.voc_ap40_and_range}}
#     test_evaluator = val_evaluator
voc_ap40_and_range = [
    dict(type='VOCMetric', metric='mAP', iou_thrs=[0.4], eval_mode='area', prefix='iou40'),
    dict(type='VOCMetric', metric='mAP', iou_thrs=[round(0.5 + 0.05 * i, 2) for i in range(10)], eval_mode='area',
         prefix='voc_range'),
    dict(type='VOCSizeMetric', iou_thrs=[0.4, 0.5], stride=16, cell_edges=(2, 4, 8), eval_mode='area', prefix='size'),
]
