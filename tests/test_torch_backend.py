"""The CPU backend (spp_triton.torch_backend): its C++ kernel and its pure-PyTorch
fallback, each checked against the slow reference (exactly in max mode), against an
independent first-maximum for argmax ties (NaN, +-0), and for its gradients."""
import math
import shutil
import warnings

import pytest
import torch

from spp_triton import spp_roi_pool, torch_backend
from spp_triton.geometry import PyramidPlan

from reference import spp_reference, window

IMPLS = ["kernel", "pure"]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch):
    """Runs a test once with the C++ kernel and once with the pure-PyTorch fallback."""
    if request.param == "kernel" and shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler: the kernel cannot be built here")
    monkeypatch.setattr(torch_backend, "_IMPL", request.param)
    return request.param


def _levels(seed=0, c=5, n=2, dtype=torch.float32):
    """Four levels, the last one 1x1."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(13, 17), (7, 9), (4, 5), (1, 1)]
    return [torch.randn(n, c, h, w, generator=g).to(dtype) for h, w in shapes], (1 / 4, 1 / 8, 1 / 16, 1 / 32)


def _rois(k=14, n=2, seed=1, levels=4):
    """Random boxes plus special ones: larger than the map, outside it, inverted, tiny, 1 px."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k, 2, generator=g) * 60
    wh = torch.rand(k, 2, generator=g) * 70 + 1
    rand = torch.cat([torch.randint(0, n, (k, 1), generator=g).float(), xy, xy + wh], 1)
    special = torch.tensor([
        [0, -50, -40, 400, 300],   # larger than every map
        [1, 300, 200, 500, 400],   # outside (clamps to the bottom-right corner)
        [0, -90, -90, -20, -10],   # outside (top-left)
        [1, 40, 30, 10, 5],        # degenerate: x2 < x1, y2 < y1
        [0, 20, 20, 20, 20],       # a point
        [1, 3.7, 5.2, 4.1, 50.9],  # one column wide
        [0, 0, 0, 67, 3],          # one row high
    ], dtype=torch.float32)
    rois = torch.cat([rand, special])
    lv = torch.randint(0, levels, (rois.shape[0],), generator=g)
    return rois, lv


def _run(feats, rois, lv, scales, pyramid, mode, projection):
    plan = PyramidPlan.make(pyramid, mode)
    return torch_backend.forward(feats, rois, lv, scales, plan, mode, projection)


def _first_max(feats, rois, lv, scales, pyramid, projection):
    """Independent argmax: per bin, the first NaN if any, else the first maximum, in
    row-major order; bins by the paper's floor/ceil rule on the reference's windows."""
    k, c = rois.shape[0], feats[0].shape[1]
    out = torch.empty(k, c, sum(n * n for n in pyramid), dtype=torch.int64)
    for r in range(k):
        f = feats[int(lv[r])].double()
        b, x1, y1, x2, y2 = [float(v) for v in rois[r]]
        xl, xh = window(x1, x2, scales[int(lv[r])], f.shape[3], projection)
        yl, yh = window(y1, y2, scales[int(lv[r])], f.shape[2], projection)
        h, w, col = yh - yl + 1, xh - xl + 1, 0
        for n in pyramid:
            for i in range(n):
                r0, r1 = yl + (i * h) // n, yl + -(-((i + 1) * h) // n)
                for j in range(n):
                    c0, c1 = xl + (j * w) // n, xl + -(-((j + 1) * w) // n)
                    block = f[int(b), :, r0:r1, c0:c1].reshape(c, -1)
                    nan = torch.isnan(block)
                    top = torch.where(nan, -math.inf, block).amax(1, keepdim=True)
                    hit = torch.where(nan.any(1, keepdim=True), nan, block == top)
                    m = hit.int().argmax(1)  # first True
                    out[r, :, col] = (r0 + m // (c1 - c0)) * f.shape[3] + c0 + m % (c1 - c0)
                    col += 1
    return out


def _bits(t):
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


# ---------------------------------------------------------------- forward vs reference
@pytest.mark.parametrize("pyramid", [(1, 2, 3, 6), (1, 3, 5)])
@pytest.mark.parametrize("projection", ["sppnet", "round"])
def test_max_matches_reference_exactly(impl, pyramid, projection):
    feats, scales = _levels()
    rois, lv = _rois()
    out, argmax = _run(feats, rois, lv, scales, pyramid, "max", projection)
    ref = spp_reference(feats, rois, scales, pyramid, "max", projection, roi_levels=lv)
    assert out.dtype == torch.float32 and argmax.dtype == torch.int32
    assert out.shape == argmax.shape == (rois.shape[0], 5, sum(n * n for n in pyramid))
    assert torch.equal(out.double(), ref)
    assert torch.equal(argmax.long(), _first_max(feats, rois, lv, scales, pyramid, projection))


@pytest.mark.parametrize("pyramid", [(1, 2, 3, 6), (1, 3, 5)])
@pytest.mark.parametrize("projection", ["sppnet", "round"])
def test_avg_matches_reference(impl, pyramid, projection):
    feats, scales = _levels()
    rois, lv = _rois()
    out, argmax = _run(feats, rois, lv, scales, pyramid, "avg", projection)
    ref = spp_reference(feats, rois, scales, pyramid, "avg", projection, roi_levels=lv)
    assert argmax is None
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype(impl, dtype, mode):
    feats, scales = _levels(seed=3, c=3, dtype=dtype)
    rois, lv = _rois(k=8, seed=4)
    out, argmax = _run(feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
    ref = spp_reference(feats, rois, scales, (1, 2, 3, 6), mode, "sppnet", roi_levels=lv)
    assert out.dtype == dtype
    if mode == "max":  # every dtype holds its own maxima exactly
        assert torch.equal(out.double(), ref)
        assert torch.equal(argmax.long(), _first_max(feats, rois, lv, scales, (1, 2, 3, 6), "sppnet"))
    else:  # float32 accumulation, rounded once to the dtype
        tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3}.get(dtype, 1e-6)
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_single_level_and_one_by_one_map(impl, mode):
    g = torch.Generator().manual_seed(5)
    rois, _ = _rois(k=6, seed=6, levels=1)
    lv = torch.zeros(rois.shape[0], dtype=torch.int64)
    for shape in [(11, 7), (1, 1), (1, 9)]:
        feats = [torch.randn(2, 7, *shape, generator=g)]
        out, _ = _run(feats, rois, lv, (0.25,), (1, 2, 3, 6), mode, "round")
        ref = spp_reference(feats, rois, (0.25,), (1, 2, 3, 6), mode, "round", roi_levels=lv)
        torch.testing.assert_close(out.double(), ref, rtol=1e-6 if mode == "avg" else 0, atol=1e-6 if mode == "avg" else 0)


def test_channels_last_and_non_contiguous_features(impl):
    feats, scales = _levels(seed=7, c=6)
    rois, lv = _rois(k=8, seed=8)
    expected = _run(feats, rois, lv, scales, (1, 2, 3, 6), "max", "sppnet")
    for variant in ([f.contiguous(memory_format=torch.channels_last) for f in feats],
                    [f.transpose(2, 3).contiguous().transpose(2, 3) for f in feats]):
        got = _run(variant, rois, lv, scales, (1, 2, 3, 6), "max", "sppnet")
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("coverage", ["sparse", "dense"])
def test_both_kernel_layouts_match_reference(impl, mode, coverage):
    """The C++ kernel reads NCHW features in place when the RoIs' windows cover fewer
    cells than the maps hold (sparse) and transposes them to channels-last otherwise
    (dense); 37 channels make a partial channel block on both paths, and in backward."""
    g = torch.Generator().manual_seed(21)
    feats = [torch.randn(2, 37, 40, 48, generator=g, dtype=torch.float64),
             torch.randn(2, 37, 20, 24, generator=g, dtype=torch.float64)]
    scales = (1 / 4, 1 / 8)
    k = 3 if coverage == "sparse" else 60
    xy = torch.rand(k, 2, generator=g) * 40  # inside the 192 x 160 px image: no clamping
    wh = torch.rand(k, 2, generator=g) * (20 if coverage == "sparse" else 100) + 2
    rois = torch.cat([torch.randint(0, 2, (k, 1), generator=g).double(), xy, xy + wh], 1)
    lv = torch.randint(0, 2, (k,), generator=g)
    scale = torch.tensor(scales, dtype=torch.float64)[lv]
    w, h = (rois[:, 3] - rois[:, 1]) * scale, (rois[:, 4] - rois[:, 2]) * scale
    total = sum(f.shape[0] * f.shape[2] * f.shape[3] for f in feats)
    if coverage == "sparse":  # windows span at most w + 2 by h + 2 cells
        assert float(((w + 2) * (h + 2)).sum()) < total
    else:  # and at least w by h
        assert float((w * h).sum()) >= total
    out, argmax = _run(feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
    ref = spp_reference(feats, rois, scales, (1, 2, 3, 6), mode, "sppnet", roi_levels=lv)
    torch.testing.assert_close(out, ref, rtol=0 if mode == "max" else 1e-12, atol=0 if mode == "max" else 1e-12)
    grad = torch.randn(out.shape, generator=g, dtype=torch.float64)
    plan = PyramidPlan.make((1, 2, 3, 6), mode)
    grads = torch_backend.backward(grad, argmax, feats, rois, lv, scales, plan, mode, "sppnet")
    expected = _reference_grads(feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet", grad)
    for got, exp in zip(grads, expected):
        torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-12)


def test_empty_rois(impl):
    feats, scales = _levels(c=4)
    rois, lv = torch.zeros(0, 5), torch.zeros(0, dtype=torch.int64)
    for mode in ("max", "avg"):
        plan = PyramidPlan.make((1, 2, 3, 6), mode)
        out, argmax = torch_backend.forward(feats, rois, lv, scales, plan, mode, "sppnet")
        assert out.shape == (0, 4, 50) and out.dtype == torch.float32
        assert (argmax is None) == (mode == "avg")
        grads = torch_backend.backward(out, argmax, feats, rois, lv, scales, plan, mode, "sppnet")
        assert [g.shape for g in grads] == [f.shape for f in feats]
        assert all(torch.count_nonzero(g) == 0 for g in grads)


# ---------------------------------------------------------------- ties: NaN and +-0
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_argmax_ties_nan_and_signed_zero(impl, dtype):
    g = torch.Generator().manual_seed(9)
    shapes = [(12, 15), (6, 8)]
    feats = []
    for h, w in shapes:
        f = torch.randint(-2, 2, (2, 4, h, w), generator=g).to(dtype)  # many ties, many zeros
        f = torch.where(torch.rand(f.shape, generator=g) < 0.5, -f, f)  # -0.0 next to +0.0
        feats.append(f)
    # Sprinkle NaNs with distinct payloads (and signs) so that "which NaN" is observable.
    nan_bits = {torch.float32: [0x7FC00001, 0x7FC00002, -0x3FFFFF], torch.float64: [0x7FF8000000000001, 0x7FF8000000000002],
                torch.float16: [0x7E01, 0x7E02, -0x1FF], torch.bfloat16: [0x7FC1, 0x7FC2, -0x3F]}[dtype]
    for f in feats:
        flat, bits = f.view(-1), _bits(f.view(-1))
        pos = torch.randperm(flat.numel(), generator=g)[: flat.numel() // 40]
        for i, p in enumerate(pos.tolist()):
            bits[p] = nan_bits[i % len(nan_bits)]
    rois = torch.tensor([[0, 0, 0, 60, 48], [1, 4, 4, 30, 30], [1, -9, 3, 23, 44], [0, 8, 8, 9, 9],
                         [0, 0, 0, 60, 48], [1, 2, 30, 59, 47]], dtype=torch.float32)
    lv = torch.tensor([0, 0, 1, 1, 1, 0])
    scales = (1 / 4, 1 / 8)
    out, argmax = _run(feats, rois, lv, scales, (1, 2, 3, 6), "max", "round")
    expected = _first_max(feats, rois, lv, scales, (1, 2, 3, 6), "round")
    assert torch.equal(argmax.long(), expected)
    # The output is the element at the argmax, bit for bit (NaN payload, zero sign).
    c = feats[0].shape[1]
    for r in range(rois.shape[0]):
        f = feats[int(lv[r])][int(rois[r, 0])].reshape(c, -1)
        assert torch.equal(_bits(out[r]), torch.gather(_bits(f), 1, expected[r]))
    assert torch.isnan(out).any() and (_bits(out) == _bits(torch.tensor(-0.0, dtype=dtype))).any()


# ---------------------------------------------------------------- backward
def _reference_grads(feats, rois, lv, scales, pyramid, mode, projection, grad):
    leaves = [f.detach().double().requires_grad_() for f in feats]
    ref = spp_reference(leaves, rois, scales, pyramid, mode, projection, roi_levels=lv)
    grads = torch.autograd.grad(ref, leaves, grad.double(), allow_unused=True)
    return [torch.zeros_like(f) if g is None else g for f, g in zip(leaves, grads)]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pyramid", [(1, 2, 3, 6), (1, 3, 5)])
def test_backward_matches_reference_gradient(impl, mode, pyramid):
    feats, scales = _levels(seed=10, c=3, dtype=torch.float64)  # continuous values: no ties
    rois, lv = _rois(k=10, seed=11)
    plan = PyramidPlan.make(pyramid, mode)
    out, argmax = torch_backend.forward(feats, rois, lv, scales, plan, mode, "sppnet")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    grads = torch_backend.backward(grad, argmax, feats, rois, lv, scales, plan, mode, "sppnet")
    expected = _reference_grads(feats, rois, lv, scales, pyramid, mode, "sppnet", grad)
    for got, exp, f in zip(grads, expected, feats):
        assert got.shape == f.shape and got.dtype == f.dtype
        torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_backward_is_bit_identical_run_to_run(impl, mode, dtype):
    feats, scales = _levels(seed=13, c=16, dtype=dtype)
    # Many overlapping RoIs, so accumulation order would show.
    rois, lv = _rois(k=40, seed=14)
    rois = torch.cat([rois, rois[:20] + torch.tensor([0, 1.0, 1.0, 1.0, 1.0])])
    lv = torch.cat([lv, lv[:20]])
    plan = PyramidPlan.make((1, 2, 3, 6), mode)
    out, argmax = torch_backend.forward(feats, rois, lv, scales, plan, mode, "sppnet")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(15)).to(dtype) * 1e3
    runs = [torch_backend.backward(grad, argmax, feats, rois, lv, scales, plan, mode, "sppnet") for _ in range(3)]
    for other in runs[1:]:
        assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(runs[0], other))
    assert all(g.dtype == dtype for g in runs[0])


def test_gradients_through_public_api(impl):
    feats, scales = _levels(seed=16, c=3)
    leaves = [f.clone().requires_grad_() for f in feats]
    rois, lv = _rois(k=6, seed=17)
    out = spp_roi_pool(leaves, rois, spatial_scales=scales, roi_levels=lv, backend="torch")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(18))
    got = torch.autograd.grad(out, leaves, grad)
    expected = _reference_grads(feats, rois, lv, scales, (1, 2, 3, 6), "max", "sppnet", grad)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a.double(), b, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- kernel vs fallback
def test_kernel_and_fallback_agree_on_realistic_proposals(monkeypatch):
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    feats, rois, lv, scales = torch_backend._benchmark_inputs(k=48, c=8, seed=19)
    _, extreme, _, _ = torch_backend._benchmark_inputs(k=8, c=8, seed=20, extreme=True)
    rois = torch.cat([rois, extreme])
    lv = torch.cat([lv, torch.zeros(8, dtype=torch.int64)])
    results = {}
    for name in IMPLS:
        monkeypatch.setattr(torch_backend, "_IMPL", name)
        plan = PyramidPlan.make((1, 2, 3, 6), "max")
        out, argmax = torch_backend.forward(feats, rois, lv, scales, plan, "max", "sppnet")
        grads = torch_backend.backward(torch.ones_like(out), argmax, feats, rois, lv, scales, plan, "max", "sppnet")
        results[name] = (out, argmax, grads)
    (o1, a1, g1), (o2, a2, g2) = results["kernel"], results["pure"]
    assert torch.equal(o1, o2) and torch.equal(a1, a2)
    assert all(torch.equal(x, y) for x, y in zip(g1, g2))
    ref = spp_reference(feats, rois[-4:], scales, (1, 2, 3, 6), "max", "sppnet", roi_levels=lv[-4:])
    assert torch.equal(o1[-4:].double(), ref)


def test_build_failure_warns_once_and_falls_back(monkeypatch):
    from torch.utils import cpp_extension

    def broken(*args, **kwargs):
        raise OSError("no compiler here")

    monkeypatch.setattr(torch_backend, "_IMPL", "auto")
    monkeypatch.setattr(torch_backend, "_ext_state", None)
    monkeypatch.setattr(cpp_extension, "load", broken)
    feats, scales = _levels(c=2)
    rois, lv = _rois(k=4)
    with pytest.warns(RuntimeWarning, match="could not build the C\\+\\+ CPU kernel"):
        out, _ = _run(feats, rois, lv, scales, (1, 2), "max", "sppnet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(feats, rois, lv, scales, (1, 2), "max", "sppnet")  # no second warning
    assert torch.equal(out.double(), spp_reference(feats, rois, scales, (1, 2), "max", "sppnet", roi_levels=lv))
    monkeypatch.setattr(torch_backend, "_IMPL", "kernel")
    with pytest.raises(RuntimeError, match="kernel is unavailable"):
        _run(feats, rois, lv, scales, (1, 2), "max", "sppnet")
