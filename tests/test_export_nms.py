"""The whole-detector export and the config's NMS settings (``nms_settings`` in
``mmdet_plugin.deploy.whole_detector``): what it carries gives mmdet's detections in ONNX
Runtime, what it cannot reproduce is refused by name, and the cap on detections per image
travels in the model's metadata."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet", reason="needs mmdet")
pytest.importorskip("onnxruntime", reason="needs the [export] extra")
pytest.importorskip("onnxscript", reason="needs the [export] extra")

from test_deploy import DEMO, _build, _export, _mmdet, _synthetic_images  # noqa: E402


def _matched(want: dict, got: dict) -> float:
    """The smaller of the shares matched each way (``match_detections``: one to one, same
    label, IoU >= 0.99, score within 1e-3): a box either side lacks counts against it."""
    from mmdet_plugin.deploy.whole_detector import match_detections

    return min(match_detections(want, got), match_detections(got, want))


@pytest.fixture(scope="module")
def _demo_as_built():
    import mmdet_plugin  # noqa: F401
    from mmdet.apis import init_detector
    from mmengine.config import Config

    cfg = Config.fromfile(str(DEMO))
    return init_detector(cfg, None, device="cpu").eval(), cfg


@pytest.fixture
def plain_demo(_demo_as_built):
    """The demo detector, as built (nothing runs it), and its Config: for checks of its
    ``test_cfg`` alone, which is restored after the test."""
    model, cfg = _demo_as_built
    test_cfg = model.test_cfg
    yield model, cfg
    model.test_cfg = test_cfg


def _with_test_cfg(model, **stages):
    """Sets ``model.test_cfg`` to a copy with the stages' keys replaced (``nms`` as a whole)."""
    from mmengine.config import ConfigDict

    test_cfg = copy.deepcopy(model.test_cfg.to_dict())
    for stage, values in stages.items():
        test_cfg[stage].update(values)
    model.test_cfg = ConfigDict(test_cfg)


# --------------------------------------------------------------------------- carried
@pytest.mark.slow
def test_class_agnostic_nms_gives_mmdets_detections_in_onnx_runtime(tmp_path, tmp_path_factory):
    """Class-agnostic NMS in both stages with ``split_thr`` above the most boxes that can
    enter, and the RPN's nms ``max_num`` under its ``max_per_img``: ONNX Runtime gives
    mmdet's boxes (>= 99 % matched both ways; >= 90 % on an image where mmdet's kept scores
    tie, see test_deploy's ``_assert_same_detections``). rcnn's class-aware NMS gives other
    boxes here (< 90 % matched), so that setting is exercised; the RPN's, across levels,
    keeps the same proposals on this demo (its top proposals lie on one level). With no
    cap the metadata says -1."""
    from sppnet_runtime import OnnxDetector

    rcnn_nms = dict(type="nms", iou_threshold=0.5, class_agnostic=True, split_thr=2000)
    model, cfg = _build(DEMO, rpn=dict(nms=dict(type="nms", iou_threshold=0.7, class_agnostic=True, max_num=200,
                                                split_thr=5000)),
                        rcnn=dict(score_thr=0.01, max_per_img=-1, nms=rcnn_nms))
    assert model.roi_head.test_cfg.nms == rcnn_nms  # what mmdet runs
    detector = OnnxDetector(_export(model, cfg, tmp_path / "agnostic.onnx"))
    assert json.loads(detector.session.get_modelmeta().custom_metadata_map["max_per_img"]) == -1
    noise = np.random.default_rng(4).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    matched = total = 0
    aware_shares = []
    for rgb in _synthetic_images(tmp_path_factory) + [noise]:
        want, got = _mmdet(model, rgb), detector(rgb)
        share = _matched(want, got)
        if len(np.unique(want["scores"])) < len(want["scores"]):
            assert share >= 0.9, share
        else:
            matched += share * len(want["scores"])
            total += len(want["scores"])
        model.roi_head.test_cfg.nms.class_agnostic = False
        aware_shares.append(_matched(_mmdet(model, rgb), want))
        model.roi_head.test_cfg.nms.class_agnostic = True
    assert total > 0 and matched / total >= 0.99, f"{matched:.0f} of {total} boxes matched"
    assert np.mean(aware_shares) < 0.9, aware_shares


@pytest.mark.parametrize("max_per_img, rcnn_nms", [(-1, dict(score_threshold=0.5)), (100, dict(max_num=40))],
                         ids=["score_threshold", "max_num"])
def test_the_graphs_nms_takes_the_setting_from_the_config(max_per_img, rcnn_nms, tmp_path_factory):
    """rcnn's nms ``score_threshold`` (above ``score_thr``) and ``max_num`` (under
    ``max_per_img``) reach the graph's NMS: ``WholeDetector`` run eagerly (its NMS op is
    mmcv's; the op's ONNX translation: the next test and test_deploy's) gives mmdet's
    boxes, which differ without the setting (< 90 % matched)."""
    from mmdet_plugin.deploy.whole_detector import WholeDetector

    nms = dict(type="nms", iou_threshold=0.5, **rcnn_nms)
    model, _ = _build(DEMO, rcnn=dict(max_per_img=max_per_img, nms=nms))
    graph = WholeDetector(model).eval()
    images = _synthetic_images(tmp_path_factory)  # 256 x 256: the config's size, no resize
    shares, without = [], []
    for rgb in images:
        with torch.no_grad():
            boxes, scores, labels = graph(torch.from_numpy(rgb), torch.tensor(rgb.shape[:2]),
                                          torch.tensor([1.0, 1.0], dtype=torch.float64))
        want = _mmdet(model, rgb)
        shares.append(_matched(want, dict(bboxes=boxes.numpy(), scores=scores.numpy(), labels=labels.numpy())))
        model.roi_head.test_cfg.nms = dict(type="nms", iou_threshold=0.5)
        without.append(_matched(_mmdet(model, rgb), want))
        model.roi_head.test_cfg.nms = nms
    assert np.mean(shares) >= 0.99 and min(shares) >= 0.9, shares
    assert np.mean(without) < 0.9, without


def test_the_nms_ops_own_score_threshold_in_onnx_is_mmcvs(tmp_path):
    """mmcv's nms ``score_threshold`` filters after the class offsets, which come from the
    boxes above mmdet's ``score_thr``: the ONNX translation against mmcv (the eager op)
    on random class-aware boxes, and the threshold removes boxes."""
    import onnxruntime as ort

    from mmdet_plugin.deploy import nms_op

    class Step(torch.nn.Module):
        def forward(self, boxes, scores, idxs):
            return nms_op.batched_nms(boxes, scores, idxs, 0.5, 0.05, 1 << 30, 0.4)

    rng = np.random.default_rng(0)

    def sample(n):
        xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + rng.uniform(0, 30, (n, 2)).astype(np.float32)], 1)
        return boxes, rng.random(n, np.float32), rng.integers(0, 4, n)

    n = torch.export.Dim("n", min=2)
    path = tmp_path / "nms.onnx"
    torch.onnx.export(Step(), tuple(torch.from_numpy(a) for a in sample(50)), str(path), dynamo=True,
                      dynamic_shapes=({0: n}, {0: n}, {0: n}), custom_translation_table=nms_op.translation_table(),
                      external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for size in (0, 1, 40, 400):
        arrays = sample(size)
        got = session.run(None, dict(zip(names, arrays)))[0]
        tensors = [torch.from_numpy(a) for a in arrays]
        want = nms_op.batched_nms(*tensors, 0.5, 0.05, 1 << 30, 0.4)
        assert got.tolist() == want.tolist(), size
        assert (arrays[1][got] > 0.4).all()
        if size >= 40:
            assert len(nms_op.batched_nms(*tensors, 0.5, 0.05, 1 << 30, 0.0)) > len(want)


def test_settings_that_change_nothing_or_are_carried(plain_demo):
    """``split_thr`` with class-aware NMS, mmcv's deprecated ``iou_thr``, ``offset=0``,
    a non-positive nms ``score_threshold`` or ``max_num``; and class-agnostic NMS where
    one group is all there is: accepted, with the values the graph uses."""
    from mmdet_plugin.deploy.whole_detector import check_exportable, nms_settings

    model, cfg = plain_demo
    nms = dict(type="nms", iou_thr=0.6, offset=0, split_thr=1, score_threshold=0, max_num=-1)
    _with_test_cfg(model, rcnn=dict(nms=nms))
    check_exportable(model, cfg)
    assert nms_settings(model, "rcnn") == dict(iou_threshold=0.6, class_agnostic=False, score_threshold=0.0,
                                               max_num=-1)
    _with_test_cfg(model, rcnn=dict(nms=dict(iou_threshold=0.5, class_agnostic=True, split_thr=1501)))
    assert nms_settings(model, "rcnn")["class_agnostic"]  # 300 proposals x 5 classes < 1501
    num_classes = model.roi_head.bbox_head.num_classes
    try:
        model.roi_head.bbox_head.num_classes = 1  # one class id: split_thr cannot matter
        _with_test_cfg(model, rcnn=dict(nms=dict(iou_threshold=0.5, class_agnostic=True, split_thr=1)))
        assert nms_settings(model, "rcnn")["class_agnostic"]
    finally:
        model.roi_head.bbox_head.num_classes = num_classes


# --------------------------------------------------------------------------- refused
@pytest.mark.parametrize("stage, values, message", [
    ("rcnn", dict(nms=dict(type="nms", iou_threshold=0.5, offset=1)),
     "model.test_cfg.rcnn.nms.offset=1: only offset 0 is exported"),
    ("rpn", dict(nms=dict(type="soft_nms", iou_threshold=0.7)), "model.test_cfg.rpn.nms.type='soft_nms'"),
    ("rcnn", dict(nms=dict(type="nms", iou_threshold=0.5, sigma=0.5)),
     "model.test_cfg.rcnn.nms.sigma=0.5: not a setting of mmcv's nms"),
    ("rcnn", dict(nms=dict(type="nms", iou_threshold=1.5)), "model.test_cfg.rcnn.nms.iou_threshold=1.5"),
    ("rcnn", dict(nms=dict(type="nms")), "model.test_cfg.rcnn.nms.iou_threshold=None"),
    ("rpn", dict(nms=dict(iou_thr=0.7, iou_threshold=0.7)), "model.test_cfg.rpn.nms: both iou_thr and iou_threshold"),
    ("rcnn", dict(nms=None), "model.test_cfg.rcnn.nms is missing or None"),
    ("rcnn", dict(nms=dict(iou_threshold=0.5, class_agnostic="yes")),
     "model.test_cfg.rcnn.nms.class_agnostic='yes': expected True or False"),
    ("rcnn", dict(nms=dict(iou_threshold=0.5, max_num=1.5)), "model.test_cfg.rcnn.nms.max_num=1.5: expected an int"),
    ("rcnn", dict(nms=dict(iou_threshold=0.5, score_threshold="0.3")),
     "model.test_cfg.rcnn.nms.score_threshold='0.3': expected a number"),
    # 300 proposals x 5 classes can reach 1500: mmcv would run NMS per class from there on.
    ("rcnn", dict(nms=dict(iou_threshold=0.5, class_agnostic=True, split_thr=1500)),
     "model.test_cfg.rcnn.nms.split_thr=1500 with class_agnostic=True: .* up to 1500 boxes can "
     r"\(300 proposals x 5 classes\).* set split_thr above 1500"),
    ("rpn", dict(nms_pre=-1, nms=dict(iou_threshold=0.7, class_agnostic=True)),
     r"model.test_cfg.rpn.nms.split_thr=10000 \(mmcv's default\) with class_agnostic=True: .* no bound"),
    ("rpn", dict(max_per_img=-1), r"model.test_cfg.rpn.max_per_img=-1: mmdet's RPN keeps results\[:max_per_img\]"),
], ids=["offset", "type", "unknown", "iou-range", "iou-missing", "iou-twice", "none", "agnostic-type", "max_num-type",
        "score-type", "agnostic-split-rcnn", "agnostic-split-rpn", "rpn-max_per_img"])
def test_each_nms_setting_the_graph_cannot_reproduce_is_refused_by_name(plain_demo, stage, values, message):
    from mmdet_plugin.deploy.whole_detector import ExportError, check_exportable

    model, cfg = plain_demo
    _with_test_cfg(model, **{stage: values})
    with pytest.raises(ExportError, match=message):
        check_exportable(model, cfg)


# --------------------------------------------------------------------------- metadata
@pytest.mark.parametrize("rcnn, cap", [
    (dict(max_per_img=100), 100),
    (dict(max_per_img=100, nms=dict(type="nms", iou_threshold=0.5, max_num=40)), 40),
    (dict(max_per_img=30, nms=dict(type="nms", iou_threshold=0.5, max_num=40)), 30),
    (dict(max_per_img=0), -1),
    (dict(max_per_img=-1, nms=dict(type="nms", iou_threshold=0.5, max_num=-1)), -1),
])
def test_the_metadata_carries_the_cap_on_detections_per_image(plain_demo, rcnn, cap):
    """``max_per_img``: the most detections the graph returns for one image or window, the
    rcnn ``max_per_img`` or its nms's smaller ``max_num``; -1 where mmdet caps nothing
    (both <= 0)."""
    from mmdet_plugin.deploy.whole_detector import metadata

    model, cfg = plain_demo
    _with_test_cfg(model, rcnn=rcnn)
    assert json.loads(metadata(cfg, model, ["a"] * 5)["max_per_img"]) == cap
