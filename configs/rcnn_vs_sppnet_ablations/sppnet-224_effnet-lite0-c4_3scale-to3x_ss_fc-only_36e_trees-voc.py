# ./sppnet_effnet-lite0-c4_3scale-to3x_ss_fc-only_36e_trees-voc.py with the paper's scale rule: each window
# pooled from the scale where its area is closest to 224 x 224 px (He et al., section 4.2),
# which sends most tree windows (45-54 px at 400 px) to the 1200 px scale.
_base_ = ['./sppnet_effnet-lite0-c4_3scale-to3x_ss_fc-only_36e_trees-voc.py']
model = dict(target_size=224)
