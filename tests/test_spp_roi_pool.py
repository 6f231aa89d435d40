"""The public API: golden cases by hand, errors, autograd, torch.compile, the profiler."""
import pytest
import torch

import spp_triton
from spp_triton import SpatialPyramidRoIPool, spp_roi_pool

import cases
from cases import BACKEND_DEVICES, HAS_TRITON, TRITON_DEVICE
from reference import spp_reference


def _grid(h, w, c=1, n=1):
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)


# ---------------------------------------------------------------- golden cases
def test_golden_round_whole_map():
    # 4x4 map holding 0..15, window = whole map; 2x2 bins are rows/cols {0,1} and {2,3}.
    out = spp_roi_pool(_grid(4, 4), torch.tensor([[0, 0, 0, 3, 3.]]), spatial_scales=1.0,
                       pyramid=(1, 2), projection="round")
    assert out.tolist() == [[[15, 5, 7, 13, 15]]]


def test_golden_sppnet_projection_and_overlapping_bins():
    # stride 16: x1 = 0 -> floor(1/16) = 0; x2 = 63 -> ceil(64/16) - 2 = 2, so a 3x3
    # window. Two bins over 3 cells: [0, ceil(3/2)-1] = [0, 1] and [floor(3/2), 2] = [1, 2]:
    # they share cell 1.
    feats = _grid(5, 5)
    out = spp_roi_pool(feats, torch.tensor([[0, 0, 0, 63, 63.]]), spatial_scales=1 / 16, pyramid=(2, 1))
    # map value = 5 * y + x; bin (i, j) max sits at its bottom-right cell.
    assert out.tolist() == [[[6, 7, 11, 12, 12]]]


def test_golden_avg():
    out = spp_roi_pool(_grid(4, 4), torch.tensor([[0, 0, 0, 3, 3.]]), spatial_scales=1.0,
                       pyramid=(1, 2), projection="round", mode="avg")
    assert out.tolist() == [[[7.5, 2.5, 4.5, 10.5, 12.5]]]


def test_golden_inverted_box_collapses_to_midpoint():
    # round, s = 1: x: lo = 3, hi = 1 -> both (3 + 1) >> 1 = 2; y: 0..3. Column 2 only.
    out = spp_roi_pool(_grid(4, 4), torch.tensor([[0, 3, 0, 1, 3.]]), spatial_scales=1.0,
                       pyramid=(1,), projection="round")
    assert out.item() == 14.0


def test_golden_negative_midpoint_and_clamp():
    # x: lo = 1, hi = -8 -> floor(-7 / 2) = -4 -> clamped to 0. y: -5..-2 -> clamped to 0.
    out = spp_roi_pool(_grid(4, 4), torch.tensor([[0, 1, -5, -8, -2.]]), spatial_scales=1.0,
                       pyramid=(1,), projection="round")
    assert out.item() == 0.0


def test_golden_box_outside_map_clamps_to_edge():
    out = spp_roi_pool(_grid(4, 4), torch.tensor([[0, 100, 100, 200, 200.]]), spatial_scales=1.0,
                       pyramid=(2,), projection="round")
    assert out.tolist() == [[[15, 15, 15, 15]]]


def test_layout_is_level_major_then_row_major():
    feats = torch.randn(1, 3, 9, 11)
    rois = torch.tensor([[0, 0, 0, 10, 8.]])
    out = spp_roi_pool(feats, rois, spatial_scales=1.0, pyramid=(3, 1), projection="round")
    ref = spp_reference([feats], rois, [1.0], (3, 1), "max", "round")
    assert out.shape == (1, 3, 10)
    assert torch.equal(out.double(), ref)


# ---------------------------------------------------------------- shapes, K = 0
def test_module_output_shape_and_repr():
    m = SpatialPyramidRoIPool(pyramid=(1, 2, 3, 6), spatial_scales=(1 / 4, 1 / 8))
    feats = [torch.randn(2, 7, 20, 24), torch.randn(2, 7, 10, 12)]
    rois = torch.tensor([[0, 1, 2, 40, 50.], [1, 0, 0, 90, 70.], [1, 5, 5, 6, 6.]])
    out = m(feats, rois, torch.tensor([0, 1, 1]))
    assert out.shape == (3, 7, 50) and out.dtype == torch.float32
    assert "bins=50" in repr(m)


def test_empty_rois_give_empty_output_and_zero_grads():
    feats = torch.randn(2, 5, 6, 6, requires_grad=True)
    out = spp_roi_pool(feats, torch.zeros(0, 5), spatial_scales=0.5)
    assert out.shape == (0, 5, 50)
    out.sum().backward()
    assert feats.grad is not None and torch.count_nonzero(feats.grad) == 0


# ---------------------------------------------------------------- autograd
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("projection", ["sppnet", "round"])
def test_gradcheck_float64_torch_path(mode, projection):
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 7, 8, dtype=torch.float64, requires_grad=True),
             torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)]
    rois = torch.tensor([[0, 2, 3, 40, 30.], [1, -5, 0, 70, 80.], [1, 10, 12, 11, 13.]], dtype=torch.float64)
    levels = torch.tensor([0, 1, 0])

    def fn(a, b):
        return spp_roi_pool([a, b], rois, spatial_scales=(1 / 8, 1 / 16), roi_levels=levels,
                            pyramid=(1, 2, 3), mode=mode, projection=projection, backend="torch")

    assert torch.autograd.gradcheck(fn, tuple(feats))


def test_max_gradient_goes_to_first_maximum():
    feats = torch.zeros(1, 1, 3, 3, requires_grad=True)
    out = spp_roi_pool(feats, torch.tensor([[0, 0, 0, 2, 2.]]), spatial_scales=1.0, pyramid=(1,),
                       projection="round")
    out.sum().backward()
    expected = torch.zeros(1, 1, 3, 3)
    expected[0, 0, 0, 0] = 1
    assert torch.equal(feats.grad, expected)


# ---------------------------------------------------------------- torch.library
def test_op_is_registered_and_named_in_profiler():
    assert hasattr(torch.ops.spp_triton, "spp_roi_pool")
    feats = torch.randn(1, 2, 5, 5)
    rois = torch.tensor([[0, 0, 0, 4, 4.]])
    with torch.profiler.profile() as prof:
        spp_roi_pool(feats, rois, spatial_scales=1.0)
    assert any(e.key == "spp_triton::spp_roi_pool" for e in prof.key_averages())


@pytest.mark.slow
def test_torch_compile_fullgraph_module():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = SpatialPyramidRoIPool(spatial_scales=(1 / 4, 1 / 8))
            self.fc = torch.nn.Linear(3 * 50, 2)

        def forward(self, a, b, rois, levels):
            return self.fc(self.pool([a.relu(), b.relu()], rois, levels).flatten(1))

    torch.manual_seed(0)
    head = Head()
    a = torch.randn(2, 3, 12, 12, requires_grad=True)
    b = torch.randn(2, 3, 6, 6)
    rois = torch.tensor([[0, 0, 0, 40, 30.], [1, 4, 4, 44, 44.]])
    levels = torch.tensor([0, 1])
    eager = head(a, b, rois, levels)
    (g_eager,) = torch.autograd.grad(eager.sum(), a)
    compiled = torch.compile(head, fullgraph=True)(a, b, rois, levels)
    (g_comp,) = torch.autograd.grad(compiled.sum(), a)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(g_comp, g_eager)


# ---------------------------------------------------------------- bad input
FEATS = torch.randn(2, 3, 8, 8)
GOOD = torch.tensor([[0, 0, 0, 10, 10.]])


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(rois=torch.zeros(3, 4)), ValueError, "rois must have shape (K, 5)"),
    (dict(rois=torch.zeros(5)), ValueError, "rois must have shape (K, 5)"),
    (dict(rois=torch.zeros(1, 5, dtype=torch.int64)), TypeError, "rois must be a floating tensor"),
    (dict(rois=torch.tensor([[0, float("nan"), 0, 1, 1]])), ValueError, "rois coordinates must be finite"),
    (dict(rois=torch.tensor([[0, 0, float("inf"), 1, 1]])), ValueError, "rois coordinates must be finite"),
    (dict(rois=torch.tensor([[2, 0, 0, 1, 1.]])), ValueError, "batch indices in [0, 2)"),
    (dict(rois=torch.tensor([[-1, 0, 0, 1, 1.]])), ValueError, "batch indices in [0, 2)"),
    (dict(rois=torch.tensor([[0.5, 0, 0, 1, 1.]])), ValueError, "integer batch indices"),
    (dict(pyramid=()), ValueError, "pyramid must not be empty"),
    (dict(pyramid=(1, 0)), ValueError, "pyramid entries must be ints >= 1"),
    (dict(pyramid=3), TypeError, "pyramid must be a sequence"),
    (dict(mode="sum"), ValueError, "mode must be one of"),
    (dict(projection="floor"), ValueError, "projection must be one of"),
    (dict(backend="cuda"), ValueError, "backend must be one of"),
    (dict(spatial_scales=(0.5, 0.25)), ValueError, "spatial_scales has 2 entries but features has 1"),
    (dict(spatial_scales=-1.0), ValueError, "spatial_scales must be finite"),
    (dict(features=FEATS.to(torch.int32)), TypeError, "features dtype torch.int32 is not supported"),
    (dict(features=FEATS.double(), backend="triton"), TypeError, "not supported by backend 'triton'"),
    (dict(features=FEATS[0]), ValueError, "features[0] must be 4-D"),
    (dict(features=[FEATS, torch.randn(2, 4, 4, 4)], spatial_scales=(1, 1), roi_levels=torch.tensor([0])),
     ValueError, "share N and C"),
    (dict(features=[FEATS, torch.randn(3, 3, 4, 4)], spatial_scales=(1, 1), roi_levels=torch.tensor([0])),
     ValueError, "share N and C"),
    (dict(features=[FEATS, FEATS], spatial_scales=(1, 1)), ValueError, "roi_levels is required"),
    (dict(features=[FEATS, FEATS], spatial_scales=(1, 1), roi_levels=torch.tensor([0, 1])),
     ValueError, "roi_levels must have shape (1,)"),
    (dict(features=[FEATS, FEATS], spatial_scales=(1, 1), roi_levels=torch.tensor([2])),
     ValueError, "roi_levels must be in [0, 2)"),
    (dict(features=[FEATS, FEATS], spatial_scales=(1, 1), roi_levels=torch.tensor([0.0])),
     TypeError, "roi_levels must be an integer tensor"),
    (dict(rois=GOOD.to("meta")), ValueError, "rois is on meta"),
])
def test_bad_input_raises_naming_the_argument(kwargs, exc, words):
    args = dict(features=FEATS, rois=GOOD, spatial_scales=1.0)
    args.update(kwargs)
    features, rois = args.pop("features"), args.pop("rois")
    with pytest.raises(exc) as info:
        spp_roi_pool(features, rois, **args)
    assert words in str(info.value)


@pytest.mark.skipif(not HAS_TRITON, reason="the Triton backend needs the triton package")
def test_triton_refuses_grids_wider_than_its_registers_hold():
    with pytest.raises(ValueError, match=r"backend 'triton' takes pyramid entries up to 16.*backend='torch'"):
        spp_roi_pool(FEATS.to(TRITON_DEVICE), GOOD.to(TRITON_DEVICE), spatial_scales=1.0, pyramid=(1, 17),
                     backend="triton")


def test_bad_module_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="pyramid must not be empty"):
        SpatialPyramidRoIPool(pyramid=())
    with pytest.raises(ValueError, match="mode must be one of"):
        SpatialPyramidRoIPool(mode="median")


def test_package_version():
    assert spp_triton.__version__


# ---------------------------------------------------------------- backends agree through the op
@pytest.mark.skipif(not HAS_TRITON, reason="the Triton backend needs the triton package")
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_public_op_triton_equals_torch_forward_and_backward(mode):
    torch.manual_seed(1)
    base = [torch.randn(2, 6, 11, 13), torch.randn(2, 6, 6, 7)]
    rois = torch.tensor([[0, 3, 4, 60, 40.], [1, -10, 0, 30, 90.], [1, 20, 20, 21, 22.], [0, 0, 0, 200, 200.]])
    levels = torch.tensor([0, 1, 0, 1])
    results = {}
    for backend, dev in (("torch", "cpu"), ("triton", TRITON_DEVICE)):
        feats = [f.clone().to(dev).requires_grad_() for f in base]
        out = spp_roi_pool(feats, rois.to(dev), spatial_scales=(1 / 4, 1 / 8), roi_levels=levels.to(dev),
                           mode=mode, backend=backend)
        out.backward(torch.linspace(-1, 1, out.numel(), device=dev).view_as(out))
        results[backend] = (out.cpu(), [f.grad.cpu() for f in feats])
    (o_t, g_t), (o_tr, g_tr) = results["torch"], results["triton"]
    if mode == "max":
        assert torch.equal(o_t, o_tr)
    else:
        torch.testing.assert_close(o_tr, o_t, rtol=1e-6, atol=1e-6)
    for a, b in zip(g_t, g_tr):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- layouts: no copy of the features
_COPIES = ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to")
_INTERPRETER_RANGE = "triton interpreter launch"


class _MarkInterpreterLaunches:
    """Runs every interpreted Triton launch inside a profiler range, so the copies the
    interpreter makes of kernel arguments (to and from its host buffers) can be told
    apart without recording Python stacks (``with_stack=True`` slows the interpreter's
    Python-heavy execution some 30x)."""

    def __enter__(self):
        if cases.INTERPRET and HAS_TRITON:
            from triton.runtime import interpreter

            self._saved = call = interpreter.GridExecutor.__call__

            def marked(executor, *args, **kwargs):
                with torch.profiler.record_function(_INTERPRETER_RANGE):
                    return call(executor, *args, **kwargs)

            interpreter.GridExecutor.__call__ = marked
        return self

    def __exit__(self, *exc):
        if cases.INTERPRET and HAS_TRITON:
            from triton.runtime import interpreter

            interpreter.GridExecutor.__call__ = self._saved
        return False


def _feature_sized_copies(prof, feats):
    """Copy-like ops whose input has a feature level's shape, outside Triton's interpreter
    (which moves kernel arguments to and from its own host copies)."""
    shapes = {tuple(f.shape) for f in feats}
    found = []
    for e in prof.events():
        if e.name in _COPIES and any(tuple(s) in shapes for s in e.input_shapes if s):
            parent, inside = e.cpu_parent, False
            while parent is not None and not inside:
                inside, parent = parent.name == _INTERPRETER_RANGE, parent.cpu_parent
            if not inside:
                found.append((e.name, e.input_shapes))
    return found


@pytest.mark.parametrize("backend,layout", [
    ("torch", "channels_last"), ("triton", "channels_last"), ("triton", "nchw"), ("torch", "nchw")])
def test_features_are_read_in_place_and_gradients_keep_their_layout(backend, layout):
    """A torch.profiler trace of forward + backward holds no feature-sized clone /
    contiguous / copy_: each layout is read with its own strides, and the gradients come
    back in the features' layout, which autograd accumulates without a copy. (The C++
    kernel transposes NCHW maps to channels-last when the RoIs cover them more than once;
    the few RoIs here do not.)"""
    if backend == "triton" and not HAS_TRITON:
        pytest.skip("the Triton backend needs the triton package")
    dev = BACKEND_DEVICES[backend]
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    g = torch.Generator().manual_seed(2)
    feats = [torch.randn(2, 8, 12, 16, generator=g).to(dev).contiguous(memory_format=fmt).requires_grad_(),
             torch.randn(2, 8, 6, 8, generator=g).to(dev).contiguous(memory_format=fmt).requires_grad_()]
    rois = torch.tensor([[0, 3, 4, 30, 20.], [1, 10, 2, 50, 40.]], device=dev)
    levels = torch.tensor([0, 1], device=dev)
    with _MarkInterpreterLaunches(), torch.profiler.profile(record_shapes=True) as prof:
        out = spp_roi_pool(feats, rois, spatial_scales=(1 / 4, 1 / 8), roi_levels=levels, backend=backend)
        out.sum().backward()
    assert _feature_sized_copies(prof, feats) == []
    for f in feats:
        assert f.grad.is_contiguous(memory_format=fmt) and f.grad.abs().sum() > 0
