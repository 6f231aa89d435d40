# SPP-Align: the SPP extractor's patch that pools the same pyramid on RoIAlign's
# continuous coordinates (sampling="bilinear", spp_triton.spp_roi_pool): 2 x 2 bilinear
# samples per bin of the finest grid, mmcv's half-pixel alignment, max pooling. A config
# applies it over any SPP config with
#     model = dict(roi_head=dict(bbox_roi_extractor={{_base_.spp_align}}))
spp_align = dict(projection=None, sampling='bilinear', sampling_ratio=2, aligned=True)
