"""mmdet_plugin.engine.flops: spp_roi_pool's FLOPs in MMEngine's complexity analysis (what mmdet's
get_flops runs), against counts computed here from the docstring's rules, and by hand."""
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet", reason="the FLOP handle is registered for mmdet's get_flops")

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.analysis import FlopAnalyzer  # noqa: E402
from mmengine.config import Config  # noqa: E402

from mmdet_plugin import flops  # noqa: E402
from spp_triton import spp_roi_pool  # noqa: E402

from cases import random_batch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "synth_demo" / "sppnet_r18-w16_fpn_24e_synth-voc.py"

register_all_modules()


def _side(lo_coord: float, hi_coord: float, scale: float, size: int, projection: str) -> int:
    """Cells along one axis of a RoI's window: spp_roi_pool's docstring, float32."""
    f = np.float32
    s = f(scale)
    if projection == "sppnet":
        lo, hi = int(np.floor((f(lo_coord) + f(1)) * s)), int(np.ceil((f(hi_coord) + f(1)) * s)) - 2
    else:
        lo, hi = int(np.floor(f(lo_coord) * s + f(0.5))), int(np.floor(f(hi_coord) * s + f(0.5)))
    if lo > hi:
        lo = hi = (lo + hi) // 2
    lo, hi = min(max(lo, 0), size - 1), min(max(hi, 0), size - 1)
    return hi - lo + 1


def expected_flops(shapes, rois, levels, scales, pyramid, mode, projection) -> int:
    """Per RoI, channel and bin: cells - 1 comparisons (max) or cells (avg)."""
    total = 0
    for (_, x1, y1, x2, y2), level in zip(rois.tolist(), levels.tolist()):
        _, _, height, width = shapes[level]
        h = _side(y1, y2, scales[level], height, projection)
        w = _side(x1, x2, scales[level], width, projection)
        for n in pyramid:
            for i in range(n):
                rows = -(-(i + 1) * h // n) - i * h // n
                for j in range(n):
                    cols = -(-(j + 1) * w // n) - j * w // n
                    total += rows * cols - (1 if mode == "max" else 0)
    return total * shapes[0][1]


def test_demo_detector_counts_its_roi_stage_as_the_formula_says():
    cfg = Config.fromfile(str(DEMO))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    data = random_batch(model, cfg.model.roi_head.bbox_head.num_classes, training=False, sizes=((3, 96, 128),))
    model.forward = partial(model.forward, data_samples=data["data_samples"])  # as get_flops does
    pool = model.roi_head.bbox_roi_extractor.pool
    seen = []
    hook = pool.register_forward_hook(lambda module, args, out: seen.append(args))
    analysis = FlopAnalyzer(model, data["inputs"])  # what get_model_complexity_info counts with
    by_operator, by_module = analysis.by_operator(), analysis.by_module()
    hook.remove()

    feats, rois, levels = seen[0]
    assert all(torch.equal(rois, args[1]) for args in seen)  # every run pooled the same RoIs
    assert pool.mode == "max" and pool.projection == "sppnet"
    want = expected_flops([f.shape for f in feats], rois, levels, pool.spatial_scales, pool.pyramid,
                          pool.mode, pool.projection)
    assert rois.shape[0] > 0 and want > 0
    assert by_operator["spp_roi_pool"] == want
    assert by_module["roi_head.bbox_roi_extractor"] == want
    assert analysis.total() >= want + by_module["roi_head.bbox_head"] > want


class _Pool(torch.nn.Module):
    """spp_roi_pool of fixed RoIs over a stride-1 map, "round" projection."""

    def __init__(self, rois, mode, pyramid=(1, 2, 3, 6)):
        super().__init__()
        self.rois, self.mode, self.pyramid = rois, mode, pyramid

    def forward(self, x):
        return spp_roi_pool(x, self.rois, spatial_scales=1.0, pyramid=self.pyramid, mode=self.mode,
                            projection="round")


@pytest.mark.parametrize("mode, pyramid, side, want", [
    ("max", (1, 2, 3, 6), 6, 2 * ((36 - 1) + (36 - 4) + (36 - 9) + (36 - 36))),  # bins partition 6 x 6
    ("avg", (1, 2, 3, 6), 6, 2 * 4 * 36),
    ("max", (2,), 5, 2 * (6 * 6 - 4)),  # 2 bins over 5 cells share one: 3 + 3 per axis
    ("avg", (2,), 5, 2 * 6 * 6),
])
def test_hand_counted_windows(mode, pyramid, side, want):
    rois = torch.tensor([[0, 0, 0, side - 1, side - 1.0]])  # "round": cells 0 .. side - 1
    model = _Pool(rois, mode, pyramid)
    x = torch.randn(1, 2, 8, 8)
    assert FlopAnalyzer(model, (x,)).by_operator()["spp_roi_pool"] == want
    assert expected_flops([x.shape], rois, torch.zeros(1, dtype=torch.int64), [1.0], pyramid, mode, "round") == want


class _AlignPool(torch.nn.Module):
    def __init__(self, rois, mode, pyramid, ratio):
        super().__init__()
        self.rois, self.mode, self.pyramid, self.ratio = rois, mode, pyramid, ratio

    def forward(self, x):
        return spp_roi_pool(x, self.rois, spatial_scales=1.0, pyramid=self.pyramid, mode=self.mode,
                            sampling="bilinear", sampling_ratio=self.ratio)


@pytest.mark.parametrize("mode, pyramid, ratio, want", [
    # nested: one 12 x 12 lattice (r = 2); 7 per point, then each grid's bins over it
    ("max", (1, 2, 3, 6), 2, 3 * 2 * (7 * 144 + (144 - 1) + (144 - 4) + (144 - 9) + (144 - 36))),
    ("avg", (1, 2, 3, 6), 2, 3 * 2 * (7 * 144 + 4 * 144)),
    # non-nested: each grid its own lattice (n r)^2 with r = 1
    ("max", (1, 3, 5), 1, 3 * 2 * (8 * (1 + 9 + 25) - (1 + 9 + 25))),
    # adaptive on a 6 x 6 window: r = ceil(6 / 6) = 1, a 6 x 6 lattice
    ("avg", (1, 2, 3, 6), 0, 3 * 2 * (7 * 36 + 4 * 36)),
])
def test_bilinear_hand_counted(mode, pyramid, ratio, want):
    rois = torch.tensor([[0, 1, 1, 7, 7.0], [0, 0, 0, 6, 6]])  # aligned: 6 x 6-cell windows
    x = torch.randn(1, 3, 8, 8)
    assert FlopAnalyzer(_AlignPool(rois, mode, pyramid, ratio), (x,)).by_operator()["spp_roi_pool"] == want


def test_without_an_analysis_among_the_callers_it_estimates_14_by_14_windows_and_warns():
    rois = torch.tensor([[0, 0, 0, 3, 3.0], [0, 1, 1, 7, 7]])
    x = torch.randn(1, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's own warnings
        graph, _ = torch.jit._get_trace_graph(_Pool(rois, "max"), (x,))
    node = next(n for n in graph.nodes() if n.kind() == flops.OP_NAME)
    with pytest.warns(UserWarning, match="estimating each of the 2 windows as 14 x 14 cells"):
        count = flops.spp_roi_pool_flop_jit(list(node.inputs()), list(node.outputs()))
    # R_n(14) = 14, 14, 16, 18 cells for n = 1, 2, 3, 6 (neighbouring bins share cells).
    per_roi = (14 * 14 - 1) + (14 * 14 - 4) + (16 * 16 - 9) + (18 * 18 - 36)
    assert count == 3 * 2 * per_roi


def test_the_handle_is_in_mmengines_default_table():
    from mmengine.analysis import complexity_analysis

    assert complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS[flops.OP_NAME] is flops.spp_roi_pool_flop_jit
    assert flops.OP_NAME in complexity_analysis._DEFAULT_SUPPORTED_ACT_OPS
    names = flops._arg_names()
    assert names[:3] == ["features", "rois", "roi_levels"] and {"pyramid", "mode"} <= set(names)

