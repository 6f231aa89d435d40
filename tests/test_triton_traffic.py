"""What decides the Triton kernels' GPU time, counted in Triton's interpreter.

* The forward loads every element of a RoI's window once per channel: bytes loaded
  (every load: features, RoI coordinates, levels, scales) <= 1.1 x the one-pass minimum,
  on random windows of 3-25 cells on one stride-16 map and on RPN-like proposals on 4
  FPN levels, for nested and non-nested max pyramids and for avg mode. The bilinear
  forward loads each lattice point's four corners once: <= 1.1 x 4 x lattice points x C
  x the element size (the lattice sampled once for all grids of a nested pyramid).
* No backward program's work grows with K: the busiest program's loads at K = 96 are at
  most 2x those at K = 16 (``load_counter.GROWTH_KS``), atomic and deterministic, max and avg.

On a GPU machine the counts run in a subprocess with TRITON_INTERPRET=1 (they count
the interpreter's loads), so these tests run everywhere.
"""
import pytest
import torch

pytest.importorskip("triton")

from spp_triton.devtools import load_counter  # noqa: E402
from spp_triton.geometry import PoolSpec  # noqa: E402
from spp_triton.devtools.workloads import fpn_inputs, window_inputs  # noqa: E402

from cases import INTERPRET  # noqa: E402


@pytest.fixture(scope="module")
def counted():
    """Runs the counts in this process when interpreting, else in a subprocess."""
    if INTERPRET:
        return None
    return load_counter.interpreted_report(quick=True)


CASES = {
    "windows": lambda: window_inputs(12, 8, seed=1),
    "fpn": lambda: fpn_inputs(12, 8, seed=2),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("variant", load_counter.FORWARD_VARIANTS, ids=lambda v: v[0])
def test_forward_loads_each_window_element_once(case, variant, counted):
    """Cells: every window element once per channel. Bilinear: each lattice point's four
    corners once per channel, i.e. the lattice is sampled once, not once per grid."""
    label = variant[0]
    if counted is not None:
        name = {"windows": "random windows", "fpn": "RPN-like"}[case]
        row = next(r for r in counted["forward"] if r["case"].startswith(name) and r["variant"] == label)
    else:
        feats, rois, levels, scales = CASES[case]()
        row = load_counter.forward_traffic(feats, rois, levels, load_counter.variant_spec(variant, scales))
    assert row["one_pass"] > 0
    assert row["ratio"] <= 1.1, f"{label} on {case}: loads {row['loads']} B = {row['ratio']:.3f} x the floor"


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_backward_busiest_program_does_not_grow_with_k(mode, deterministic, counted):
    if counted is not None:
        row = next(r for r in counted["backward_growth"] if r["mode"] == mode and r["deterministic"] == deterministic)
        busiest = row["busiest"]
    else:
        busiest = []
        for k in load_counter.GROWTH_KS:
            feats, rois, levels, scales = fpn_inputs(k, 8, seed=3, image=(400, 608))
            spec = PoolSpec.make((1, 2, 3, 6), mode, "sppnet", scales)
            busiest.append(load_counter.backward_traffic(feats, rois, levels, spec, deterministic)
                           ["busiest_program_loads"])
    assert busiest[0] > 0
    ks = load_counter.GROWTH_KS
    assert busiest[1] <= 2 * busiest[0], f"busiest program: {busiest[0]} B at K = {ks[0]}, {busiest[1]} B at K = {ks[1]}"


@pytest.mark.skipif(not INTERPRET, reason="the counter wraps the interpreter; this process runs compiled kernels")
def test_counter_counts_masked_lanes_as_nothing():
    """The counter itself: a load of 10 of 16 lanes of float32 is 40 bytes."""
    import triton
    import triton.language as tl

    @triton.jit
    def copy10(src, dst):
        i = tl.arange(0, 16)
        tl.store(dst + i, tl.load(src + i, mask=i < 10, other=0.0), mask=i < 10)

    src, dst = torch.arange(16, dtype=torch.float32), torch.zeros(16)
    with load_counter.TrafficCounter() as tc:
        copy10[(1,)](src, dst)
    assert tc.loads == 40 and tc.stores == 40 and dict(tc.program_loads) == {(0, (0, 0, 0)): 40}
    with load_counter.TrafficCounter() as tc:
        copy10[(2,)](src, dst)
        copy10[(1,)](src, dst)
    assert dict(tc.program_loads) == {(0, (0, 0, 0)): 40, (0, (1, 0, 0)): 40, (1, (0, 0, 0)): 40}
