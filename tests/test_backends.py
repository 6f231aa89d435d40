"""Every registered backend, through the backend contract, on the same inputs, against
the same judge: tests/cases.py's RoI list (random boxes and every special box) and
tests/reference.py (values, the first-maximum argmax, gradients).

A new backend is tested here once it has an entry in ``spp_triton.registry.BACKENDS``
and a device in ``BACKEND_DEVICES`` (tests/cases.py). Backend-specific behaviour (the C++ kernel's
layouts, the fallback, Triton's tiles and deterministic scatter) is tested in
test_torch_backend.py and test_triton_backend.py.
"""
import pytest
import torch

from spp_triton.geometry import PoolSpec
from spp_triton.registry import BACKENDS

from cases import BACKEND_DEVICES, FPN_SCALES, bits, channels_last, make_features, make_rois, to
from reference import first_max, reference_grads, spp_reference

def test_every_registered_backend_has_a_test_device():
    assert set(BACKEND_DEVICES) == set(BACKENDS)


@pytest.fixture
def backend(backend_entry):
    """(the backend's module, its device); skipped where it cannot run."""
    entry, device = backend_entry
    return entry.impl(), device


def _inputs(dtype=torch.float32, ties=True, c=5):
    feats = make_features(c=c, dtype=dtype, seed=31, ties=ties)
    rois, lv = make_rois(k_rand=4, seed=32)
    return feats, rois, lv


@pytest.mark.parametrize("pyramid,projection,dtype", [
    ((1, 2, 3, 6), "sppnet", torch.float32), ((1, 3, 5), "round", torch.bfloat16), ((2, 4), "sppnet", torch.float16)])
def test_max_forward_matches_reference(backend, pyramid, projection, dtype):
    impl, dev = backend
    feats, rois, lv = _inputs(dtype)
    spec = PoolSpec.make(pyramid, "max", projection, FPN_SCALES)
    out, argmax = impl.forward(*to(dev, feats, rois, lv), spec, False)
    assert out.dtype == dtype and argmax.dtype == torch.int32
    assert torch.equal(out.cpu().double(), spp_reference(feats, rois, FPN_SCALES, pyramid, "max", projection, lv))
    assert torch.equal(argmax.cpu().long(), first_max(feats, rois, FPN_SCALES, pyramid, projection, lv))


@pytest.mark.parametrize("pyramid,projection", [((1, 2, 3, 6), "round"), ((1, 3, 5), "sppnet")])
def test_avg_forward_matches_reference(backend, pyramid, projection):
    impl, dev = backend
    feats, rois, lv = _inputs()
    spec = PoolSpec.make(pyramid, "avg", projection, FPN_SCALES)
    out, argmax = impl.forward(*to(dev, feats, rois, lv), spec, False)
    assert argmax is None
    ref = spp_reference(feats, rois, FPN_SCALES, pyramid, "avg", projection, lv)
    torch.testing.assert_close(out.cpu().double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("deterministic", [False, True], ids=["default", "deterministic"])
def test_backward_matches_reference(backend, mode, deterministic):
    impl, dev = backend
    feats, rois, lv = _inputs(ties=False)  # continuous values: the reference's argmax is unambiguous
    spec = PoolSpec.make((1, 2, 3, 6), mode, "sppnet", FPN_SCALES)
    feats_d, rois_d, lv_d = to(dev, feats, rois, lv)
    _, argmax = impl.forward(feats_d, rois_d, lv_d, spec, False)
    grad = torch.randn(rois.shape[0], 5, spec.num_bins, generator=torch.Generator().manual_seed(33))
    got = impl.backward(grad.to(dev), argmax, feats_d, rois_d, lv_d, spec, deterministic)
    want = reference_grads(feats, rois, FPN_SCALES, (1, 2, 3, 6), mode, "sppnet", lv, grad)
    for g, w, f in zip(got, want, feats, strict=True):
        assert g.shape == f.shape and g.dtype == f.dtype
        torch.testing.assert_close(g.cpu().double(), w, rtol=1e-5, atol=1e-5)
    if deterministic:
        again = impl.backward(grad.to(dev), argmax, feats_d, rois_d, lv_d, spec, True)
        assert all(torch.equal(bits(a), bits(b)) for a, b in zip(got, again, strict=True))


def test_channels_last_in_and_out(backend):
    """Channels-last features give the same values, and gradients in channels-last."""
    impl, dev = backend
    feats, rois, lv = _inputs(ties=False)
    spec = PoolSpec.make((1, 2, 3, 6), "max", "sppnet", FPN_SCALES)
    want, _ = impl.forward(*to(dev, feats, rois, lv), spec, False)
    feats_cl, rois_d, lv_d = to(dev, channels_last(feats), rois, lv)
    out, argmax = impl.forward(feats_cl, rois_d, lv_d, spec, False)
    assert torch.equal(out, want)
    grads = impl.backward(torch.ones_like(out), argmax, feats_cl, rois_d, lv_d, spec, False)
    assert len(grads) == len(feats)
    assert all(g.is_contiguous(memory_format=torch.channels_last) for g in grads)
