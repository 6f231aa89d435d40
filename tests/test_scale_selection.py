"""The paper's scale-selection rule (``mmdet_plugin/models/utils/scale_selection.py``) against a plain
reference, ties included. The module needs only torch, so it is loaded from its file and
these tests run without mmdet."""
import importlib.util
from pathlib import Path

import torch

from reference import closest_area_reference

_spec = importlib.util.spec_from_file_location(
    "scale_selection", Path(__file__).resolve().parent.parent / "mmdet_plugin" / "models" / "utils" / "scale_selection.py")
scale_selection = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale_selection)
closest_area_level = scale_selection.closest_area_level


def test_scale_selection_matches_the_plain_rule_on_the_paper_scales():
    scales, base = (480, 576, 688, 864, 1200), 688
    strides = [16 * base / s for s in scales]
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(400, 2, generator=g) * 600
    wh = torch.exp(torch.rand(400, 2, generator=g) * 6.5)  # 1 to 665 px
    rois = torch.cat([torch.zeros(400, 1), xy, xy + wh], 1).double()
    ours = closest_area_level(rois, strides).tolist()
    assert ours == closest_area_reference(rois, strides, 224.0, 16.0)
    assert len(set(ours)) == len(scales)  # every scale gets some RoIs
    # A 224 x 224 window at the pipeline's scale is exactly the target there.
    assert closest_area_level(torch.tensor([[0, 10, 10, 234, 234.]]), strides).tolist() == [2]


def test_scale_selection_ties_go_to_the_first_map():
    # A 7 x 7 window is 49 cells at stride 1 and 1 cell at stride 7; the target is
    # 5 x 5 = 25 cells: |49 - 25| == |1 - 25|, an exact tie.
    # A 35 x 35 window (1225 or 25 cells) is no tie; a point (0 cells) ties.
    rois = torch.tensor([[0, 0, 0, 7, 7.], [0, 0, 0, 35, 35.], [0, 3, 3, 3, 3.]])
    assert closest_area_level(rois, [1, 7], target_size=5, base_stride=1).tolist() == [0, 1, 0]
    assert closest_area_level(rois, [7, 1], target_size=5, base_stride=1).tolist() == [0, 0, 0]
    assert closest_area_reference(rois, [1, 7], 5, 1) == [0, 1, 0]
    # Two maps of one stride always tie.
    assert closest_area_level(rois, [16, 16]).tolist() == [0, 0, 0]
