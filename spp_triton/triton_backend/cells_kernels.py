"""Triton kernels of spatial-pyramid RoI pooling, ``sampling="cells"`` (the paper): pure
``@triton.jit`` code and autotune configs.

Shared helpers and notation: ``shared_kernels.py``; launchers: ``launch.py``.
Semantics: ``geometry.py`` and ``spp_roi_pool``'s docstring; ``tests/reference.py``
judges. This family's own rule: ``_window`` (projection, collapse, clamp:
``geometry.roi_windows`` with the same float32 operations in the same order, launched
with ``enable_fp_fusion=False`` so ``x * s + 0.5`` rounds twice, as in torch).

Forward, one pass. Program (k, channel block) walks RoI k's window once, in tiles of
TILE_H x TILE_W cells x BLOCK_C channels that partition it, so every element of the
window is loaded exactly once per channel. ``_pool_tile`` folds a tile into an n x n
grid separably: each tile row is reduced over every column bin (masked reductions over
the tile's columns; neighbouring bins may share a column), then those partial rows over
every row bin, into an accumulator of (row bin, column bin). Nested pyramids reduce the
G x G grid only; every coarser bin is then an exact union of fine bins, folded by the
same ``_pool_tile``. Otherwise (non-nested max, avg) every grid is folded from the same
tiles. Max mode folds int64 keys (``_pack``): the float32 value's order-preserving bits
(NaN largest, -0 == +0) over the cell index, so one integer max gives the maximum and
its first occurrence in row-major order, and the output value is decoded from the key;
only lanes whose maximum is NaN load the element again, for its payload.

Backward, parallel over (RoI, channel block), so no program's work grows with K. Max
mode: one [BLOCK_C, B] load of grad_out and of argmax, one scatter. Avg mode: each
window tile's gradient (the sum over the bins holding each cell of grad / cells) is
built in registers, separably, and scattered once. Scatter: float32 atomics, or, with
``DETERMINISTIC``, int64 fixed-point atomics (``_to_fixed``): integer sums do not depend
on the order of the atomics, so the result is bit-identical run to run.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..geometry import Projection
from .shared_kernels import (MODE_MAX, NEG_PACKED, _backward_program, _bin_shares, _cell_offsets, _channel_offsets,
                            _coarsen, _configs, _grid_bounds, _pack, _pool_tile, _program_roi, _pruner, _scatter,
                            _select, _spread_tile, _store_grid, _zero_accumulators)

# geometry.Projection values, as the PROJ constexprs take them.
PROJ_SPPNET = tl.constexpr(int(Projection.SPPNET))

# GPU autotune configs per layout, (num_warps, BLOCK_C, TILE_H, TILE_W): NCHW tiles
# vectorise along the window's columns (TILE_W), channels-last tiles along the channels
# (BLOCK_C). Every one compiles for sm_80 and sm_90 without spills in every variant and
# dtype (``python -m spp_triton.devtools.compile_check``); wider ones spilled.
# Chosen from a sweep of 30 shapes: the register pressure of the int64 keys and the
# per-grid accumulators leaves few that stay spill-free for the non-nested max forward.
FORWARD_GPU_CONFIGS = {False: ((4, 8, 2, 32), (4, 8, 1, 32), (8, 16, 1, 32)),
                       True: ((8, 16, 1, 32),)}
BACKWARD_GPU_CONFIGS = {False: ((4, 8, 4, 16), (4, 8, 2, 32), (8, 16, 2, 32), (4, 16, 2, 16)),
                        True: ((4, 8, 4, 16), (4, 8, 2, 32), (8, 16, 2, 32))}


def forward_configs(interpret: bool | None = None, channels_last: bool | None = None) -> list[triton.Config]:
    """The forward's autotune configs (both layouts' unless ``channels_last`` is given)."""
    return _configs(FORWARD_GPU_CONFIGS, interpret, channels_last)


def backward_configs(interpret: bool | None = None, channels_last: bool | None = None) -> list[triton.Config]:
    """The backward's autotune configs (both layouts' unless ``channels_last`` is given)."""
    return _configs(BACKWARD_GPU_CONFIGS, interpret, channels_last)


@triton.jit
def _project(c_lo, c_hi, s, size, PROJ: tl.constexpr):
    """Inclusive [lo, hi] on an axis of ``size`` cells: geometry._project then
    geometry._collapse_and_clamp. PROJ: a geometry.Projection value."""
    if PROJ == PROJ_SPPNET:
        lo_f = tl.floor((c_lo + 1.0) * s)
        hi_f = tl.ceil((c_hi + 1.0) * s) - 2.0
    else:
        lo_f = tl.floor(c_lo * s + 0.5)
        hi_f = tl.floor(c_hi * s + 0.5)
    lo_f = tl.minimum(tl.maximum(lo_f, -1073741824.0), 1073741824.0)
    hi_f = tl.minimum(tl.maximum(hi_f, -1073741824.0), 1073741824.0)
    lo = lo_f.to(tl.int32)
    hi = hi_f.to(tl.int32)
    mid = ((lo.to(tl.int64) + hi.to(tl.int64)) >> 1).to(tl.int32)  # floor((lo + hi) / 2)
    inverted = lo > hi
    lo = tl.where(inverted, mid, lo)
    hi = tl.where(inverted, mid, hi)
    lo = tl.minimum(tl.maximum(lo, 0), size - 1)
    hi = tl.minimum(tl.maximum(hi, 0), size - 1)
    return lo, hi


@triton.jit
def _window(k, lvl, rois_ptr, scales_ptr, h, w, PROJ: tl.constexpr):
    """(x_lo, y_lo, win_h, win_w): RoI k's inclusive window on its level, as its first
    cell and its size (geometry.roi_windows)."""
    s = tl.load(scales_ptr + lvl)
    x_lo, x_hi = _project(tl.load(rois_ptr + k * 5 + 1), tl.load(rois_ptr + k * 5 + 3), s, w, PROJ)
    y_lo, y_hi = _project(tl.load(rois_ptr + k * 5 + 2), tl.load(rois_ptr + k * 5 + 4), s, h, PROJ)
    return x_lo, y_lo, y_hi - y_lo + 1, x_hi - x_lo + 1


# ---------------------------------------------------------------- forward
@triton.jit
def spp_fwd_kernel(
    feats,  # tuple of NUM_LEVELS pointers: level l (N, C, H_l, W_l), NCHW or channels-last, features dtype
    heights,  # tuple of NUM_LEVELS ints: H_l
    widths,  # tuple of NUM_LEVELS ints: W_l
    rois_ptr,  # (K, 5) float32 contiguous: (batch, x1, y1, x2, y2)
    levels_ptr,  # (K,) int32: level of each RoI
    scales_ptr,  # (L,) float32: spatial scale of each level
    out_ptr,  # (K, C, B) contiguous, features dtype: maxima / means
    argmax_ptr,  # (K, C, B) int32 contiguous (max mode): y * W + x of the first maximum; else unused
    N, C,
    NUM_LEVELS: tl.constexpr,
    PYRAMID: tl.constexpr, OFFSETS: tl.constexpr, PADS: tl.constexpr, B: tl.constexpr,
    FINE: tl.constexpr,  # G of a nested max pyramid, 0: every grid folded directly
    FINE_PAD: tl.constexpr,  # next_power_of_2(FINE) (1 when FINE == 0)
    MODE: tl.constexpr,  # a geometry.Mode value; FINE > 0 needs max
    PROJ: tl.constexpr,  # a geometry.Projection value
    CHANNELS_LAST: tl.constexpr,
    BLOCK_C: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
):
    """Forward of RoI k for BLOCK_C channels; grid (K, cdiv(C, BLOCK_C)). See the module
    docstring: one pass over the window in [BLOCK_C, TILE_H, TILE_W] tiles."""
    IS_MAX: tl.constexpr = MODE == MODE_MAX
    k, c, c_mask, b, lvl, h, w = _program_roi(rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS, BLOCK_C)
    x_lo, y_lo, win_h, win_w = _window(k, lvl, rois_ptr, scales_ptr, h, w, PROJ)
    base = _select(lvl, feats, NUM_LEVELS)
    chan_off = _channel_offsets(b, c, C, h, w, CHANNELS_LAST)

    # The grids folded from the tiles, their bins and accumulators.
    if FINE > 0:
        GRIDS: tl.constexpr = (FINE,)
        GRID_PADS: tl.constexpr = (FINE_PAD,)
    else:
        GRIDS: tl.constexpr = PYRAMID
        GRID_PADS: tl.constexpr = PADS
    bounds = ()
    accs = ()
    for i in tl.static_range(len(GRIDS)):
        bounds = bounds + ((_grid_bounds(GRIDS[i], win_h), _grid_bounds(GRIDS[i], win_w)),)
        if IS_MAX:
            accs = accs + (tl.full([BLOCK_C, GRID_PADS[i], GRID_PADS[i]], NEG_PACKED, tl.int64),)
        else:
            accs = accs + (tl.zeros([BLOCK_C, GRID_PADS[i], GRID_PADS[i]], tl.float32),)

    ty = tl.arange(0, TILE_H)
    tx = tl.arange(0, TILE_W)
    for y0 in range(0, win_h, TILE_H):
        for x0 in range(0, win_w, TILE_W):
            rows = y0 + ty  # window-relative
            cols = x0 + tx
            cell = (y_lo + rows)[:, None] * w + (x_lo + cols)[None, :]  # [TH, TW] y * W + x
            m = c_mask[:, None, None] & ((rows < win_h)[:, None] & (cols < win_w)[None, :])[None]
            offs = _cell_offsets(chan_off[:, None, None], cell[None], C, CHANNELS_LAST)
            v = tl.load(base + offs, mask=m, other=0.0).to(tl.float32)
            if IS_MAX:
                tile = _pack(v, cell[None], m)
            else:
                tile = v
            folded = ()
            for i in tl.static_range(len(GRIDS)):
                folded = folded + (_pool_tile(accs[i], tile, rows, cols, bounds[i][0], bounds[i][1], GRIDS[i],
                                              GRID_PADS[i], IS_MAX),)
            accs = folded

    out_row = (k * C + c) * B  # [BLOCK_C] int64
    for i in tl.static_range(len(PYRAMID)):
        if FINE > 0:
            if PYRAMID[i] == FINE:
                acc = accs[0]
            else:  # an exact union of fine bins
                acc = _coarsen(accs[0], PYRAMID[i], PADS[i], FINE, FINE_PAD, True)
            grid_bounds = bounds[0]  # unused by max mode
        else:
            acc = accs[i]
            grid_bounds = bounds[i]
        _store_grid(acc, base, chan_off, c_mask, out_row, out_ptr, argmax_ptr, grid_bounds[0], grid_bounds[1], C,
                    PYRAMID[i], PADS[i], OFFSETS[i], IS_MAX, CHANNELS_LAST, False)


spp_fwd_tuned = triton.autotune(configs=forward_configs(), key=["C", "CHANNELS_LAST", "B", "MODE", "FINE"],
                                prune_configs_by={"early_config_prune": _pruner(FORWARD_GPU_CONFIGS)})(spp_fwd_kernel)


# ---------------------------------------------------------------- backward
@triton.jit
def spp_bwd_kernel(
    grads,  # tuple of NUM_LEVELS float32 pointers: level l's gradient accumulator, features' layout, zeroed
    accs,  # tuple of NUM_LEVELS int64 pointers (DETERMINISTIC): fixed-point accumulators, same layout, zeroed
    exp_ptr,  # (1,) int32 (DETERMINISTIC): float32 exponent field of max |finite grad_out|
    grad_out_ptr,  # (K, C, B) float32 contiguous: incoming gradient
    argmax_ptr,  # (K, C, B) int32 contiguous (max mode): forward's argmax; unused otherwise
    rois_ptr,  # (K, 5) float32 contiguous
    levels_ptr,  # (K,) int32
    scales_ptr,  # (L,) float32
    heights,  # tuple of NUM_LEVELS ints: H_l
    widths,  # tuple of NUM_LEVELS ints: W_l
    N, C,
    NUM_LEVELS: tl.constexpr,
    PYRAMID: tl.constexpr, OFFSETS: tl.constexpr, PADS: tl.constexpr, B: tl.constexpr, B_PAD: tl.constexpr,
    MODE: tl.constexpr, PROJ: tl.constexpr, CHANNELS_LAST: tl.constexpr,
    DETERMINISTIC: tl.constexpr,
    HEADROOM: tl.constexpr,  # ceil(log2(K * B)) + 1: bits for the most terms a cell can sum
    BLOCK_C: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
):
    """Backward of RoI k for BLOCK_C channels; grid (K, cdiv(C, BLOCK_C)).

    Max: grad_out[k, c, ob] is added at argmax[k, c, ob] of plane (batch_k, c) on RoI k's
    level. Avg: grad_out[k, c, ob] / (cells of bin ob) is added to every cell of the bin;
    the program sums its RoI's bins per cell first (in registers), then scatters once.
    """
    k, c, c_mask, b, lvl, h, w, grad_base, acc_base, chan_off, scale = _backward_program(
        grads, accs, exp_ptr, rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS, BLOCK_C, CHANNELS_LAST,
        DETERMINISTIC, HEADROOM)
    out_row = (k * C + c) * B  # [BLOCK_C] int64
    if MODE == MODE_MAX:
        ob = tl.arange(0, B_PAD)
        m = c_mask[:, None] & (ob < B)[None, :]
        src = out_row[:, None] + ob[None, :]
        g = tl.load(grad_out_ptr + src, mask=m, other=0.0).to(tl.float32)
        best = tl.load(argmax_ptr + src, mask=m, other=0)
        best = tl.minimum(tl.maximum(best, 0), h * w - 1)
        offs = _cell_offsets(chan_off[:, None], best, C, CHANNELS_LAST)
        _scatter(grad_base, acc_base, offs, g, m, scale, DETERMINISTIC)
    else:
        x_lo, y_lo, win_h, win_w = _window(k, lvl, rois_ptr, scales_ptr, h, w, PROJ)
        bounds = ()
        shares = ()
        for i in tl.static_range(len(PYRAMID)):
            grid_bounds = (_grid_bounds(PYRAMID[i], win_h), _grid_bounds(PYRAMID[i], win_w))
            bounds = bounds + (grid_bounds,)
            shares = shares + (_bin_shares(grad_out_ptr, out_row, c_mask, grid_bounds[0], grid_bounds[1],
                                           PYRAMID[i], PADS[i], OFFSETS[i]),)
        ty = tl.arange(0, TILE_H)
        tx = tl.arange(0, TILE_W)
        for y0 in range(0, win_h, TILE_H):
            for x0 in range(0, win_w, TILE_W):
                rows = y0 + ty
                cols = x0 + tx
                tile = tl.zeros([BLOCK_C, TILE_H, TILE_W], tl.float32)
                for i in tl.static_range(len(PYRAMID)):
                    tile = _spread_tile(tile, shares[i], rows, cols, bounds[i][0], bounds[i][1], PYRAMID[i], PADS[i])
                cell = (y_lo + rows)[:, None] * w + (x_lo + cols)[None, :]
                m = c_mask[:, None, None] & ((rows < win_h)[:, None] & (cols < win_w)[None, :])[None]
                offs = _cell_offsets(chan_off[:, None, None], cell[None], C, CHANNELS_LAST)
                _scatter(grad_base, acc_base, offs, tile, m, scale, DETERMINISTIC)


spp_bwd_tuned = triton.autotune(configs=backward_configs(),
                                key=["C", "CHANNELS_LAST", "B", "MODE", "DETERMINISTIC"],
                                prune_configs_by={"early_config_prune": _pruner(BACKWARD_GPU_CONFIGS)},
                                pre_hook=_zero_accumulators)(spp_bwd_kernel)
