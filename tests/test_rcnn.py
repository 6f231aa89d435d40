"""R-CNN's crop (context, warp, clipping) against hand-computed values, and the detector."""
import pytest
import torch

from mmdet_plugin.models.utils.region_warp import context_scale, context_windows, warp_regions


def _ramp(h=6, w=8):
    """One image, one channel, pixel (y, x) = 10 y + x + 1 (nothing in it is 0)."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return (10 * y + x + 1)[None, None]


def test_rcnn_context_is_16_of_227_px_on_each_side():
    assert context_scale() == pytest.approx(227 / 195)
    # A 195 px box becomes a 227 px window about the same centre: 16 px more on each side.
    window = context_windows(torch.tensor([[100.0, 50.0, 295.0, 245.0]]), context_scale())
    assert torch.allclose(window, torch.tensor([[84.0, 34.0, 311.0, 261.0]]))


# Scale 2 (crop 8, padding 2), 4 x 4 crops of the 8 x 6 ramp, values hand-computed.
# Top left: box (0, 0, 2, 2) -> window (-1, -1, 3, 3): x = y = -0.5, 0.5, 1.5, 2.5. Outside the
# image (-0.5): 0. Inside, bilinear between pixel centres (pixel p at p + 0.5) of a linear
# ramp: value(y, x) = 10 (y - 0.5) + (x - 0.5) + 1, with x - 0.5 held at 0 below the first centre.
# Bottom right: box (6, 4, 8, 6) -> window (5, 3, 9, 7): x = 5.5, 6.5, 7.5, 8.5 and
# y = 3.5, 4.5, 5.5, 6.5; x = 8.5 >= 8 and y = 6.5 >= 6 are outside.
@pytest.mark.parametrize("box, want", [
    ((0, 0, 2, 2), [[0, 0, 0, 0], [0, 1, 2, 3], [0, 11, 12, 13], [0, 21, 22, 23]]),
    ((6, 4, 8, 6), [[36, 37, 38, 0], [46, 47, 48, 0], [56, 57, 58, 0], [0, 0, 0, 0]]),
], ids=["top-left: zero outside the image", "bottom-right: clipped there"])
def test_crop_at_a_corner_against_hand_computed_values(box, want):
    crop = warp_regions(_ramp(), torch.tensor([[0.0, *box]]), 4, context_scale(8, 2))[0, 0]
    assert torch.allclose(crop, torch.tensor(want, dtype=torch.float32))


def test_crops_come_from_their_own_image_in_roi_order():
    images = torch.cat([_ramp(), 100 + _ramp()])
    rois = torch.tensor([[1.0, 2, 1, 6, 5], [0.0, 2, 1, 6, 5], [1.0, 0, 0, 8, 6]])
    crops = warp_regions(images, rois, 5, 1.0)
    assert torch.allclose(crops[0], crops[1] + 100)
    assert torch.allclose(crops[2], warp_regions(images[1:], rois[2:].clone().index_fill_(1, torch.tensor([0]), 0),
                                                 5, 1.0)[0])
    # Scale 1 over the whole 8 x 6 image, 5 x 5 crop: samples at x = (j + 0.5) 8 / 5 and
    # y = (i + 0.5) 6 / 5, all inside the outer pixel centres: the ramp exactly.
    x = (torch.arange(5) + 0.5) * 8 / 5 - 0.5
    y = (torch.arange(5) + 0.5) * 6 / 5 - 0.5
    assert torch.allclose(crops[2, 0], 100 + 10 * y[:, None] + x[None, :] + 1, atol=1e-5)


def test_bad_rois_are_refused_before_any_work():
    with pytest.raises(ValueError, match="rois must be"):
        warp_regions(_ramp(), torch.zeros(3, 4), 4, 1.0)
    with pytest.raises(ValueError, match="padding"):
        context_scale(32, 16)


mmdet = pytest.importorskip("mmdet", reason="the detector needs mmdet")


def _extractor(chunk_size):
    import mmdet_plugin  # noqa: F401
    from mmdet.registry import MODELS

    extractor = MODELS.build(dict(type="WarpedRegionExtractor", crop_size=8, chunk_size=chunk_size))
    conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    extractor.attach_conv(lambda x: (conv(x), ))
    return extractor, conv


def test_chunks_change_nothing_and_the_conv_is_not_the_extractors():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 20, 24)
    rois = torch.tensor([[0, 1.0, 2, 9, 12], [1, 0, 0, 24, 20], [0, 15, 10, 23, 19], [1, 4, 4, 8, 6],
                         [1, 20, 15, 24, 20]])
    small, conv = _extractor(2)
    large, _ = _extractor(100)
    large.attach_conv(small._conv)
    out = small((images, ), rois)
    assert out.shape == (5, 4, 4, 4)
    assert torch.allclose(out, large((images, ), rois), atol=1e-6)  # conv batch sizes differ: rounding only
    assert list(small.parameters()) == []  # the backbone's weights are the detector's
    # The same as running the conv on R-CNN crops one by one.
    for k in range(5):
        crop = warp_regions(images, rois[k:k + 1], 8, context_scale())
        assert torch.allclose(out[k], conv(crop)[0], atol=1e-6)


def test_rcnn_refuses_another_extractor_and_a_batch_without_proposals():
    import mmdet_plugin  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from cases import random_batch

    register_all_modules()
    cfg = Config.fromfile("configs/rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_36e_trees-voc.py")
    cfg.model.backbone.pretrained = False
    bad = cfg.model.copy()
    bad.roi_head = dict(bad.roi_head, bbox_roi_extractor=dict(type="SPPRoIExtractor", featmap_strides=[16]))
    with pytest.raises(ValueError, match="WarpedRegionExtractor"):
        MODELS.build(bad)
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match="proposal_file"):
        model(**random_batch(model, 1, with_proposals=False), mode="loss")
