"""The whole-image SPP layer (``spatial_pyramid_pool`` / ``SpatialPyramidPool``) on both
backends, against adaptive pooling of each map (whose bins are the paper's floor/ceil
rule), and a list of odd-sized maps against pooling each map alone."""
import pytest
import torch
import torch.nn.functional as F

from spp_triton import SpatialPyramidPool, spatial_pyramid_pool
from cases import make_features

ODD_SHAPES = [(7, 5), (13, 10), (1, 1), (6, 19)]  # 10 rows under n = 6: section 2.3's rule misses some


@pytest.fixture
def backend(backend_entry):
    """(backend name, its device); skipped where it cannot run."""
    entry, device = backend_entry
    return entry.name, device


def reference(feature, pyramid, mode):
    """(N, C, B) float64 by adaptive pooling of the whole map, one grid at a time."""
    pool = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
    n, c = feature.shape[:2]
    return torch.cat([pool(feature.double(), g).reshape(n, c, g * g) for g in pyramid], dim=2)


@pytest.mark.parametrize("mode,pyramid", [("max", (1, 2, 3, 6)), ("avg", (1, 2, 4)), ("max", (3, 5))])
def test_list_of_odd_sized_maps_equals_each_map_alone(backend, mode, pyramid):
    name, dev = backend
    maps = [f.to(dev) for f in make_features(ODD_SHAPES, c=4, n=2, seed=5)]
    out = spatial_pyramid_pool(maps, pyramid=pyramid, mode=mode, backend=name)  # one launch
    assert out.shape == (len(maps) * 2, 4, sum(g * g for g in pyramid))
    for i, m in enumerate(maps):
        alone = spatial_pyramid_pool(m, pyramid=pyramid, mode=mode, backend=name)
        ref = reference(m.cpu(), pyramid, mode)
        if mode == "max":
            assert torch.equal(out[2 * i:2 * i + 2], alone)
            assert torch.equal(alone.cpu().double(), ref)
        else:
            assert torch.equal(out[2 * i:2 * i + 2], alone)
            torch.testing.assert_close(alone.cpu().double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_gradients_match_autograd_through_the_reference(backend, mode):
    name, dev = backend
    maps = make_features(ODD_SHAPES, c=3, n=2, seed=6, ties=False)  # no ties: one argmax per bin
    leaves = [m.clone().to(dev).requires_grad_() for m in maps]
    layer = SpatialPyramidPool(mode=mode, backend=name)
    out = layer(leaves)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    out.backward(grad.to(dev))
    ref_leaves = [m.double().requires_grad_() for m in maps]  # maps stay leaves without grad
    ref = torch.cat([reference(m, layer.pyramid, mode) for m in ref_leaves])
    ref.backward(grad.double())
    for ours, theirs in zip(leaves, ref_leaves):
        torch.testing.assert_close(ours.grad.cpu().double(), theirs.grad, rtol=1e-5, atol=1e-6)


def test_single_map_shape_and_module_repr():
    x = torch.randn(3, 8, 17, 23)
    layer = SpatialPyramidPool((1, 2, 4))
    assert layer(x).shape == (3, 8, 21)
    assert "bins=21" in repr(layer)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"features\[1\] must be 4-D"):
        spatial_pyramid_pool([torch.randn(1, 2, 4, 4), torch.randn(2, 4, 4)])
    with pytest.raises(ValueError, match="share N and C"):
        spatial_pyramid_pool([torch.randn(1, 2, 4, 4), torch.randn(2, 2, 4, 4)])
    with pytest.raises(ValueError, match="mode"):
        SpatialPyramidPool(mode="median")
