"""The Triton backend (spp_triton.triton_backend), run by Triton's interpreter on CPU
tensors (tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported).

Max mode must match the PyTorch backend bit for bit (values, NaN payloads, the sign of
zero, argmax) and the slow reference exactly; avg mode within float32 rounding; the
gradients those of the PyTorch backend, and deterministic=True bit-identical run to run.

The interpreter costs ~0.1-0.2 s per program (one RoI x one channel block), so the
shapes are small and the parameter combinations are pairwise rather than exhaustive.
"""
import math

import pytest
import torch

triton = pytest.importorskip("triton")

from spp_triton import torch_backend  # noqa: E402
from spp_triton import triton_backend  # noqa: E402
from spp_triton.geometry import PyramidPlan  # noqa: E402

from reference import spp_reference  # noqa: E402

_INT_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
SCALES4 = (1 / 4, 1 / 8, 1 / 16, 1 / 32)


def _feats(levels, c, dtype, seed=0, n=2):
    """``levels`` maps (4: 20x17, 10x9, 5x4, 1x1; 1: 13x11); half of every map is
    integer-valued so that bins hold ties (first-maximum rule)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(20, 17), (10, 9), (5, 4), (1, 1)] if levels == 4 else [(13, 11)]
    out = []
    for h, w in shapes:
        x = torch.randn(n, c, h, w, generator=g)
        ties = torch.randint(-2, 3, (n, c, h, w), generator=g).float()
        pick = torch.rand(n, c, h, w, generator=g) < 0.5
        out.append(torch.where(pick, ties, x).to(dtype))
    return out, (SCALES4 if levels == 4 else (1 / 4,))


def _rois(levels, k_rand=5, n=2, seed=1):
    """Random boxes plus special ones (larger than the map, partly / wholly outside,
    degenerate x2 < x1, a point, one column, one row), all on a ~80 x 68 image."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k_rand, 2, generator=g) * 50
    wh = torch.rand(k_rand, 2, generator=g) * 60 + 1
    rand = torch.cat([torch.randint(0, n, (k_rand, 1), generator=g).float(), xy, xy + wh], 1)
    special = torch.tensor([
        [0, -50, -40, 400, 300],   # larger than every map
        [1, -30, 10, 25, 40],      # partly outside
        [1, 300, 200, 500, 400],   # wholly outside (bottom-right)
        [0, -90, -90, -20, -10],   # wholly outside (top-left)
        [1, 40, 30, 10, 5],        # degenerate: x2 < x1, y2 < y1
        [0, 20.5, 20, 20.5, 20],   # a point
        [1, 3.7, 5.2, 4.1, 60.9],  # one column wide
    ], dtype=torch.float32)
    rois = torch.cat([rand, special])
    lv = torch.randint(0, levels, (rois.shape[0],), generator=g)
    return rois, lv


def _bits(t):
    return t.contiguous().view(_INT_VIEW[t.dtype])


def _assert_bit_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(_bits(a), _bits(b)), "values differ (bitwise)"


def _gather_at(feats, rois, lv, argmax):
    """The feature elements at argmax: (K, C, B) in the features' dtype."""
    k, c, nb = argmax.shape
    out = torch.empty(k, c, nb, dtype=feats[0].dtype)
    for r in range(k):
        f = feats[int(lv[r])][int(rois[r, 0])].flatten(1)  # (C, H * W)
        out[r] = torch.gather(f, 1, argmax[r].long())
    return out


def _both(feats, rois, lv, scales, pyramid, mode, projection):
    plan = PyramidPlan.make(pyramid, mode)
    got = triton_backend.forward(feats, rois, lv, scales, plan, mode, projection)
    want = torch_backend.forward(feats, rois, lv, scales, plan, mode, projection)
    return got, want


# Pairwise over (levels, pyramid, projection, dtype); C = 13 spans two channel blocks of
# the interpreter's BLOCK_C = 8, C = 5 one partial block.
MAX_CASES = [
    (4, (1, 2, 3, 6), "sppnet", torch.float32, 13),
    (1, (1, 3, 5), "round", torch.float32, 5),
    (4, (1, 3, 5), "round", torch.float16, 5),
    (1, (1, 2, 3, 6), "sppnet", torch.float16, 13),
    (4, (1, 2, 3, 6), "round", torch.bfloat16, 5),
    (1, (1, 3, 5), "sppnet", torch.bfloat16, 5),
]


@pytest.mark.parametrize("levels,pyramid,projection,dtype,c", MAX_CASES)
def test_forward_max_exact(levels, pyramid, projection, dtype, c):
    feats, scales = _feats(levels, c, dtype)
    rois, lv = _rois(levels)
    (out, argmax), (want, want_arg) = _both(feats, rois, lv, scales, pyramid, "max", projection)
    assert out.shape == (rois.shape[0], c, sum(n * n for n in pyramid)) and out.dtype == dtype
    assert argmax.dtype == torch.int32
    _assert_bit_equal(out, want)
    assert torch.equal(argmax, want_arg)
    _assert_bit_equal(out, _gather_at(feats, rois, lv, argmax))
    ref = spp_reference(feats, rois, scales, pyramid, "max", projection, roi_levels=lv)
    assert torch.equal(out.double(), ref)


def test_forward_max_two_channel_blocks_and_rois_on_one_image():
    """N = 1, C = 13 with the nested kernel (two channel blocks)."""
    feats, scales = _feats(4, 13, torch.float32, seed=3, n=1)
    rois, lv = _rois(4, k_rand=2, n=1, seed=4)
    rois[:, 0] = 0
    (out, argmax), (want, want_arg) = _both(feats, rois, lv, scales, (1, 2, 4), "max", "sppnet")
    _assert_bit_equal(out, want)
    assert torch.equal(argmax, want_arg)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_forward_singletons(mode):
    """N = C = B = 1 and a 1x1 level (ints equal to 1 are specialised by Triton)."""
    g = torch.Generator().manual_seed(10)
    feats = [torch.randn(1, 1, 5, 4, generator=g), torch.randn(1, 1, 1, 1, generator=g)]
    rois = torch.tensor([[0, 2, 3, 30, 40], [0, -5, 0, 9, 9]], dtype=torch.float32)
    lv = torch.tensor([0, 1])
    (out, argmax), (want, want_arg) = _both(feats, rois, lv, (1 / 8, 1 / 16), (1,), mode, "round")
    if mode == "max":
        _assert_bit_equal(out, want)
        assert torch.equal(argmax, want_arg)
    else:
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("levels,pyramid,projection,dtype", [
    (4, (1, 2, 3, 6), "sppnet", torch.float32),
    (1, (1, 3, 5), "round", torch.bfloat16),
])
def test_forward_avg(levels, pyramid, projection, dtype):
    feats, scales = _feats(levels, 5, dtype, seed=2)
    rois, lv = _rois(levels, k_rand=2, seed=5)
    (out, argmax), (want, _) = _both(feats, rois, lv, scales, pyramid, "avg", projection)
    assert argmax is None and out.dtype == dtype
    ref = spp_reference([f.float() for f in feats], rois, scales, pyramid, "avg", projection, roi_levels=lv)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=8e-3, atol=8e-3)
    torch.testing.assert_close(out.float(), want.float(), **tol)
    torch.testing.assert_close(out.double(), ref, **tol)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_k_zero(mode):
    feats, scales = _feats(4, 5, torch.float32)
    rois = torch.zeros(0, 5)
    lv = torch.zeros(0, dtype=torch.int64)
    plan = PyramidPlan.make((1, 2, 3, 6), mode)
    out, argmax = triton_backend.forward(feats, rois, lv, scales, plan, mode, "sppnet")
    assert out.shape == (0, 5, 50) and out.dtype == torch.float32
    assert (argmax is None) == (mode == "avg")
    if argmax is not None:
        assert argmax.shape == (0, 5, 50) and argmax.dtype == torch.int32
    grads = triton_backend.backward(out, argmax, feats, rois, lv, scales, plan, mode, "sppnet", False)
    assert [g.shape for g in grads] == [f.shape for f in feats]
    assert all(g.dtype == torch.float32 and not g.any() for g in grads)


def _nan(dtype, payload, negative=False):
    bits = {torch.float32: (0x7F800000, 31), torch.float16: (0x7C00, 15), torch.bfloat16: (0x7F80, 15)}
    exp, sign = bits[dtype]
    v = exp | payload | ((1 << sign) if negative else 0)
    if v >= 1 << (sign):
        v -= 1 << (sign + 1)  # as the signed integer of the same bits
    return torch.tensor([v], dtype=_INT_VIEW[dtype]).view(dtype)[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pyramid", [(1, 2), (1, 3)])
def test_nan_and_signed_zero(dtype, pyramid):
    """NaN is the largest value and the FIRST NaN is returned with its own payload;
    -0.0 and +0.0 tie, the first of them is returned with its sign."""
    f = torch.full((1, 2, 6, 6), -3.0, dtype=dtype)
    # channel 0: two NaNs with different payloads (a negative one first) and a +inf
    f[0, 0, 1, 2] = _nan(dtype, 5, negative=True)
    f[0, 0, 2, 0] = _nan(dtype, 9)
    f[0, 0, 0, 5] = math.inf
    # channel 1: zeros of both signs, -0.0 first in the top-left bins, +0.0 first elsewhere
    f[0, 1, 0, 1] = -0.0
    f[0, 1, 1, 0] = 0.0
    f[0, 1, 4, 4] = 0.0
    f[0, 1, 4, 5] = -0.0
    rois = torch.tensor([[0, 0, 0, 27, 27], [0, 4, 0, 23, 11]], dtype=torch.float32)
    lv = torch.zeros(2, dtype=torch.int64)
    (out, argmax), (want, want_arg) = _both([f], rois, lv, (0.25,), pyramid, "max", "sppnet")
    _assert_bit_equal(out, want)
    assert torch.equal(argmax, want_arg)
    # RoI 0, bin 0 (the whole 6x6 map): the first NaN in row-major order, sign and payload kept
    assert int(argmax[0, 0, 0]) == 1 * 6 + 2
    _assert_bit_equal(out[0, 0, :1], f[0, 0, 1, 2].reshape(1))
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
    plan = PyramidPlan.make((1, 2), "max")
    out, argmax = triton_backend.forward(feats, rois, lv, scales, plan, "max", "round")
    sizes = torch.tensor([1 * 1, 20 * 17, 1 * 1])  # levels clamp to 3, 0, 3
    assert (argmax >= 0).all() and (argmax < sizes[:, None, None]).all()


def _grads(grad_out, argmax, feats, rois, lv, scales, pyramid, mode, projection, det):
    plan = PyramidPlan.make(pyramid, mode)
    return triton_backend.backward(grad_out, argmax, feats, rois, lv, scales, plan, mode, projection, det)


@pytest.mark.parametrize("mode,pyramid,projection,dtype", [
    ("max", (1, 2, 3, 6), "sppnet", torch.float32),
    ("max", (1, 3, 5), "round", torch.bfloat16),
    ("avg", (1, 2, 3, 6), "round", torch.float32),
    ("avg", (1, 3, 5), "sppnet", torch.float16),
])
def test_backward(mode, pyramid, projection, dtype):
    """Atomic and deterministic gradients against the PyTorch backend's (the argmax comes
    from the PyTorch forward, which the forward tests show equal to Triton's)."""
    feats, scales = _feats(4, 5, dtype, seed=6)
    rois, lv = _rois(4, k_rand=5 if mode == "max" else 1, seed=7)
    plan = PyramidPlan.make(pyramid, mode)
    _, argmax = torch_backend.forward(feats, rois, lv, scales, plan, mode, projection)
    g = torch.Generator().manual_seed(8)
    grad_out = torch.randn(rois.shape[0], 5, plan.num_bins, generator=g).to(dtype)
    want = torch_backend.backward(grad_out, argmax, feats, rois, lv, scales, plan, mode, projection)
    atomic = _grads(grad_out, argmax, feats, rois, lv, scales, pyramid, mode, projection, False)
    det1 = _grads(grad_out, argmax, feats, rois, lv, scales, pyramid, mode, projection, True)
    det2 = _grads(grad_out, argmax, feats, rois, lv, scales, pyramid, mode, projection, True)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    for a, d1, d2, w, f in zip(atomic, det1, det2, want, feats):
        assert a.shape == f.shape and a.dtype == dtype and d1.dtype == dtype
        torch.testing.assert_close(a.float(), w.float(), **tol)
        torch.testing.assert_close(d1.float(), w.float(), **tol)
        assert torch.equal(_bits(d1), _bits(d2))


def test_backward_zero_stride_feats_and_separate_outputs():
    """feats may be zero-stride stand-ins (as in op.py); outputs do not share storage."""
    feats, scales = _feats(4, 5, torch.float32)
    meta = [torch.empty((), dtype=torch.float32).expand(f.shape) for f in feats]
    rois, lv = _rois(4, k_rand=1, seed=9)
    plan = PyramidPlan.make((1, 2), "max")
    _, argmax = torch_backend.forward(feats, rois, lv, scales, plan, "max", "sppnet")
    grad_out = torch.ones(rois.shape[0], 5, plan.num_bins)
    grads = triton_backend.backward(grad_out, argmax, meta, rois, lv, scales, plan, "max", "sppnet", False)
    want = torch_backend.backward(grad_out, argmax, meta, rois, lv, scales, plan, "max", "sppnet")
    for gt, w in zip(grads, want):
        assert torch.equal(gt, w)  # integer-valued sums: exact in any order
    ptrs = {g.untyped_storage().data_ptr() for g in grads}
    assert len(ptrs) == len(grads)
