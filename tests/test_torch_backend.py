"""The torch backend's two implementations, the C++ kernel (``cpp_kernel``) and the
pure-PyTorch fallback (``fallback``), each checked against tests/reference.py:
values (exactly in max mode), the first-maximum argmax with ties (NaN, +-0), and
gradients; plus the dispatch between them (``torch_backend``)."""
import shutil
import warnings

import pytest
import torch

from spp_triton import spp_roi_pool, torch_backend
from spp_triton.torch_backend import cpp_kernel, fallback
from spp_triton.geometry import PoolSpec
from spp_triton.devtools.workloads import fpn_inputs, fpn_levels

from cases import FPN_SCALES, bits, make_features, make_rois, nan_with_payload
from reference import first_max, reference_grads, spp_reference

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
_HAS_COMPILER = shutil.which("c++") is not None or shutil.which("g++") is not None


@pytest.fixture(params=["cpp_kernel", "fallback"])
def impl(request):
    """Each test runs once on the C++ kernel and once on the pure-PyTorch fallback."""
    if request.param == "cpp_kernel" and not _HAS_COMPILER:
        pytest.skip("no C++ compiler: the kernel cannot be built here")
    return {"cpp_kernel": cpp_kernel, "fallback": fallback}[request.param]


def _levels(seed=0, c=5, n=2, dtype=torch.float32):
    """The shared FPN-like levels (the last one 1x1), continuous values."""
    return make_features(c=c, dtype=dtype, n=n, seed=seed, ties=False), FPN_SCALES


def _rois(k=14, n=2, seed=1, levels=4):
    return make_rois(k_rand=k, n_images=n, levels=levels, seed=seed, extent=60.0)


def _run(impl, feats, rois, lv, scales, pyramid, mode, projection):
    return impl.forward(feats, rois, lv, PoolSpec.make(pyramid, mode, projection, scales), False)


def _backward(impl, grad, argmax, feats, rois, lv, scales, pyramid, mode, projection):
    return impl.backward(grad, argmax, feats, rois, lv, PoolSpec.make(pyramid, mode, projection, scales), False)


# ---------------------------------------------------------------- forward vs reference
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pyramid", [(1, 2, 3, 6), (1, 3, 5)])
@pytest.mark.parametrize("projection", ["sppnet", "round"])
def test_matches_reference(impl, mode, pyramid, projection):
    """Max: values and the first-maximum argmax exactly; avg: within float32 rounding."""
    feats, scales = _levels()
    rois, lv = _rois()
    out, argmax = _run(impl, feats, rois, lv, scales, pyramid, mode, projection)
    ref = spp_reference(feats, rois, scales, pyramid, mode, projection, roi_levels=lv)
    assert out.dtype == torch.float32 and out.shape == (rois.shape[0], 5, sum(n * n for n in pyramid))
    if mode == "avg":
        assert argmax is None
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    else:
        assert argmax.dtype == torch.int32 and argmax.shape == out.shape
        assert torch.equal(out.double(), ref)
        assert torch.equal(argmax.long(), first_max(feats, rois, scales, pyramid, projection, lv))


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype(impl, dtype, mode):
    feats, scales = _levels(seed=3, c=3, dtype=dtype)
    rois, lv = _rois(k=8, seed=4)
    out, argmax = _run(impl, feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
    ref = spp_reference(feats, rois, scales, (1, 2, 3, 6), mode, "sppnet", roi_levels=lv)
    assert out.dtype == dtype
    if mode == "max":  # every dtype holds its own maxima exactly
        assert torch.equal(out.double(), ref)
        assert torch.equal(argmax.long(), first_max(feats, rois, scales, (1, 2, 3, 6), "sppnet", lv))
    else:  # float32 accumulation (float64 for float64), rounded once to the dtype
        tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float64: 1e-12}.get(dtype, 1e-6)
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_single_level_and_one_by_one_map(impl, mode):
    g = torch.Generator().manual_seed(5)
    rois, _ = _rois(k=6, seed=6, levels=1)
    lv = torch.zeros(rois.shape[0], dtype=torch.int64)
    for shape in [(11, 7), (1, 1), (1, 9)]:
        feats = [torch.randn(2, 7, *shape, generator=g)]
        out, _ = _run(impl, feats, rois, lv, (0.25,), (1, 2, 3, 6), mode, "round")
        ref = spp_reference(feats, rois, (0.25,), (1, 2, 3, 6), mode, "round", roi_levels=lv)
        torch.testing.assert_close(out.double(), ref, rtol=1e-6 if mode == "avg" else 0, atol=1e-6 if mode == "avg" else 0)


def test_channels_last_and_non_contiguous_features(impl):
    feats, scales = _levels(seed=7, c=6)
    rois, lv = _rois(k=8, seed=8)
    expected = _run(impl, feats, rois, lv, scales, (1, 2, 3, 6), "max", "sppnet")
    for variant in ([f.contiguous(memory_format=torch.channels_last) for f in feats],
                    [f.transpose(2, 3).contiguous().transpose(2, 3) for f in feats]):
        got = _run(impl, variant, rois, lv, scales, (1, 2, 3, 6), "max", "sppnet")
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
    out, argmax = _run(impl, feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
    ref = spp_reference(feats, rois, scales, (1, 2, 3, 6), mode, "sppnet", roi_levels=lv)
    torch.testing.assert_close(out, ref, rtol=0 if mode == "max" else 1e-12, atol=0 if mode == "max" else 1e-12)
    grad = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = _backward(impl, grad, argmax, feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
    expected = reference_grads(feats, rois, scales, (1, 2, 3, 6), mode, "sppnet", lv, grad)
    for got, exp in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-12)


def test_empty_rois(impl):
    feats, scales = _levels(c=4)
    rois, lv = torch.zeros(0, 5), torch.zeros(0, dtype=torch.int64)
    for mode in ("max", "avg"):
        out, argmax = _run(impl, feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
        assert out.shape == (0, 4, 50) and out.dtype == torch.float32
        assert (argmax is None) == (mode == "avg")
        grads = _backward(impl, out, argmax, feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
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
    nans = [nan_with_payload(dtype, 1), nan_with_payload(dtype, 2), nan_with_payload(dtype, 3, negative=True)]
    for f in feats:
        flat = f.view(-1)
        pos = torch.randperm(flat.numel(), generator=g)[: flat.numel() // 40]
        for i, p in enumerate(pos.tolist()):
            flat[p] = nans[i % len(nans)]
    rois = torch.tensor([[0, 0, 0, 60, 48], [1, 4, 4, 30, 30], [1, -9, 3, 23, 44], [0, 8, 8, 9, 9],
                         [0, 0, 0, 60, 48], [1, 2, 30, 59, 47]], dtype=torch.float32)
    shared, shared_lv = make_rois(k_rand=2, levels=2, seed=22)
    rois = torch.cat([rois, shared])
    lv = torch.cat([torch.tensor([0, 0, 1, 1, 1, 0]), shared_lv])
    scales = (1 / 4, 1 / 8)
    out, argmax = _run(impl, feats, rois, lv, scales, (1, 2, 3, 6), "max", "round")
    expected = first_max(feats, rois, scales, (1, 2, 3, 6), "round", lv)
    assert torch.equal(argmax.long(), expected)
    # The output is the element at the argmax, bit for bit (NaN payload, zero sign).
    c = feats[0].shape[1]
    for r in range(rois.shape[0]):
        f = feats[int(lv[r])][int(rois[r, 0])].reshape(c, -1)
        assert torch.equal(bits(out[r]), torch.gather(bits(f), 1, expected[r]))
    assert torch.isnan(out).any() and (bits(out) == bits(torch.tensor(-0.0, dtype=dtype))).any()


# ---------------------------------------------------------------- backward
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pyramid", [(1, 2, 3, 6), (1, 3, 5)])
def test_backward_matches_reference_gradient(impl, mode, pyramid):
    feats, scales = _levels(seed=10, c=3, dtype=torch.float64)  # continuous values: no ties
    rois, lv = _rois(k=10, seed=11)
    out, argmax = _run(impl, feats, rois, lv, scales, pyramid, mode, "sppnet")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    grads = _backward(impl, grad, argmax, feats, rois, lv, scales, pyramid, mode, "sppnet")
    expected = reference_grads(feats, rois, scales, pyramid, mode, "sppnet", lv, grad)
    for got, exp, f in zip(grads, expected, feats, strict=True):
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
    out, argmax = _run(impl, feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(15)).to(dtype) * 1e3
    runs = [_backward(impl, grad, argmax, feats, rois, lv, scales, (1, 2, 3, 6), mode, "sppnet") for _ in range(3)]
    for other in runs[1:]:
        assert all(torch.equal(bits(a), bits(b)) for a, b in zip(runs[0], other, strict=True))
    assert all(g.dtype == dtype for g in runs[0])


def test_gradients_through_public_api(impl, monkeypatch):
    if impl is fallback:
        monkeypatch.setenv("SPP_TRITON_CPU_KERNEL", "0")
    assert torch_backend.implementation(torch.device("cpu"), PoolSpec.make((1, 2, 3, 6), "max", "sppnet", FPN_SCALES)) is impl
    feats, scales = _levels(seed=16, c=3)
    leaves = [f.clone().requires_grad_() for f in feats]
    rois, lv = _rois(k=6, seed=17)
    out = spp_roi_pool(leaves, rois, spatial_scales=scales, roi_levels=lv, backend="torch")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(18))
    got = torch.autograd.grad(out, leaves, grad)
    expected = reference_grads(feats, rois, scales, (1, 2, 3, 6), "max", "sppnet", lv, grad)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- kernel vs fallback
@pytest.mark.skipif(not _HAS_COMPILER, reason="no C++ compiler: the kernel cannot be built here")
def test_kernel_and_fallback_agree_on_realistic_proposals():
    """RPN-like proposals on the FPN levels of a 200 x 304 image, plus 500 x 16 and
    16 x 500 px boxes: bit-identical outputs, argmax and gradients."""
    feats, rois, lv, scales = fpn_inputs(48, 8, seed=19, image=(200, 304))
    w, h = torch.tensor([500.0, 16.0] * 4), torch.tensor([16.0, 500.0] * 4)
    extreme = torch.stack([torch.zeros(8), 150 - w / 2, 100 - h / 2, 150 + w / 2, 100 + h / 2], 1)
    rois = torch.cat([rois, extreme])
    lv = torch.cat([lv, fpn_levels((w * h).sqrt(), 4)])
    results = {}
    for impl in (cpp_kernel, fallback):
        out, argmax = _run(impl, feats, rois, lv, scales, (1, 2, 3, 6), "max", "sppnet")
        grads = _backward(impl, torch.ones_like(out), argmax, feats, rois, lv, scales, (1, 2, 3, 6), "max", "sppnet")
        results[impl] = (out, argmax, grads)
    (o1, a1, g1), (o2, a2, g2) = results[cpp_kernel], results[fallback]
    assert torch.equal(o1, o2) and torch.equal(a1, a2)
    assert all(torch.equal(x, y) for x, y in zip(g1, g2, strict=True))
    ref = spp_reference(feats, rois[-4:], scales, (1, 2, 3, 6), "max", "sppnet", roi_levels=lv[-4:])
    assert torch.equal(o1[-4:].double(), ref)


def test_build_failure_warns_once_and_falls_back(monkeypatch):
    from torch.utils import cpp_extension

    def broken(*args, **kwargs):
        raise OSError("no compiler here")

    monkeypatch.setattr(cpp_kernel, "_state", None)
    monkeypatch.setattr(cpp_extension, "load", broken)
    feats, scales = _levels(c=2)
    rois, lv = _rois(k=4)
    spec = PoolSpec.make((1, 2), "max", "sppnet", scales)
    with pytest.warns(RuntimeWarning, match="could not build the C\\+\\+ CPU kernel"):
        out, _ = torch_backend.forward(feats, rois, lv, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch_backend.forward(feats, rois, lv, spec)  # no second warning
    assert torch.equal(out.double(), spp_reference(feats, rois, scales, (1, 2), "max", "sppnet", roi_levels=lv))
    with pytest.raises(RuntimeError, match="kernel is unavailable"):
        cpp_kernel.forward(feats, rois, lv, spec)
