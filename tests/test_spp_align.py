"""SPP-Align (``sampling="bilinear"``): every backend against the independent reference
(``tests/reference.py: align_reference``, a plain loop per RoI and sample) and against
mmcv's own ``RoIAlign`` per grid, forward and feature gradients; gradcheck; the
argument checks; the modules, the whole-image layer and the mmdet extractor.

Backends: the registered ones (the torch backend's C++ kernel on CPU, Triton in its
interpreter or on the GPU) and the pure-PyTorch fallback (``fallback``), all on
``tests/cases.py``'s RoI list: random boxes and every special box (partly and wholly
outside, a point, one row, one column, inverted).
"""
import pytest
import torch

from spp_triton import SpatialPyramidPool, SpatialPyramidRoIPool, spp_roi_pool
from spp_triton.torch_backend import fallback
from spp_triton.geometry import PoolSpec

from cases import BACKEND_DEVICES, FPN_SCALES, HAS_TRITON, SPECIAL_BOXES, assert_bit_equal, \
    channels_last, make_features, make_rois, to
from reference import align_reference, align_reference_grads

# (pyramid, mode, sampling_ratio, aligned, dtype): together they cover both modes, aligned
# on and off, r = 0 (adaptive), 1 and 2, nested (1/2/3/6, 2/4) and non-nested (1/3/5)
# pyramids and every dtype; each case runs on all four FPN levels of cases.FPN_SHAPES.
CASES = [
    ((1, 2, 3, 6), "max", 2, True, torch.float32),
    ((1, 2, 3, 6), "avg", 2, False, torch.float32),
    ((1, 3, 5), "max", 1, False, torch.bfloat16),
    ((1, 3, 5), "avg", 0, True, torch.float16),
    ((1, 2, 3, 6), "max", 0, False, torch.float16),
    ((2, 4), "avg", 1, True, torch.bfloat16),
]
CASE_IDS = [f"{'-'.join(map(str, p))}-{m}-r{r}-{'al' if a else 'unal'}-{str(d)[6:]}" for p, m, r, a, d in CASES]


class _Fallback:
    """The pure-PyTorch path as a backend module (torch_backend runs it off CPU)."""
    forward = staticmethod(fallback.forward)
    backward = staticmethod(fallback.backward)


@pytest.fixture(params=[*BACKEND_DEVICES, "fallback"])
def impl(request, backend_entry_for):
    """(a module with the backend contract, its device) for every registered backend and
    the pure-PyTorch fallback."""
    if request.param == "fallback":
        return _Fallback, torch.device("cpu")
    entry, device = backend_entry_for(request.param)
    return entry.impl(), device


@pytest.fixture
def backend_entry_for():
    from spp_triton.registry import BACKENDS

    def get(name):
        entry, device = BACKENDS[name], BACKEND_DEVICES[name]
        reason = entry.unusable(device)
        if reason:
            pytest.skip(reason)
        return entry, device
    return get


def _inputs(dtype=torch.float32, ties=True, c=3, seed=41):
    feats = make_features(c=c, dtype=dtype, seed=seed, ties=ties)
    rois, lv = make_rois(k_rand=4, seed=seed + 1)
    return feats, rois, lv


def _spec(pyramid, mode, ratio, aligned):
    return PoolSpec.make(pyramid, mode, "sppnet", FPN_SCALES, "bilinear", ratio, aligned)


@pytest.mark.parametrize("pyramid,mode,ratio,aligned,dtype", CASES, ids=CASE_IDS)
def test_forward_matches_reference(impl, pyramid, mode, ratio, aligned, dtype):
    backend, dev = impl
    feats, rois, lv = _inputs(dtype)
    out, argmax = backend.forward(*to(dev, feats, rois, lv), _spec(pyramid, mode, ratio, aligned))
    want, chosen = align_reference(feats, rois, FPN_SCALES, pyramid, mode, ratio, aligned, lv)
    assert out.dtype == dtype and out.shape == want.shape
    if mode == "max":  # exact: the same float32 operations, then one rounding to the dtype
        assert_bit_equal(out.cpu(), want.to(torch.float32).to(dtype))
        assert argmax.dtype == torch.int32 and torch.equal(argmax.cpu().long(), chosen)
    else:
        assert argmax is None
        tol = 1e-6 if dtype == torch.float32 else 1e-2
        torch.testing.assert_close(out.cpu().double(), want.to(dtype).double(), rtol=tol, atol=tol)


def test_forward_float64_matches_reference():
    feats, rois, lv = _inputs(torch.float64)
    for mode in ("max", "avg"):
        out, _ = fallback.forward(feats, rois, lv, _spec((1, 2, 3, 6), mode, 2, True))
        got = spp_roi_pool(feats, rois, spatial_scales=FPN_SCALES, roi_levels=lv, mode=mode, sampling="bilinear",
                           backend="torch")
        want, _ = align_reference(feats, rois, FPN_SCALES, (1, 2, 3, 6), mode, 2, True, lv)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pyramid,mode,ratio,aligned", [
    ((1, 2, 3, 6), "max", 2, True), ((1, 3, 5), "avg", 1, False), ((1, 2, 3, 6), "avg", 0, True)],
    ids=["nested-max-r2-al", "direct-avg-r1-unal", "nested-avg-r0-al"])
@pytest.mark.parametrize("deterministic", [False, True], ids=["default", "deterministic"])
def test_backward_matches_reference(impl, pyramid, mode, ratio, aligned, deterministic):
    backend, dev = impl
    feats, rois, lv = _inputs(ties=False)  # continuous values: the chosen samples are unambiguous
    spec = _spec(pyramid, mode, ratio, aligned)
    feats_d, rois_d, lv_d = to(dev, feats, rois, lv)
    _, argmax = backend.forward(feats_d, rois_d, lv_d, spec)
    grad = torch.randn(rois.shape[0], 3, spec.num_bins, generator=torch.Generator().manual_seed(43))
    got = backend.backward(grad.to(dev), argmax, feats_d, rois_d, lv_d, spec, deterministic)
    want = align_reference_grads(feats, rois, FPN_SCALES, pyramid, mode, ratio, aligned, lv, grad)
    for g, w, f in zip(got, want, feats, strict=True):
        assert g.shape == f.shape and g.dtype == f.dtype
        torch.testing.assert_close(g.cpu().double(), w, rtol=1e-5, atol=1e-5)
    if deterministic:
        again = backend.backward(grad.to(dev), argmax, feats_d, rois_d, lv_d, spec, True)
        for a, b in zip(got, again, strict=True):
            assert_bit_equal(a, b)


def test_channels_last_in_and_out(impl):
    """Channels-last maps give the same values and argmax; gradients come back channels-last."""
    backend, dev = impl
    feats, rois, lv = _inputs(ties=False, c=5)
    spec = _spec((1, 2, 3, 6), "max", 2, True)
    want, want_arg = backend.forward(*to(dev, feats, rois, lv), spec)
    feats_cl, rois_d, lv_d = to(dev, channels_last(feats), rois, lv)
    out, argmax = backend.forward(feats_cl, rois_d, lv_d, spec)
    assert_bit_equal(out, want)
    assert torch.equal(argmax, want_arg)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(44)).to(dev)
    grads = backend.backward(grad, argmax, feats_cl, rois_d, lv_d, spec, False)
    nchw = backend.backward(grad, want_arg, [f.to(dev) for f in feats], rois_d, lv_d, spec, False)
    for g, w in zip(grads, nchw, strict=True):
        assert g.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)


def test_nan_and_infinity():
    """A NaN sample makes its bin NaN (max: any bin holding it; avg: its sum); +-inf
    corners give +-inf or NaN samples as IEEE arithmetic does; every backend alike."""
    feats, rois, lv = _inputs(ties=False)
    g = torch.Generator().manual_seed(45)
    for f in feats[:3]:  # a few cells of each map NaN, +inf or -inf
        pick = torch.rand(f.shape, generator=g)
        f[pick < 0.02] = float("nan")
        f[(pick >= 0.02) & (pick < 0.04)] = float("inf")
        f[(pick >= 0.04) & (pick < 0.06)] = -float("inf")
    for mode in ("max", "avg"):
        spec = _spec((1, 2, 3, 6), mode, 2, True)
        want, _ = align_reference(feats, rois, FPN_SCALES, (1, 2, 3, 6), mode, 2, True, lv)
        assert torch.isnan(want).any() and torch.isinf(want).any() and torch.isfinite(want).any()
        outs = [fallback.forward(feats, rois, lv, spec)[0]]
        outs.append(spp_roi_pool(feats, rois, spatial_scales=FPN_SCALES, roi_levels=lv, mode=mode,
                                 sampling="bilinear", backend="torch"))
        for out in outs:
            assert torch.equal(torch.isnan(out), torch.isnan(want))
            finite = ~torch.isnan(want)
            torch.testing.assert_close(out.double()[finite], want[finite], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- against mmcv's RoIAlign
def _mmcv_grids(feats, rois, lv, pyramid, mode, ratio, aligned, requires_grad=False):
    """(K, C, B) from mmcv.ops.roi_align: grid n of a nested pyramid with r G / n samples
    per bin (r for a non-nested one), per level, in pyramid order; the leaves."""
    roi_align = pytest.importorskip("mmcv.ops").roi_align
    leaves = [f.detach().clone().requires_grad_(requires_grad) for f in feats]
    g = max(pyramid)
    nested = all(g % n == 0 for n in pyramid)
    k, c = rois.shape[0], feats[0].shape[1]
    parts = []
    for n in pyramid:
        grid = torch.zeros(k, c, n * n)
        for level, (f, s) in enumerate(zip(leaves, FPN_SCALES)):
            idx = torch.nonzero(lv == level).flatten()
            if idx.numel():
                pooled = roi_align(f, rois[idx], (n, n), s, ratio * (g // n if nested else 1), mode, aligned)
                grid = grid.index_put((idx,), pooled.reshape(idx.numel(), c, n * n))
        parts.append(grid)
    return torch.cat(parts, 2), leaves


def _mmcv_rois(aligned):
    """cases' RoIs and levels; mmcv's CPU kernel refuses inverted RoIs when aligned."""
    rois, lv = make_rois(k_rand=8, seed=51)
    if aligned:
        keep = (rois[:, 3] >= rois[:, 1]) & (rois[:, 4] >= rois[:, 2])
        rois, lv = rois[keep], lv[keep]
    return rois, lv


@pytest.mark.parametrize("pyramid,mode,ratio,aligned", [
    ((1, 2, 3, 6), "max", 2, True), ((1, 2, 3, 6), "avg", 2, True), ((1, 2, 3, 6), "max", 1, False),
    ((1, 2, 3, 6), "avg", 1, False), ((1, 3, 5), "max", 2, True), ((1, 3, 5), "avg", 2, False)],
    ids=["nested-max-r2-al", "nested-avg-r2-al", "nested-max-r1-unal", "nested-avg-r1-unal", "direct-max-r2-al",
         "direct-avg-r2-unal"])
def test_every_grid_is_mmcv_roi_align(pyramid, mode, ratio, aligned):
    """Grid n = mmcv RoIAlign(n, s, r G / n, mode, aligned) on CPU, forward and feature
    gradients (continuous features, all above mmcv's -10000 start of the max). The finest
    grid samples mmcv's own coordinates, so it matches mmcv bit for bit."""
    feats = make_features(c=3, seed=52, ties=False)
    rois, lv = _mmcv_rois(aligned)
    leaves = [f.clone().requires_grad_() for f in feats]
    ours = spp_roi_pool(leaves, rois, spatial_scales=FPN_SCALES, roi_levels=lv, pyramid=pyramid, mode=mode,
                        sampling="bilinear", sampling_ratio=ratio, aligned=aligned, backend="torch")
    theirs, their_leaves = _mmcv_grids(feats, rois, lv, pyramid, mode, ratio, aligned, requires_grad=True)
    # The coarser grids' coordinates may differ from mmcv's by a float32 rounding (an ulp
    # of coordinates up to ~20 is 2e-6), so their values by about that times the map's slope.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    g = max(pyramid)
    last = slice(ours.shape[2] - g * g, None)
    assert torch.equal(ours[:, :, last], theirs[:, :, last].detach())  # the finest grid: mmcv's own coordinates
    grad = torch.randn(ours.shape, generator=torch.Generator().manual_seed(53))
    mine = torch.autograd.grad(ours, leaves, grad)
    want = torch.autograd.grad(theirs, their_leaves, grad)
    for a, b in zip(mine, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_matches_mmcv_roi_align():
    """The Triton kernels (interpreted on CPU, or compiled on the GPU) against mmcv."""
    feats = make_features(c=3, seed=54, ties=False)
    rois, lv = _mmcv_rois(True)
    dev = BACKEND_DEVICES["triton"]
    leaves = [f.to(dev).requires_grad_() for f in feats]
    ours = spp_roi_pool(leaves, rois.to(dev), spatial_scales=FPN_SCALES, roi_levels=lv.to(dev), mode="avg",
                        sampling="bilinear", backend="triton")
    theirs, their_leaves = _mmcv_grids(feats, rois, lv, (1, 2, 3, 6), "avg", 2, True, requires_grad=True)
    torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-5, atol=1e-5)
    grad = torch.randn(ours.shape, generator=torch.Generator().manual_seed(55))
    mine = torch.autograd.grad(ours, leaves, grad.to(dev))
    want = torch.autograd.grad(theirs, their_leaves, grad)
    for a, b in zip(mine, want, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("kernel", ["cpu", "fallback"])
@pytest.mark.parametrize("pyramid,mode,ratio,aligned", [
    ((1, 2, 3, 6), "max", 2, True), ((1, 2, 3, 6), "avg", 0, False), ((1, 3), "avg", 2, True),
    ((2, 3), "max", 1, False)], ids=["nested-max", "nested-avg-adaptive", "direct-avg", "direct-max"])
def test_gradcheck_float64(kernel, pyramid, mode, ratio, aligned, monkeypatch):
    if kernel == "fallback":
        monkeypatch.setenv("SPP_TRITON_CPU_KERNEL", "0")
    # Small maps (the numerical Jacobian costs two calls per element), RoIs on both levels.
    feats = [f.requires_grad_() for f in make_features([(9, 8), (5, 4)], c=2, dtype=torch.float64, ties=False,
                                                       seed=56)]
    rois, lv = make_rois(k_rand=3, seed=57, levels=2, extent=30.0)
    keep = torch.arange(rois.shape[0]) != 3  # all but SPECIAL_BOXES[0], whose adaptive lattice is 114 x 114
    rois, lv = rois[keep].double(), lv[keep]

    def fn(*fs):
        return spp_roi_pool(list(fs), rois, spatial_scales=FPN_SCALES[:2], roi_levels=lv, pyramid=pyramid, mode=mode,
                            sampling="bilinear", sampling_ratio=ratio, aligned=aligned, backend="torch")

    assert torch.autograd.gradcheck(fn, tuple(feats), eps=1e-6, atol=1e-6, fast_mode=True)


# ---------------------------------------------------------------- options and errors
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(sampling="bicubic"), ValueError, r"sampling must be one of \('cells', 'bilinear'\), got 'bicubic'"),
    (dict(sampling="bilinear", sampling_ratio=-1), ValueError, "sampling_ratio must be >= 0"),
    (dict(sampling="bilinear", sampling_ratio=2.0), TypeError, "sampling_ratio must be an int"),
    (dict(sampling="bilinear", sampling_ratio=True), TypeError, "sampling_ratio must be an int"),
    (dict(sampling="bilinear", sampling_ratio=10**4), ValueError, r"sampling_ratio \* max\(pyramid\)"),
    (dict(sampling="bilinear", aligned=1), TypeError, "aligned must be a bool, got 1"),
    (dict(sampling="bilinear", projection="sppnet"), ValueError, "projection='sppnet' applies to sampling='cells'"),
    (dict(sampling="bilinear", projection="round"), ValueError, "projection='round' applies to sampling='cells'"),
])
def test_bad_options_are_named(kwargs, error, match):
    feats, rois, lv = _inputs()
    with pytest.raises(error, match=match):
        spp_roi_pool(feats, rois, spatial_scales=FPN_SCALES, roi_levels=lv, **kwargs)
    with pytest.raises(error, match=match):
        SpatialPyramidRoIPool(spatial_scales=FPN_SCALES, **kwargs)
    if "projection" not in kwargs:
        with pytest.raises(error, match=match):
            SpatialPyramidPool(**kwargs)


def test_cells_default_unchanged_and_bilinear_options_named_in_repr():
    feats, rois, lv = _inputs()
    cells = spp_roi_pool(feats, rois, spatial_scales=FPN_SCALES, roi_levels=lv)
    explicit = spp_roi_pool(feats, rois, spatial_scales=FPN_SCALES, roi_levels=lv, projection="sppnet",
                            sampling="cells")
    assert_bit_equal(cells, explicit)
    assert "sampling='bilinear', sampling_ratio=0, aligned=False" in repr(
        SpatialPyramidRoIPool(sampling="bilinear", sampling_ratio=0, aligned=False))
    assert "projection='sppnet'" in repr(SpatialPyramidRoIPool())


@pytest.mark.parametrize("aligned", [True, False])
def test_whole_image_layer_bilinear(aligned):
    """SpatialPyramidPool(sampling="bilinear") pools each map's whole window: (0, 0, W, H)
    when aligned ([-0.5, W - 0.5]), (0, 0, W - 1, H - 1) otherwise; a list in one call."""
    maps = make_features([(7, 5), (4, 9)], c=3, n=2, ties=False, seed=58)
    spp = SpatialPyramidPool(sampling="bilinear", aligned=aligned, mode="avg")
    out = spp(maps)
    assert out.shape == (4, 3, 50)
    for i, m in enumerate(maps):
        h, w = m.shape[2:]
        extent = 0 if aligned else 1
        rois = torch.tensor([[b, 0.0, 0.0, w - extent, h - extent] for b in range(2)])
        want, _ = align_reference([m], rois, [1.0], (1, 2, 3, 6), "avg", 2, aligned)
        torch.testing.assert_close(out[2 * i:2 * i + 2].double(), want, rtol=1e-6, atol=1e-6)
    # Aligned, the 1 x 1 bin of a 2 x 2 lattice per cell averages every cell's samples:
    # on a constant map it is the constant.
    const = torch.full((1, 2, 6, 4), 3.0)
    assert torch.allclose(SpatialPyramidPool(sampling="bilinear", mode="avg")(const), torch.tensor(3.0))


def test_torch_compile_and_export():
    feats, rois, lv = _inputs()
    pool = SpatialPyramidRoIPool(spatial_scales=FPN_SCALES, sampling="bilinear", backend="torch").eval()
    want = pool(feats, rois, lv)
    compiled = torch.compile(pool, fullgraph=True, backend="eager")
    assert_bit_equal(compiled(feats, rois, lv), want)
    k = torch.export.Dim("K")
    prog = torch.export.export(pool, (feats, rois, lv), dynamic_shapes=([None] * 4, {0: k}, {0: k}))
    assert_bit_equal(prog.module()(feats, rois, lv), want)
    assert_bit_equal(prog.module()(feats, rois[:3], lv[:3]), want[:3])


def test_extractor_bilinear_options():
    pytest.importorskip("mmdet")
    from mmdet_plugin import SPPRoIExtractor

    ext = SPPRoIExtractor(out_channels=3, featmap_strides=[4, 8, 16, 32], sampling="bilinear", sampling_ratio=1,
                          aligned=False, mode="avg")
    assert "sampling='bilinear', sampling_ratio=1, aligned=False" in repr(ext.pool)
    feats = make_features(c=3, seed=59)
    rois, _ = make_rois(k_rand=6, seed=60)
    levels = ext.map_roi_levels(rois, 4)
    want = spp_roi_pool(feats, rois, spatial_scales=FPN_SCALES, roi_levels=levels, mode="avg", sampling="bilinear",
                        sampling_ratio=1, aligned=False)
    assert_bit_equal(ext(feats, rois), want)
    with pytest.raises(ValueError, match="projection='sppnet' applies to sampling='cells'"):
        SPPRoIExtractor(out_channels=3, featmap_strides=[4], sampling="bilinear", projection="sppnet")


def test_special_boxes_are_in_the_cases():
    """The forward tests above run on every special box (cases.make_rois appends them)."""
    rois, _ = make_rois(k_rand=4)
    assert torch.equal(rois[-SPECIAL_BOXES.shape[0]:, 1:], SPECIAL_BOXES[:, 1:])
