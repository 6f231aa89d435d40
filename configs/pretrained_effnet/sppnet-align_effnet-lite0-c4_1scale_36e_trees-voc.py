# SPP-Align with the synthetic C4 winner's settings (avg, adaptive r, pyramid 1/2/4/8) on
# the pretrained EfficientNet-Lite0's single stride-16 map and the tree tiles.
_base_ = ['./sppnet_effnet-lite0-c4_1scale_36e_trees-voc.py', '../_base_/models/spp_align.py']
model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align_c4}},
                           bbox_head=dict(pyramid={{_base_.spp_align_c4.pyramid}})))
