"""SPP-net's multi-scale system: ``MultiScaleSPPNet`` (one
pooling call over every scale's map, training and inference on CPU), and SPP after a
shared head (mmdet's stock C4 config with the SPP branch swapped in)."""
import math
from pathlib import Path

import pytest
import torch

mmdet = pytest.importorskip("mmdet", reason="the plugin needs mmdet")

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402

from mmdet_plugin import SPPRoIExtractor  # noqa: E402
from mmdet_plugin.models.roi_heads.roi_extractors.spp_roi_extractor import SHARED_HEAD_MESSAGE  # noqa: E402

from cases import random_batch, total_loss  # noqa: E402
from reference import closest_area_reference, spp_reference  # noqa: E402

register_all_modules()
ROOT = Path(__file__).resolve().parent.parent
MMDET_C4 = Path(mmdet.__file__).parent / ".mim" / "configs" / "faster_rcnn" / "faster-rcnn_r50-caffe_c4-1x_coco.py"


def _model(config="synth_demo/sppnet_r18-w16-c4_3scale_24e_synth-voc.py"):
    cfg = Config.fromfile(str(ROOT / "configs" / config))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def _pool_calls(fn) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "spp_triton::spp_roi_pool")


def test_multiscale_detector_trains_and_predicts_with_one_pooling_call():
    model = _model()
    extractor = model.roi_head.bbox_roi_extractor
    assert model.scale_factors == (0.75, 1.0, 1.5)
    assert extractor.featmap_strides == [16 / 0.75, 16.0, 16 / 1.5] and extractor.level_mapping == "sppnet"
    assert extractor.target_size == 112.0
    model.train()
    data = random_batch(model, 5, sizes=((3, 128, 160), (3, 128, 160)))
    losses = {}

    def step():
        losses.update(model(**data, mode="loss"))

    assert _pool_calls(step) == 1
    total = total_loss(losses)
    assert torch.isfinite(total) and "loss_rpn_cls" in losses and "loss_cls" in losses
    total.backward()
    # Every scale's pass through the backbone gets gradient through the one pooling call.
    assert model.backbone.conv1.weight.grad is not None
    assert model.roi_head.bbox_head.shared_fcs[0].weight.grad is not None
    model.eval()
    data = random_batch(model, 5, training=False, sizes=((3, 128, 160), (3, 128, 160)))
    results = []
    with torch.no_grad():
        assert _pool_calls(lambda: results.extend(model(**data, mode="predict"))) == 1
    assert len(results) == 2 and results[0].pred_instances.bboxes.shape[1] == 4


def test_each_roi_is_pooled_from_its_scale_at_that_scale_s_true_spatial_scale():
    model = _model().eval()
    data = random_batch(model, 5, training=False, sizes=((3, 128, 160), (3, 128, 160)))
    with torch.no_grad():
        maps = model.extract_feat(data["inputs"])
        assert [m.shape[-1] for m in maps] == [8, 10, 15]  # ceil(160 f / 16), f = 0.75, 1, 1.5
        g = torch.Generator().manual_seed(4)
        xy = torch.rand(40, 2, generator=g) * 120
        rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(), xy,
                          xy + torch.rand(40, 2, generator=g) * 150 + 2], 1)
        ours = model.roi_head.bbox_roi_extractor(maps, rois)
    strides = [16 / f for f in model.scale_factors]
    levels = closest_area_reference(rois, strides, 112.0, 16.0)
    ref = spp_reference(list(maps), rois, [1 / t for t in strides], roi_levels=torch.tensor(levels))
    assert torch.equal(ours.double(), ref)


def test_multiscale_detector_refuses_bad_configs():
    base = Config.fromfile(str(ROOT / "configs" / "synth_demo" / "sppnet_r18-w16-c4_3scale_24e_synth-voc.py")).model
    base.backbone.init_cfg = None
    with pytest.raises(ValueError, match="base_scale"):
        MODELS.build(dict(base, base_scale=300))
    align = dict(type="SingleRoIExtractor", roi_layer=dict(type="RoIAlign", output_size=7), out_channels=64,
                 featmap_strides=[16])
    with pytest.raises(ValueError, match="must be SPPRoIExtractor"):
        MODELS.build(dict(base, roi_head=dict(base.roi_head, bbox_roi_extractor=align)))


def _stock_c4(**roi_head):
    cfg = Config.fromfile(str(MMDET_C4))
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.shared_head.init_cfg = None
    for key, value in roi_head.items():  # replaced whole, as a config's _delete_=True does
        cfg.model.roi_head[key] = value
    return cfg.model


SPP_HEAD = dict(type="SPPBBoxHead", in_channels=2048, fc_out_channels=256, num_classes=80)


@pytest.mark.skipif(not MMDET_C4.exists(), reason="mmdet's configs are not installed with it")
def test_stock_c4_with_the_spp_extractor_is_refused_when_built():
    model = _stock_c4(bbox_roi_extractor=dict(type="SPPRoIExtractor", out_channels=1024,
                                              featmap_strides=[16]), bbox_head=SPP_HEAD)
    cfg = Config(dict(model=model))
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg.model)
    assert SHARED_HEAD_MESSAGE in str(err.value) and "SPPBBoxHead" in SHARED_HEAD_MESSAGE
    # Without a shared head the extractor builds.
    assert isinstance(MODELS.build(dict(type="SPPRoIExtractor", out_channels=8, featmap_strides=[16])),
                      SPPRoIExtractor)


@pytest.mark.skipif(not MMDET_C4.exists(), reason="mmdet's configs are not installed with it")
@pytest.mark.slow
def test_stock_c4_with_spp_after_the_shared_head_trains():
    cfg = Config(dict(model=_stock_c4(bbox_head=SPP_HEAD)))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    losses = model(**random_batch(model, 80, sizes=((3, 128, 160),)), mode="loss")
    total = total_loss(losses)
    assert torch.isfinite(total)
    total.backward()
    fc6 = model.roi_head.bbox_head.shared_fcs[0]
    assert fc6.in_features == 2048 * 50 and fc6.weight.grad is not None
    assert model.roi_head.shared_head.layer4[0].conv1.weight.grad is not None


def test_whole_map_pool_in_the_bbox_head_matches_pooling_each_map():
    from mmdet_plugin import SPPBBoxHead

    from spp_triton import spatial_pyramid_pool

    head = SPPBBoxHead(in_channels=6, fc_out_channels=16, num_classes=3)
    maps = torch.randn(4, 6, 7, 7)
    direct = head(spatial_pyramid_pool(maps))
    for a, b in zip(head(maps), direct):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="bbox_head.in_channels"):
        head(torch.randn(4, 5, 7, 7))
    assert not math.isnan(float(direct[0].sum()))
