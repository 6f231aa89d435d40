# SPP-Align: the SPP extractor's patch that pools the same pyramid on RoIAlign's
# continuous coordinates (sampling="bilinear", spp_triton.spp_roi_pool): 2 x 2 bilinear
# samples per bin of the finest grid, mmcv's half-pixel alignment, max pooling. A config
# applies it over any SPP config with
#     model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
spp_align = dict(projection=None, sampling='bilinear', sampling_ratio=2, aligned=True)

# On one coarse C4 map (stride 16, objects 2-3 cells wide) the best SPP-Align head of the
# synthetic table averages adaptive samples (r = ceil(size / 8) per RoI) into a pyramid
# ending in 8 x 8: it beat mmdet's RoIAlign 7x7 head at every seed; on FPN max with
# r = 2 won (configs/synth_demo/README.md#spp-align-in-the-detector). The bbox head takes the same
# pyramid:
#     model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align_c4}},
#                                bbox_head=dict(pyramid={{_base_.spp_align_c4.pyramid}})))
spp_align_c4 = dict(projection=None, sampling='bilinear', sampling_ratio=0, aligned=True, mode='avg',
                    pyramid=(1, 2, 4, 8))
