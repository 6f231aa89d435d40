"""Deployment: torch.export of the op's module, the mmdet extractor and the RoI stage, and
ONNX export (``spp_triton.export.onnx_export``) run in ONNX Runtime, bit for bit in max mode.

The ONNX tests need the ``[export]`` extra (onnx, onnxruntime, onnxscript) and skip
without it; the mmdet ones need mmdet.
"""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cases import FPN_SCALES, FPN_SHAPES, SPECIAL_BOXES, assert_bit_equal, bits, make_features, make_rois
from spp_triton import SpatialPyramidRoIPool
from spp_triton.devtools import workloads

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "configs" / "synth_demo" / "sppnet_r18-w16_fpn_24e_synth-voc.py"

K = torch.export.Dim("K")


def _level_dims(n_levels):
    return [{2: torch.export.Dim(f"H{i}"), 3: torch.export.Dim(f"W{i}")} for i in range(n_levels)]


def _rpn_rois(k, shapes, seed):
    """RPN-like proposals on a 2-image batch whose levels are ``shapes`` at strides 4, 8, ..."""
    g = torch.Generator().manual_seed(seed)
    h, w = shapes[0][0] * 4, shapes[0][1] * 4
    rois, side = workloads.rpn_like_rois(k, h, w, generator=g)
    rois[:, 0] = torch.randint(0, 2, (k,), generator=g).float()
    return rois, workloads.fpn_levels(side, len(shapes))


def _assert_equal_or_both_nan(got, expected):
    """Bit-equal except where both are NaN (the graph's NaN has ORT's payload)."""
    nan = torch.isnan(expected)
    assert torch.equal(nan, torch.isnan(got)), "NaN positions differ"
    assert torch.equal(bits(got)[~nan], bits(expected)[~nan]), "values differ (bitwise)"


# ---------------------------------------------------------------- torch.export
@pytest.mark.parametrize("shapes,scales", [(FPN_SHAPES, FPN_SCALES), ([(13, 11)], (1 / 4,))], ids=["fpn4", "single"])
def test_torch_export_module_dynamic_k(shapes, scales):
    pool = SpatialPyramidRoIPool(spatial_scales=scales, projection="round").eval()
    feats = make_features(shapes, c=3)
    rois, levels = make_rois(k_rand=4, levels=len(shapes))
    prog = torch.export.export(pool, (feats, rois, levels),
                               dynamic_shapes=([None] * len(shapes), {0: K}, {0: K}))
    for k in (rois.shape[0], 3):  # the traced K, then another
        got = prog.module()(feats, rois[:k], levels[:k])
        assert_bit_equal(got, pool(feats, rois[:k], levels[:k]))


def test_torch_export_extractor_dynamic_k():
    pytest.importorskip("mmdet")
    from mmdet_plugin import SPPRoIExtractor

    ext = SPPRoIExtractor(out_channels=3, featmap_strides=[4, 8, 16, 32]).eval()
    feats = make_features(FPN_SHAPES, c=3)
    rois, _ = make_rois(k_rand=6)
    prog = torch.export.export(ext, (feats, rois), dynamic_shapes=([None] * 4, {0: K}))
    for k in (rois.shape[0], 5):
        assert_bit_equal(prog.module()(feats, rois[:k]), ext(feats, rois[:k]))


@pytest.fixture(scope="module")
def roi_stage():
    """(the demo detector's RoI stage with random weights, its features, RPN-like rois)."""
    pytest.importorskip("mmdet")
    import mmdet_plugin  # noqa: F401  (registers the plugin)
    from mmdet.registry import MODELS
    from mmengine.config import Config

    spec = importlib.util.spec_from_file_location("export_onnx", ROOT / "tools" / "export_onnx.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    torch.manual_seed(0)
    detector = MODELS.build(Config.fromfile(str(DEMO_CONFIG)).model)
    detector.init_weights()
    stage = tool.RoIStage(detector.roi_head).eval()
    c = stage.extractor.out_channels
    shapes = [(64, 64), (32, 32), (16, 16), (8, 8)]
    feats = [f.abs() for f in make_features(shapes, c=c, ties=False)]  # FPN-like values
    rois, _ = _rpn_rois(40, shapes, seed=4)
    return stage, feats, rois


def test_torch_export_roi_stage_dynamic_k(roi_stage):
    stage, feats, rois = roi_stage
    prog = torch.export.export(stage, (feats, rois), dynamic_shapes=([None] * 4, {0: K}))
    with torch.no_grad():
        for k in (rois.shape[0], 7):
            for got, expected in zip(prog.module()(feats, rois[:k]), stage(feats, rois[:k])):
                torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- ONNX Runtime, exact
# The torch.export tests above run without the [export] extra; these need it.
HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "onnxscript"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="the [export] extra (onnx, onnxruntime, onnxscript) is "
                                "not installed")
if HAVE_ONNX:
    import onnx
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    from spp_triton.export import onnx_export


class Session:
    """An exported model in ONNX Runtime; called like the PyTorch module, returns torch."""

    def __init__(self, model, args, dynamic_shapes, tmp_path, **kwargs):
        self.path = path = tmp_path / "model.onnx"
        onnx_export.export(model, args, path, dynamic_shapes=dynamic_shapes, verbose=False, **kwargs)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def feed(self, feats, *tensors):
        return dict(zip(self.names, [f.numpy() for f in feats] + [t.numpy() for t in tensors]))

    def __call__(self, feats, *tensors):
        return [torch.from_numpy(y) for y in self.session.run(None, self.feed(feats, *tensors))]


@pytest.fixture(scope="module", params=["sppnet", "round"])
def fpn_session(request, tmp_path_factory):
    """(module, session): 4 FPN levels, K, H and W dynamic."""
    pool = SpatialPyramidRoIPool(spatial_scales=FPN_SCALES, projection=request.param).eval()
    feats = make_features(FPN_SHAPES, c=3)
    rois, levels = make_rois(k_rand=4)
    session = Session(pool, (feats, rois, levels), (_level_dims(4), {0: K}, {0: K}),
                      tmp_path_factory.mktemp("fpn"))
    return pool, session


@needs_onnx
def test_onnx_fpn_special_and_random_boxes(fpn_session):
    pool, session = fpn_session
    feats = make_features(FPN_SHAPES, c=3, seed=1)  # ties and +-0.0
    rois, levels = make_rois(k_rand=30, seed=2)  # random, then SPECIAL_BOXES
    assert_bit_equal(session(feats, rois, levels)[0], pool(feats, rois, levels))


@needs_onnx
def test_onnx_fpn_rpn_like_dynamic_k_and_sizes(fpn_session):
    pool, session = fpn_session
    for k, shapes, seed in [(60, [(32, 40), (16, 20), (8, 10), (4, 5)], 1), (9, [(25, 19), (13, 10), (7, 5), (4, 3)], 2),
                            (0, FPN_SHAPES, 3)]:
        feats = make_features(shapes, c=3, seed=seed)
        rois, levels = _rpn_rois(k, shapes, seed)
        got = session(feats, rois, levels)[0]
        assert got.shape == (k, 3, 50)
        assert_bit_equal(got, pool(feats, rois, levels))


@needs_onnx
def test_onnx_nonfinite_and_signed_zero(fpn_session):
    """NaN propagates, a bin of -inf gives -inf, +-0.0 ties keep the first zero."""
    pool, session = fpn_session
    g = torch.Generator().manual_seed(9)
    feats = []
    for f in make_features(FPN_SHAPES, c=3, seed=5):
        flat = f.view(-1)
        pos = torch.randperm(flat.numel(), generator=g)[: flat.numel() // 25]
        flat[pos] = torch.tensor([math.nan, -math.inf, math.inf])[torch.arange(len(pos)) % 3]
        f[1, :, : f.shape[2] // 2, : f.shape[3] // 2] = -math.inf
        feats.append(f)
    rois, levels = make_rois(k_rand=30, seed=6)
    rois[:8, 0] = 1  # towards the -inf corner
    expected = pool(feats, rois, levels)
    assert torch.isnan(expected).any() and (expected == -math.inf).any()
    assert (bits(expected) == bits(torch.tensor(-0.0))).any()
    _assert_equal_or_both_nan(session(feats, rois, levels)[0], expected)


def _nonfinite_on_one_level(feats, level):
    """Copies of ``feats`` with non-finite values on ``level`` only: 0: NaNs at one cell
    (MaxRoiPool alone drops most of them), 1: a -inf corner on image 1 (bins of -inf),
    2: none, 3: +inf (no correction needed, but the cheap test cannot tell)."""
    feats = [f.clone() for f in feats]
    f = feats[level]
    if level == 0:
        f[:, :, f.shape[2] // 2, f.shape[3] // 2] = math.nan
    elif level == 1:
        f[1, :, : f.shape[2] // 2, : f.shape[3] // 2] = -math.inf
    elif level == 3:
        f[0, 0] = math.inf
    return feats


@needs_onnx
def test_onnx_nonfinite_on_one_level_only(fpn_session):
    """The exact graph's NaN / -inf pass is chosen per level at run time: a NaN or a
    -inf on one level is exact there, the finite levels pass through unchanged."""
    pool, session = fpn_session
    rois, levels = make_rois(k_rand=60, seed=8)
    corner = torch.tensor([[1, 0, 0, 30, 30], [1, 2, 3, 12, 9], [1, -5, -5, 35, 20]], dtype=torch.float32)
    rois, levels = torch.cat([rois, corner]), torch.cat([levels, torch.ones(3, dtype=torch.int64)])
    for level in range(4):
        feats = _nonfinite_on_one_level(make_features(FPN_SHAPES, c=3, seed=7), level)
        expected = pool(feats, rois, levels)
        if level == 0:
            assert torch.isnan(expected).any()
        if level == 1:
            assert (expected == -math.inf).any()
        _assert_equal_or_both_nan(session(feats, rois, levels)[0], expected)


@needs_onnx
def test_onnx_exact_graph_runs_second_pool_only_for_nonfinite_maps(fpn_session, tmp_path):
    """One ``If`` per level holds the second MaxRoiPool, and ONNX Runtime runs it only for
    a level whose map holds a NaN or an infinity (counted in its profile)."""
    _, session = fpn_session
    graph = onnx.load(session.path).graph
    ifs = [n for n in graph.node if n.op_type == "If"]
    assert len(ifs) == 4 and sum(n.op_type == "MaxRoiPool" for n in graph.node) == 4
    for node in ifs:
        branches = {a.name: [n.op_type for n in a.g.node] for a in node.attribute}
        assert branches["then_branch"].count("MaxRoiPool") == 1 and "MaxRoiPool" not in branches["else_branch"]
    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(tmp_path / "profile")
    profiled = ort.InferenceSession(str(session.path), options, providers=["CPUExecutionProvider"])
    rois, levels = make_rois(k_rand=20, seed=8)
    finite = make_features(FPN_SHAPES, c=3, seed=7)
    cases = [finite] + [_nonfinite_on_one_level(finite, level) for level in (0, 1, 3)]
    for feats in cases:
        profiled.run(None, session.feed(feats, rois, levels))
    with open(profiled.end_profiling()) as f:
        events = json.load(f)
    runs = [(e["ts"], e["ts"] + e["dur"]) for e in events if e["name"] == "model_run"]
    pools = [e["ts"] for e in events if e.get("args", {}).get("op_name") == "MaxRoiPool"
             and e["name"].endswith("_kernel_time")]
    assert [sum(start <= t <= end for t in pools) for start, end in runs] == [4, 5, 5, 5]


@needs_onnx
def test_onnx_single_level_grids_ort_bins_would_miss(tmp_path):
    """Grids 7 and 13 on windows of 3..60 cells: MaxRoiPool's own n x n float32 bin rule
    differs from ours there (e.g. n = 7, h = 57; n = 13, h = 7); the per-bin boxes do not."""
    pool = SpatialPyramidRoIPool(pyramid=(1, 7, 13), spatial_scales=1 / 16).eval()
    feats, rois, levels, _ = workloads.window_inputs(40, channels=2, lo=3, hi=60, size=64, seed=3)
    session = Session(pool, (feats, rois), ([{2: torch.export.Dim("H"), 3: torch.export.Dim("W")}], {0: K}),
                      tmp_path)
    special = torch.cat([SPECIAL_BOXES[:, :1] * 0, SPECIAL_BOXES[:, 1:] * 4], 1)
    for r in (rois, rois[:5], special):
        assert_bit_equal(session(feats, r)[0], pool(feats, r))
    small = make_features([(9, 30)], c=2, n=1)
    assert_bit_equal(session(small, special)[0], pool(small, special))


@needs_onnx
def test_onnx_assume_finite_exact_on_finite_features(tmp_path):
    pool = SpatialPyramidRoIPool(spatial_scales=FPN_SCALES[:2]).eval()
    feats = make_features(FPN_SHAPES[:2], c=3)
    rois, levels = make_rois(k_rand=10, levels=2)
    session = Session(pool, (feats, rois, levels), ([None] * 2, {0: K}, {0: K}), tmp_path, assume_finite=True)
    assert "If" not in {n.op_type for n in onnx.load(session.path).graph.node}  # no NaN / -inf pass
    assert_bit_equal(session(feats, rois, levels)[0], pool(feats, rois, levels))


@needs_onnx
def test_onnx_float16_pooled_in_float32(tmp_path):
    """float16 maps are cast to float32 and back around MaxRoiPool: exact for a max.
    (bfloat16 goes the same way; numpy cannot feed it to ONNX Runtime.)"""
    pool = SpatialPyramidRoIPool(spatial_scales=1 / 4).eval()
    feats = make_features([(13, 11)], c=3, dtype=torch.float16)
    rois, _ = make_rois(k_rand=10, levels=1)
    session = Session(pool, (feats, rois), ([None], {0: K}), tmp_path)
    got = session(feats, rois)[0]
    assert got.dtype == torch.float16
    assert_bit_equal(got, pool(feats, rois))


# ---------------------------------------------------------------- sampling="bilinear" (SPP-Align)
@needs_onnx
@pytest.mark.parametrize("pyramid,mode,aligned", [((1, 2, 3, 6), "max", True), ((1, 2, 3, 6), "avg", True),
                                                  ((1, 3, 5), "max", False), ((1, 3, 5), "avg", False)],
                         ids=["nested-max-al", "nested-avg-al", "direct-max-unal", "direct-avg-unal"])
def test_onnx_bilinear_within_float32_rounding(pyramid, mode, aligned, tmp_path):
    """avg: ONNX RoiAlign per grid (r G / n samples per bin); max: the lattice built with
    standard ops and ReduceMax. Both within float32 rounding of the op, on random, RPN-like
    and every special box, K and the maps' sizes dynamic; max mode exactly equal here."""
    pool = SpatialPyramidRoIPool(spatial_scales=FPN_SCALES, pyramid=pyramid, mode=mode, sampling="bilinear",
                                 aligned=aligned).eval()
    feats = make_features(FPN_SHAPES, c=3)
    rois, levels = make_rois(k_rand=4)
    graph = Session(pool, (feats, rois, levels), (_level_dims(4), {0: K}, {0: K}), tmp_path)
    ops = {n.op_type for n in onnx.load(graph.path).graph.node}
    assert ("RoiAlign" in ops) == (mode == "avg")
    cases = [(make_features(FPN_SHAPES, c=3, seed=1), *make_rois(k_rand=30, seed=2))]
    shapes = [(32, 40), (16, 20), (8, 10), (4, 5)]
    cases.append((make_features(shapes, c=3, seed=3), *_rpn_rois(40, shapes, 3)))
    for feats, rois, levels in cases:
        want = pool(feats, rois, levels)
        got = graph(feats, rois, levels)[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        if mode == "max":
            _assert_equal_or_both_nan(got, want)


@needs_onnx
def test_onnx_bilinear_nan_propagates(tmp_path):
    pool = SpatialPyramidRoIPool(spatial_scales=FPN_SCALES[:2], sampling="bilinear").eval()
    feats = make_features(FPN_SHAPES[:2], c=3, ties=False)
    rois, levels = make_rois(k_rand=6, levels=2)
    graph = Session(pool, (feats, rois, levels), ([None] * 2, {0: K}, {0: K}), tmp_path)
    for f in feats:  # 3 % of the cells NaN
        f[torch.rand(f.shape, generator=torch.Generator().manual_seed(7)) < 0.03] = float("nan")
    want = pool(feats, rois, levels)
    assert torch.isnan(want).any() and not torch.isnan(want).all()
    _assert_equal_or_both_nan(graph(feats, rois, levels)[0], want)


# ---------------------------------------------------------------- the RoI stage in ONNX Runtime
@needs_onnx
def test_onnx_roi_stage_within_float32_rounding(roi_stage, tmp_path):
    stage, feats, rois = roi_stage
    session = Session(stage, (feats, rois), (_level_dims(4), {0: K}), tmp_path)
    with torch.no_grad():
        for k in (rois.shape[0], 3):
            for got, expected in zip(session(feats, rois[:k]), stage(feats, rois[:k])):
                assert got.shape == expected.shape
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- bad input
@needs_onnx
@pytest.mark.parametrize("options,named", [(dict(mode="avg"), "mode='avg'"),
                                           (dict(sampling="bilinear", sampling_ratio=0), "sampling_ratio=0")],
                         ids=["cells-avg", "bilinear-adaptive"])
def test_option_without_a_translation_refused_naming_it(options, named, tmp_path):
    pool = SpatialPyramidRoIPool(spatial_scales=1 / 4, **options).eval()
    feats = make_features([(13, 11)], c=2)
    rois, _ = make_rois(k_rand=2, levels=1)
    with pytest.raises(Exception, match=named) as info:
        onnx_export.export(pool, (feats, rois), tmp_path / "refused.onnx", verbose=False)
    assert _chain_has(info.value, onnx_export.OnnxExportError)


@needs_onnx
def test_float64_refused_naming_the_dtype(tmp_path):
    pool = SpatialPyramidRoIPool(spatial_scales=1 / 4, backend="torch").eval()
    feats = make_features([(13, 11)], c=2, dtype=torch.float64)
    rois, _ = make_rois(k_rand=2, levels=1)
    with pytest.raises(Exception, match="DOUBLE") as info:
        onnx_export.export(pool, (feats, rois.double()), tmp_path / "f64.onnx", verbose=False)
    assert _chain_has(info.value, onnx_export.OnnxExportError)


def _chain_has(exc, kind):
    """Whether ``exc`` or an exception it was raised from is a ``kind`` (torch.onnx
    wraps errors of translation functions in its own)."""
    while exc is not None:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@needs_onnx
def test_wrong_rank_dtype_and_size_named(fpn_session):
    _, session = fpn_session
    feats = make_features(FPN_SHAPES, c=3)
    rois, levels = make_rois(k_rand=2)
    good = session.feed(feats, rois, levels)
    cases = [({"rois": good["rois"][None]}, r"'rois' must have rank 2"),
             ({"rois": good["rois"].astype(np.float64)}, r"'rois' must be float32, got float64"),
             ({"roi_levels": good["roi_levels"].astype(np.int32)}, r"'roi_levels' must be int64"),
             ({"features_2": good["features_2"][:, :2]}, r"'features_2' must have size 3 on axis 1")]
    for change, message in cases:
        feed = {**good, **change}
        with pytest.raises(ValueError, match=message):
            onnx_export.check_inputs(session.session, feed)
        with pytest.raises(InvalidArgument):  # ONNX Runtime refuses them too (its dtype message names no input)
            session.session.run(None, feed)
    with pytest.raises(ValueError, match=r"missing \['rois'\]"):
        onnx_export.check_inputs(session.session, {n: v for n, v in good.items() if n != "rois"})
    onnx_export.check_inputs(session.session, good)
