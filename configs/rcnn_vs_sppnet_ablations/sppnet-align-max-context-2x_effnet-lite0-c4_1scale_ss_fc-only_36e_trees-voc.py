# Issue 30: the stride-8 combination's other road to more cells per window. Bilinear samples
# and R-CNN's context (./sppnet-align-max-context_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py) on the
# stride-16 map of 800 px tiles (./sppnet-2x_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py) instead of a
# stride-8 map of 400 px ones. One conv pass per tile, frozen.
_base_ = ['./sppnet-2x_effnet-lite0-c4_1scale_ss_fc-only_36e_trees-voc.py', '../_base_/models/spp_align.py']
# spp_align of ../_base_/models/spp_align.py, and the context factor of the -context configs.
model = dict(roi_head=dict(bbox_roi_extractor=dict(projection=None, sampling='bilinear', sampling_ratio=2,
                                                   aligned=True, roi_scale_factor=227 / 195)))
