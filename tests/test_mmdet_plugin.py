"""The MMDetection plugin: registered modules, every config, the data checks."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# every config in every folder; _base_/ holds pieces, not configs
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.py") if "_base_" not in p.parts)

mmdet = pytest.importorskip("mmdet", reason="the plugin needs mmdet")

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402

import mmdet_plugin  # noqa: E402,F401

from cases import random_batch, total_loss  # noqa: E402

register_all_modules()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_builds_and_runs_a_loss_forward(path):
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None  # no download: weights stay random
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    losses = model(**random_batch(model, cfg.model.roi_head.bbox_head.num_classes), mode="loss")
    total = total_loss(losses)
    assert torch.isfinite(total)
    total.backward()
    if "sppnet" in path.name:
        assert type(model.roi_head.bbox_roi_extractor).__name__ == "SPPRoIExtractor"
        assert model.roi_head.bbox_head.shared_fcs[0].weight.grad is not None


def test_extractor_fpn_mapping_matches_mmdet():
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    from mmdet_plugin import SPPRoIExtractor

    theirs = SingleRoIExtractor(dict(type="RoIAlign", output_size=7, sampling_ratio=0), 8, [4, 8, 16, 32])
    ours = SPPRoIExtractor(8, [4, 8, 16, 32])
    wh = torch.exp(torch.empty(500, 2).uniform_(1, 7))
    rois = torch.cat([torch.zeros(500, 1), torch.zeros(500, 2), wh], dim=1)
    assert torch.equal(ours.map_roi_levels(rois, 4), theirs.map_roi_levels(rois, 4))


def test_extractor_sppnet_mapping_picks_window_closest_to_224():
    from mmdet_plugin import SPPRoIExtractor

    ext = SPPRoIExtractor(8, [4, 8, 16, 32], level_mapping="sppnet")
    # 224x224 at stride 16 is 14x14 cells: level 2. 56x56 is 14x14 cells at stride 4.
    # 448x448: 28x28 at stride 16 (784), 14x14 at stride 32 (196) -> level 3.
    rois = torch.tensor([[0, 0, 0, 224, 224.], [0, 0, 0, 56, 56.], [0, 0, 0, 448, 448.],
                         [0, 0, 0, 2000, 2000.], [0, 0, 0, 4, 4.]])
    assert ext.map_roi_levels(rois, 4).tolist() == [2, 0, 3, 3, 0]


def test_extractor_output_and_single_level():
    from mmdet_plugin import SPPRoIExtractor

    feats = [torch.randn(2, 8, 32, 32), torch.randn(2, 8, 16, 16)]
    rois = torch.tensor([[0, 0, 0, 20, 30.], [1, 10, 10, 120, 100.]])
    out = SPPRoIExtractor(8, [4, 8])(feats, rois)
    assert out.shape == (2, 8, 50)
    single = SPPRoIExtractor(8, [16], pyramid=(1, 2))(feats[:1], rois)
    assert single.shape == (2, 8, 5)


def test_extractor_refuses_roi_layer():
    from mmdet_plugin import SPPRoIExtractor

    with pytest.raises(ValueError, match="roi_layer=None"):
        SPPRoIExtractor(8, [4], roi_layer=dict(type="RoIAlign", output_size=7))


def test_every_level_gets_a_gradient_when_one_level_has_no_roi():
    from mmdet_plugin import SPPRoIExtractor

    feats = [torch.randn(1, 4, 32, 32, requires_grad=True), torch.randn(1, 4, 16, 16, requires_grad=True)]
    rois = torch.tensor([[0, 0, 0, 20, 20.], [0, 5, 5, 30, 40.]])  # both small: level 0 only
    ext = SPPRoIExtractor(4, [4, 8])
    assert ext.map_roi_levels(rois, 2).tolist() == [0, 0]
    ext(feats, rois).sum().backward()
    assert feats[1].grad is not None and torch.count_nonzero(feats[1].grad) == 0
    assert torch.count_nonzero(feats[0].grad) > 0


@pytest.mark.slow
def test_missing_voc_stops_with_a_message_not_a_stack_trace(tmp_path):
    # tools/train.py is what `mim train` runs; it must exit non-zero with the message and
    # no traceback. (mim itself then adds a CalledProcessError traceback of its own for
    # any failed run: openmim 0.3.9 calls subprocess.check_call and lets it raise.)
    train_py = Path(mmdet.__file__).parent / ".mim" / "tools" / "train.py"
    proc = subprocess.run([sys.executable, str(train_py), str(ROOT / "configs/sppnet_r50_voc.py"),
                           "--work-dir", str(tmp_path / "wd")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "data/VOCdevkit" in out and "make demo" in out
    assert "Traceback" not in out
    mim = Path(sys.executable).parent / "mim"
    proc = subprocess.run([str(mim), "train", "mmdet", str(ROOT / "configs/sppnet_r50_voc.py"),
                           "--work-dir", str(tmp_path / "wd")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "data/VOCdevkit" in proc.stdout + proc.stderr


def test_head_refuses_a_pyramid_or_width_that_is_not_the_extractors():
    from mmdet_plugin import SPPBBoxHead, SPPRoIExtractor

    feats = [torch.randn(1, 8, 32, 32)]
    rois = torch.tensor([[0, 0, 0, 60, 60.]])
    pooled = SPPRoIExtractor(8, [4], pyramid=(1, 2, 3))(feats, rois)  # (1, 8, 14)
    with pytest.raises(ValueError, match=r"expects \(K, 8, 50\).*got \(1, 8, 14\).*bbox_head.pyramid"):
        SPPBBoxHead(pyramid=(1, 2, 3, 6), in_channels=8, fc_out_channels=16, num_classes=3)(pooled)
    with pytest.raises(ValueError, match=r"expects \(K, 16, 14\)"):
        SPPBBoxHead(pyramid=(1, 2, 3), in_channels=16, fc_out_channels=16, num_classes=3)(pooled)
    cls, reg = SPPBBoxHead(pyramid=(1, 2, 3), in_channels=8, fc_out_channels=16, num_classes=3)(pooled)
    assert cls.shape == (1, 4) and reg.shape == (1, 12)


def test_extractor_maps_levels_before_rescaling_rois_as_mmdet_does():
    """With roi_scale_factor, the level comes from the RoI as given (mmdet's
    SingleRoIExtractor order), then the RoI is scaled about its centre and pooled there."""
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    from mmdet_plugin import SPPRoIExtractor
    from spp_triton import spp_roi_pool

    torch.manual_seed(0)
    feats = [torch.randn(1, 4, 64, 64), torch.randn(1, 4, 32, 32)]
    rois = torch.tensor([[0, 10, 10, 70, 70.], [0, 40, 40, 160, 170.]])  # 60 px: level 0; 2x = 120 px: level 1
    ext = SPPRoIExtractor(4, [4, 8])
    theirs = SingleRoIExtractor(dict(type="RoIAlign", output_size=2, sampling_ratio=0), 4, [4, 8])
    levels = theirs.map_roi_levels(rois, 2)
    assert levels.tolist() == [0, 1] and ext.map_roi_levels(theirs.roi_rescale(rois, 2.0), 2).tolist()[0] == 1
    got = ext(feats, rois, roi_scale_factor=2.0)
    want = spp_roi_pool(feats, theirs.roi_rescale(rois, 2.0), spatial_scales=(1 / 4, 1 / 8), roi_levels=levels)
    assert torch.equal(got, want)


def test_channels_last_hook_converts_the_model_and_its_batches():
    """ChannelsLastHook (in configs/_base_/cpu_runtime.py): the model's convolution
    weights and the preprocessed batch are channels-last, a loss step runs, and a second
    before_run changes nothing."""
    from types import SimpleNamespace

    from mmdet_plugin import ChannelsLastHook

    cfg = Config.fromfile(str(ROOT / "configs" / "synth_demo" / "sppnet_r18-w16_fpn_24e_synth-voc.py"))
    assert {"type": "ChannelsLastHook"} in [dict(h) for h in cfg.custom_hooks]
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    runner = SimpleNamespace(model=model)
    ChannelsLastHook().before_run(runner)
    wrapped = model.data_preprocessor.forward
    ChannelsLastHook().before_run(runner)
    assert model.data_preprocessor.forward is wrapped  # not wrapped twice
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    batch = random_batch(model, cfg.model.roi_head.bbox_head.num_classes)
    assert batch["inputs"].is_contiguous(memory_format=torch.channels_last)
    model.train()
    loss = total_loss(model(**batch, mode="loss"))
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.conv1.weight.grad.abs().sum() > 0


def test_channels_last_hook_keeps_mmcv_roi_align_right():
    """mmcv's CPU roi_align indexes its input as NCHW whatever its strides: under the hook
    the stock RoIAlign head (the baseline configs) must pool exactly what it pools
    without it."""
    from types import SimpleNamespace

    from mmdet_plugin import ChannelsLastHook

    cfg = Config.fromfile(str(ROOT / "configs" / "synth_demo" / "faster-rcnn_r18-w16_fpn_24e_synth-voc.py"))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    torch.manual_seed(1)
    feats = [torch.randn(2, 64, 64 // 2 ** i, 64 // 2 ** i) for i in range(4)]
    rois = torch.tensor([[0, 3.0, 5, 40, 50], [1, 10, 2, 60, 30], [0, 0, 0, 255, 255]])
    extractor = model.roi_head.bbox_roi_extractor
    want = extractor(feats, rois)
    ChannelsLastHook().before_run(SimpleNamespace(model=model))
    got = extractor([f.contiguous(memory_format=torch.channels_last) for f in feats], rois)
    assert torch.equal(got, want)


def test_extractor_roi_scale_factor_from_the_config_enlarges_every_roi():
    """mmdet's StandardRoIHead calls the extractor without roi_scale_factor; set in the
    constructor it applies anyway: the same as pooling the RoIs enlarged about their centres
    by hand (here by R-CNN's context, 227 / 195), levels chosen before enlarging."""
    from mmdet_plugin import SPPRoIExtractor

    torch.manual_seed(0)
    feats = [torch.randn(1, 4, 40, 40), torch.randn(1, 4, 20, 20)]
    rois = torch.tensor([[0, 10., 12., 60., 70.], [0, 30., 5., 150., 130.], [0, 100., 90., 118., 101.]])
    factor = 227 / 195
    with_context = SPPRoIExtractor(4, [4, 8], finest_scale=56, roi_scale_factor=factor, backend="torch")
    plain = SPPRoIExtractor(4, [4, 8], finest_scale=56, backend="torch")
    centre, half = (rois[:, 1:3] + rois[:, 3:5]) / 2, (rois[:, 3:5] - rois[:, 1:3]) / 2 * factor
    enlarged = torch.cat([rois[:, :1], centre - half, centre + half], dim=1)
    levels = plain.map_roi_levels(rois, 2)
    assert levels.tolist() == [0, 1, 0]
    want = plain.pool(feats, enlarged, levels)
    torch.testing.assert_close(with_context(feats, rois), want, rtol=0, atol=0)
    assert not torch.equal(plain(feats, rois), want)
    with pytest.raises(ValueError, match="roi_scale_factor must be positive"):
        SPPRoIExtractor(4, [4], roi_scale_factor=0)


def _size_case():
    """One image, one class: a 20 px crown found (0.8) behind a 20 px false positive (0.95),
    a 40 px crown missed, a 100 px crown found (0.9). Legacy VOC areas: x2 - x1 + 1."""
    ann = dict(bboxes=np.array([[10, 10, 29, 29], [50, 200, 89, 239], [100, 100, 199, 199]], np.float32),
               labels=np.zeros(3, np.int64), bboxes_ignore=np.zeros((0, 4), np.float32),
               labels_ignore=np.zeros(0, np.int64))
    dets = [np.array([[300, 300, 319, 319, 0.95], [100, 100, 199, 199, 0.9], [10, 10, 29, 29, 0.8]], np.float32)]
    return [(ann, dets)]


def test_size_metric_gives_each_bin_its_hand_computed_ap():
    from mmdet_plugin.evaluation import VOCSizeMetric

    metric = VOCSizeMetric(iou_thrs=[0.5], eval_mode="area")
    metric.dataset_meta = dict(classes=("Tree",))
    got = metric.compute_metrics(_size_case())
    # < 2 cells (< 32 px): FP then TP -> precision 1/2 at recall 1; 2-4: missed; 4-8: found;
    # >= 8: no ground truth (AP 0, gts 0). The 20 px false positive counts in its bin only.
    assert got == {"AP50_lt2cells": 0.5, "gts_lt2cells": 1, "AP50_2to4cells": 0.0, "gts_2to4cells": 1,
                   "AP50_4to8cells": 1.0, "gts_4to8cells": 1, "AP50_ge8cells": 0.0, "gts_ge8cells": 0}


def test_mmdet_voc_metric_cannot_report_scale_ranges():
    """Why VOCSizeMetric exists: mmdet 3.3's VOCMetric rounds eval_map's per-range list.
    If this starts passing through, mmdet fixed it and VOCSizeMetric can go."""
    from mmdet.evaluation import VOCMetric

    metric = VOCMetric(iou_thrs=[0.5], eval_mode="area", scale_ranges=[(0, 32), (32, 1e8)])
    metric.dataset_meta = dict(classes=("Tree",))
    with pytest.raises(TypeError):
        metric.compute_metrics(_size_case())
