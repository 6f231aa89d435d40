"""The Triton backend (spp_triton.triton_backend): compiled on the GPU when there is one,
else run by Triton's interpreter on CPU tensors (tests/conftest.py decides).

Max mode must match the torch backend bit for bit (values, NaN payloads, the sign of
zero, argmax) and tests/reference.py exactly; avg mode within float32 rounding; both
layouts (NCHW, channels-last) read in place with identical results; the gradients those
of the torch backend, in the features' layout, and deterministic=True bit-identical run
to run and across layouts.

The interpreter costs ~0.1-0.3 s per program (one RoI x one channel block), so the
shapes are small and the parameter combinations pairwise rather than exhaustive.
"""
import math

import pytest
import torch

pytest.importorskip("triton")

from spp_triton import torch_backend  # noqa: E402
from spp_triton import triton_backend  # noqa: E402
from spp_triton.geometry import PoolSpec  # noqa: E402

from cases import (FPN_SCALES, FPN_SHAPES, SINGLE_SCALES, SINGLE_SHAPES, TRITON_DEVICE,  # noqa: E402
                   assert_bit_equal, bits, channels_last, gather_at, make_features, make_rois,
                   nan_with_payload, to)
from reference import first_max, reference_grads, spp_reference  # noqa: E402

DEV = TRITON_DEVICE


def _feats(levels, c, dtype, seed=0, n=2, ties=True, layout="nchw"):
    """The shared maps (4 levels: 20x17, 10x9, 5x4, 1x1; 1 level: 13x11), on the CPU;
    with ``ties`` half of every map integer-valued (first-maximum rule)."""
    shapes, scales = (FPN_SHAPES, FPN_SCALES) if levels == 4 else (SINGLE_SHAPES, SINGLE_SCALES)
    feats = make_features(shapes, c, dtype, n=n, seed=seed, ties=ties)
    return (channels_last(feats) if layout == "cl" else feats), scales


def _rois(levels, k_rand=5, n=2, seed=1):
    """The shared RoI list: random boxes plus tests/cases.SPECIAL_BOXES."""
    return make_rois(k_rand=k_rand, n_images=n, levels=levels, seed=seed)


def _spec(pyramid, mode, projection, scales):
    return PoolSpec.make(pyramid, mode, projection, scales)


def _triton_forward(feats, rois, lv, spec):
    out, argmax = triton_backend.forward(*to(DEV, feats, rois, lv), spec)
    return out.cpu(), (None if argmax is None else argmax.cpu())


def _triton_backward(grad_out, argmax, feats, rois, lv, spec, det):
    argmax = None if argmax is None else argmax.to(DEV)
    grad_out, rois, lv = to(DEV, grad_out, rois, lv)
    feats_meta = [f.to("meta") for f in feats]  # shape, dtype and layout only, as op.py passes them
    return [g.cpu() for g in triton_backend.backward(grad_out, argmax, feats_meta, rois, lv, spec, det)]


def _both(feats, rois, lv, scales, pyramid, mode, projection):
    spec = _spec(pyramid, mode, projection, scales)
    return _triton_forward(feats, rois, lv, spec), torch_backend.forward(feats, rois, lv, spec)


# Pairwise over (levels, pyramid, projection, dtype, layout); C = 13 spans two channel
# blocks of the interpreter's BLOCK_C = 8, C = 5 one partial block.
MAX_CASES = [
    (4, (1, 2, 3, 6), "sppnet", torch.float32, 13, "nchw"),
    (1, (1, 3, 5), "round", torch.float32, 5, "cl"),
    (4, (1, 3, 5), "round", torch.float16, 5, "nchw"),
    (1, (1, 2, 3, 6), "sppnet", torch.float16, 13, "cl"),
    (4, (1, 2, 3, 6), "round", torch.bfloat16, 5, "cl"),
    (1, (1, 3, 5), "sppnet", torch.bfloat16, 5, "nchw"),
]


@pytest.mark.parametrize("levels,pyramid,projection,dtype,c,layout", MAX_CASES)
def test_forward_max_exact(levels, pyramid, projection, dtype, c, layout):
    feats, scales = _feats(levels, c, dtype, layout=layout)
    rois, lv = _rois(levels)
    (out, argmax), (want, want_arg) = _both(feats, rois, lv, scales, pyramid, "max", projection)
    assert out.shape == (rois.shape[0], c, sum(n * n for n in pyramid)) and out.dtype == dtype
    assert argmax.dtype == torch.int32
    assert_bit_equal(out, want)
    assert torch.equal(argmax, want_arg)
    assert torch.equal(argmax.long(), first_max(feats, rois, scales, pyramid, projection, lv))
    assert_bit_equal(out, gather_at(feats, rois, lv, argmax))
    ref = spp_reference(feats, rois, scales, pyramid, "max", projection, roi_levels=lv)
    assert torch.equal(out.double(), ref)


def test_forward_max_two_channel_blocks_and_rois_on_one_image():
    """N = 1, C = 13 with the nested kernel (two channel blocks), pyramid (1, 2, 4)."""
    feats, scales = _feats(4, 13, torch.float32, seed=3, n=1)
    rois, lv = _rois(4, k_rand=2, n=1, seed=4)
    (out, argmax), (want, want_arg) = _both(feats, rois, lv, scales, (1, 2, 4), "max", "sppnet")
    assert_bit_equal(out, want)
    assert torch.equal(argmax, want_arg)


def test_forward_windows_wider_than_one_tile():
    """Windows of up to 40 x 36 cells, more than the interpreter's 16 x 16 tile (and every
    GPU tile) in both directions: the tiles must partition the window exactly."""
    g = torch.Generator().manual_seed(11)
    feats = [torch.randn(1, 3, 40, 36, generator=g)]
    rois = torch.tensor([[0, 0, 0, 143, 159], [0, 10, 3, 130, 150], [0, 60, 70, 61, 160]], dtype=torch.float32)
    lv = torch.zeros(3, dtype=torch.int64)
    for mode in ("max", "avg"):
        (out, _), (want, _) = _both(feats, rois, lv, (0.25,), (1, 2, 3, 6), mode, "round")
        ref = spp_reference(feats, rois, (0.25,), (1, 2, 3, 6), mode, "round", roi_levels=lv)
        if mode == "max":
            assert_bit_equal(out, want)
            assert torch.equal(out.double(), ref)
        else:
            torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_forward_singletons(mode):
    """N = C = B = 1 and a 1x1 level (ints equal to 1 are specialised by Triton)."""
    g = torch.Generator().manual_seed(10)
    feats = [torch.randn(1, 1, 5, 4, generator=g), torch.randn(1, 1, 1, 1, generator=g)]
    rois = torch.tensor([[0, 2, 3, 30, 40], [0, -5, 0, 9, 9]], dtype=torch.float32)
    lv = torch.tensor([0, 1])
    (out, argmax), (want, want_arg) = _both(feats, rois, lv, (1 / 8, 1 / 16), (1,), mode, "round")
    if mode == "max":
        assert_bit_equal(out, want)
        assert torch.equal(argmax, want_arg)
    else:
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("levels,pyramid,projection,dtype,layout", [
    (4, (1, 2, 3, 6), "sppnet", torch.float32, "cl"),
    (1, (1, 3, 5), "round", torch.bfloat16, "nchw"),
])
def test_forward_avg(levels, pyramid, projection, dtype, layout):
    feats, scales = _feats(levels, 5, dtype, seed=2, layout=layout)
    rois, lv = _rois(levels, k_rand=2, seed=5)
    (out, argmax), (want, _) = _both(feats, rois, lv, scales, pyramid, "avg", projection)
    assert argmax is None and out.dtype == dtype
    ref = spp_reference([f.float() for f in feats], rois, scales, pyramid, "avg", projection, roi_levels=lv)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=8e-3, atol=8e-3)
    torch.testing.assert_close(out.float(), want.float(), **tol)
    torch.testing.assert_close(out.double(), ref, **tol)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_channels_last_gives_the_same_results(mode):
    """The same maps in NCHW and channels-last: bit-identical forward; backward in the
    input's layout, bit-identical with deterministic=True."""
    feats, scales = _feats(4, 6, torch.float32, seed=12, ties=False)
    rois, lv = _rois(4, k_rand=3, seed=13)
    spec = _spec((1, 2, 3, 6), mode, "sppnet", scales)
    results = {}
    for layout, fs in (("nchw", feats), ("cl", channels_last(feats))):
        out, argmax = _triton_forward(fs, rois, lv, spec)
        grad = torch.linspace(-2, 3, out.numel()).view(out.shape)
        grads = _triton_backward(grad, argmax, fs, rois, lv, spec, True)
        fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
        assert all(g.is_contiguous(memory_format=fmt) for g in grads)
        results[layout] = (out, argmax, grads)
    (o1, a1, g1), (o2, a2, g2) = results["nchw"], results["cl"]
    assert_bit_equal(o1, o2)
    assert (a1 is None and a2 is None) or torch.equal(a1, a2)
    for x, y in zip(g1, g2, strict=True):
        assert_bit_equal(x.contiguous(), y.contiguous())


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_k_zero(mode):
    feats, scales = _feats(4, 5, torch.float32)
    rois = torch.zeros(0, 5)
    lv = torch.zeros(0, dtype=torch.int64)
    spec = _spec((1, 2, 3, 6), mode, "sppnet", scales)
    out, argmax = _triton_forward(feats, rois, lv, spec)
    assert out.shape == (0, 5, 50) and out.dtype == torch.float32
    assert (argmax is None) == (mode == "avg")
    if argmax is not None:
        assert argmax.shape == (0, 5, 50) and argmax.dtype == torch.int32
    grads = _triton_backward(out, argmax, feats, rois, lv, spec, False)
    assert [g.shape for g in grads] == [f.shape for f in feats]
    assert all(g.dtype == torch.float32 and not g.any() for g in grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pyramid", [(1, 2), (1, 3)])
def test_nan_and_signed_zero(dtype, pyramid):
    """NaN is the largest value and the FIRST NaN is returned with its own payload;
    -0.0 and +0.0 tie, the first of them is returned with its sign."""
    f = torch.full((1, 2, 6, 6), -3.0, dtype=dtype)
    # channel 0: two NaNs with different payloads (a negative one first) and a +inf
    f[0, 0, 1, 2] = nan_with_payload(dtype, 5, negative=True)
    f[0, 0, 2, 0] = nan_with_payload(dtype, 9)
    f[0, 0, 0, 5] = math.inf
    # channel 1: zeros of both signs, -0.0 first in the top-left bins, +0.0 first elsewhere
    f[0, 1, 0, 1] = -0.0
    f[0, 1, 1, 0] = 0.0
    f[0, 1, 4, 4] = 0.0
    f[0, 1, 4, 5] = -0.0
    rois = torch.tensor([[0, 0, 0, 27, 27], [0, 4, 0, 23, 11]], dtype=torch.float32)
    lv = torch.zeros(2, dtype=torch.int64)
    (out, argmax), (want, want_arg) = _both([f], rois, lv, (0.25,), pyramid, "max", "sppnet")
    assert_bit_equal(out, want)
    assert torch.equal(argmax, want_arg)
    # RoI 0, bin 0 (the whole 6x6 map): the first NaN in row-major order, sign and payload kept
    assert int(argmax[0, 0, 0]) == 1 * 6 + 2
    assert_bit_equal(out[0, 0, :1], f[0, 0, 1, 2].reshape(1))
    # channel 1, whole map: the first zero is -0.0 at (0, 1)
    assert int(argmax[0, 1, 0]) == 1 and out[0, 1, 0] == 0 and math.copysign(1, float(out[0, 1, 0])) < 0
    if pyramid == (1, 2):  # bottom-right 3x3 bin: +0.0 at (4, 4) precedes -0.0 at (4, 5)
        assert int(argmax[0, 1, 4]) == 4 * 6 + 4 and math.copysign(1, float(out[0, 1, 4])) > 0


def test_garbage_inputs_stay_in_bounds():
    """Out-of-range batch / level, huge and non-finite coordinates (normally rejected by
    the argument checks): no out-of-bounds access, argmax inside the level's map."""
    feats, scales = _feats(4, 5, torch.float32)
    rois = torch.tensor([[7, -1e30, 1e30, 1e30, -1e30], [-3, math.nan, 0, math.inf, -math.inf],
                         [1.9, 2**31, -2**31, 5, 5]], dtype=torch.float32)
    lv = torch.tensor([9, -4, 3])
    out, argmax = _triton_forward(feats, rois, lv, _spec((1, 2), "max", "round", scales))
    sizes = torch.tensor([1 * 1, 20 * 17, 1 * 1])  # levels clamp to 3, 0, 3
    assert (argmax >= 0).all() and (argmax < sizes[:, None, None]).all()


@pytest.mark.parametrize("mode,pyramid,projection,dtype,layout", [
    ("max", (1, 2, 3, 6), "sppnet", torch.float32, "nchw"),
    ("max", (1, 3, 5), "round", torch.bfloat16, "cl"),
    ("avg", (1, 2, 3, 6), "round", torch.float32, "cl"),
    ("avg", (1, 3, 5), "sppnet", torch.float16, "nchw"),
])
def test_backward(mode, pyramid, projection, dtype, layout):
    """Atomic and deterministic gradients against the torch backend's (the argmax comes
    from the torch forward, which the forward tests show equal to Triton's), in the
    features' dtype and layout; deterministic ones bit-identical run to run."""
    feats, scales = _feats(4, 5, dtype, seed=6, layout=layout)
    rois, lv = _rois(4, k_rand=5 if mode == "max" else 1, seed=7)
    spec = _spec(pyramid, mode, projection, scales)
    _, argmax = torch_backend.forward(feats, rois, lv, spec)
    g = torch.Generator().manual_seed(8)
    grad_out = torch.randn(rois.shape[0], 5, spec.num_bins, generator=g).to(dtype)
    want = torch_backend.backward(grad_out, argmax, feats, rois, lv, spec)
    atomic = _triton_backward(grad_out, argmax, feats, rois, lv, spec, False)
    det1 = _triton_backward(grad_out, argmax, feats, rois, lv, spec, True)
    det2 = _triton_backward(grad_out, argmax, feats, rois, lv, spec, True)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    for a, d1, d2, w, f in zip(atomic, det1, det2, want, feats, strict=True):
        assert a.shape == f.shape and a.dtype == dtype and d1.dtype == dtype
        assert a.is_contiguous(memory_format=fmt) and d1.is_contiguous(memory_format=fmt)
        torch.testing.assert_close(a.float(), w.float(), **tol)
        torch.testing.assert_close(d1.float(), w.float(), **tol)
        assert torch.equal(bits(d1), bits(d2))


def _fixed_point_step(grad_out, k, bins):
    """The deterministic backward's rounding step (shared_kernels._fixed_shift)."""
    top = float(grad_out[torch.isfinite(grad_out)].abs().max())
    headroom = math.ceil(math.log2(max(k * bins, 2))) + 1
    return 2.0 ** (math.floor(math.log2(top)) + 1 - (62 - headroom))


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e30])
def test_deterministic_backward_against_float64_reference(mode, scale):
    """Fixed-point sums: within (terms) x step / 2 of the float64 reference, plus float32
    rounding of each term and of the result, at any magnitude of the gradient."""
    feats, scales = _feats(4, 3, torch.float64, seed=14, ties=False)
    rois, lv = _rois(4, k_rand=6, seed=15)
    spec = _spec((1, 2, 3, 6), mode, "sppnet", scales)
    _, argmax = torch_backend.forward(feats, rois, lv, spec)
    grad = (torch.randn(rois.shape[0], 3, spec.num_bins, generator=torch.Generator().manual_seed(16),
                        dtype=torch.float64) * scale).float()  # the reference sums these float32 values exactly
    expected = reference_grads(feats, rois, scales, (1, 2, 3, 6), mode, "sppnet", lv, grad.double())
    got = _triton_backward(grad, argmax, [f.float() for f in feats], rois, lv, spec, True)
    step = _fixed_point_step(grad, rois.shape[0], spec.num_bins)
    # Each term's own float32 rounding (avg: grad / cells, summed over a RoI's bins in a
    # program before the fixed-point conversion) is relative to the term, so the bound
    # uses the sum of the terms' magnitudes: the reference gradient of |grad|.
    magnitude = reference_grads(feats, rois, scales, (1, 2, 3, 6), mode, "sppnet", lv, grad.double().abs())
    for g, e, a in zip(got, expected, magnitude, strict=True):
        bound = rois.shape[0] * spec.num_bins * step / 2 + a * 2.0 ** -21 + e.abs() * 2.0 ** -23
        assert ((g.double() - e).abs() <= bound).all()


def test_deterministic_backward_non_finite_gradients():
    """NaN and +-inf in grad_out sum as IEEE floats do: NaN wins, inf + -inf = NaN,
    inf + finite = inf; finite cells are unaffected."""
    feats, scales = _feats(1, 2, torch.float32, seed=17, ties=False, n=1)
    rois = torch.tensor([[0, 0, 0, 51, 43], [0, 0, 0, 51, 43], [0, 20, 20, 40, 40]], dtype=torch.float32)
    lv = torch.zeros(3, dtype=torch.int64)
    spec = _spec((1, 2), "max", "round", scales)
    _, argmax = torch_backend.forward(feats, rois, lv, spec)
    grad = torch.ones(3, 2, 5)
    grad[0, 0, 0] = math.inf  # RoIs 0 and 1 share their bins: inf + -inf = NaN
    grad[1, 0, 0] = -math.inf
    grad[0, 1, 1] = math.inf  # inf + 1 = inf
    grad[1, 1, 2] = math.nan
    expected = reference_grads(feats, rois, scales, (1, 2), "max", "round", lv, grad.double())[0].float()
    got = _triton_backward(grad, argmax, feats, rois, lv, spec, True)[0]
    assert torch.isnan(expected).any() and torch.isinf(expected).any()
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    finite = ~torch.isnan(expected)
    assert torch.equal(got[finite], expected[finite])  # integer-valued sums and infinities: exact


def test_backward_meta_feats_and_separate_outputs():
    """feats may be meta tensors (as op.py passes them); outputs do not share storage."""
    feats, scales = _feats(4, 5, torch.float32)
    rois, lv = _rois(4, k_rand=1, seed=9)
    spec = _spec((1, 2), "max", "sppnet", scales)
    _, argmax = torch_backend.forward(feats, rois, lv, spec)
    grad_out = torch.ones(rois.shape[0], 5, spec.num_bins)
    grads = triton_backend.backward(grad_out.to(DEV), argmax.to(DEV), [f.to("meta") for f in feats],
                                    *to(DEV, rois, lv), spec, False)
    want = torch_backend.backward(grad_out, argmax, feats, rois, lv, spec)
    for gt, w in zip(grads, want, strict=True):
        assert torch.equal(gt.cpu(), w)  # integer-valued sums: exact in any order
    ptrs = {g.untyped_storage().data_ptr() for g in grads}
    assert len(ptrs) == len(grads)
