"""Triton kernels of SPP-Align, ``sampling="bilinear"``: the spatial pyramid on RoIAlign's
continuous coordinates. Pure ``@triton.jit`` code and autotune configs.

Shared helpers and notation: ``shared_kernels.py``; launchers: ``launch.py``.
Semantics: ``geometry.py`` and ``spp_roi_pool``'s docstring; ``tests/reference.py``
judges. This family's own rules, with the same float32 operations in the same order as
``geometry`` (launched with ``enable_fp_fusion=False``, so no multiply-add is fused; every
division is ``tl.div_rn``, IEEE round-to-nearest, because Triton's ``/`` compiles to
PTX's approximate ``div.full.f32``):
``_align_window`` (``geometry.align_windows``), ``_lattice_ratio``
(``geometry.lattice_ratio``) and ``_sample_axis`` (``geometry.lattice_coords`` then
``geometry.bilinear_axis``).

Grids. ``FINE`` = G for a nested pyramid: one lattice of (G r_y) x (G r_x) points; the
coarser grids are unions of its bins (``_coarsen``). Otherwise every grid n has its own
(n r_y) x (n r_x) lattice. ``ratio`` = sampling_ratio (0: r per RoI and axis, adaptive)
and ``aligned`` are run-time arguments (not specialised), so every sampling_ratio shares
one compiled kernel.

Forward, the lattice sampled once. Program (k, channel block) walks RoI k's lattice in
tiles of TILE_H x TILE_W points x BLOCK_C channels (``_lattice_tile``, shared with the
backward). Each point's axis geometry (its two neighbouring rows and columns, weights,
inside or not) is computed per tile row and column, not per element; each point loads its four corners (masked outside the map:
those samples are 0) and combines them as ``((w1 v1 + w2 v2) + w3 v3) + w4 v4``. The
tile is then folded into the bins by the cells path's own ``_pool_tile``: a bin of S
covers the lattice rows [p r_y, (p + 1) r_y), which is ``_grid_bounds(S, S r_y)``. Max
mode folds ``_pack`` keys of (sample, lattice index), so one integer max gives the first
maximal sample (NaN the largest) and its index; the value is decoded from the key.

Backward, parallel over (RoI, channel block). Max: one [BLOCK_C, B] load of grad_out
and argmax; each bin's chosen point is rebuilt from its lattice index and its four
corners get grad times their weights. Avg: per lattice tile, each point's factor (the
sum over the grids whose bins hold it of grad / samples in the bin, built with the cells
path's ``_spread_tile`` in lattice units) times its corner weights, four scatters.
Scatter: ``_scatter`` (float32 atomics, or int64 fixed point with ``DETERMINISTIC``).
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..geometry import MAX_LATTICE as _MAX_LATTICE
from .shared_kernels import (MODE_MAX, NEG_PACKED, _backward_program, _bin_shares, _cell_offsets, _channel_offsets,
                            _coarsen, _configs, _grid_bounds, _pack, _pool_tile, _program_roi, _pruner, _scatter,
                            _select, _spread_tile, _store_grid, _zero_accumulators)

MAX_LATTICE = tl.constexpr(_MAX_LATTICE)

# GPU autotune configs per layout, (num_warps, BLOCK_C, TILE_H, TILE_W), in lattice
# points: a 1/2/3/6 pyramid at r = 2 has a 12 x 12 lattice. Every one compiles for sm_80
# and sm_90 without spills in every variant and dtype (``python -m spp_triton.devtools.compile_check``).
# They are compiled with MAXNREG registers at most: without a .maxnreg, ptxas (12.9)
# holds sm_80 kernels to 128 registers and spills instead (e.g. the nested max forward:
# 128 registers and 48 spill bytes, against 156 and none with it).
MAXNREG = 255
ALIGN_FORWARD_GPU_CONFIGS = {False: ((4, 8, 4, 16),),
                             True: ((4, 16, 2, 8), (4, 8, 2, 8))}
ALIGN_BACKWARD_GPU_CONFIGS = {False: ((4, 4, 4, 16), (4, 8, 2, 16)),
                              True: ((4, 8, 4, 8), (4, 8, 2, 8))}


def forward_configs(interpret: bool | None = None, channels_last: bool | None = None) -> list[triton.Config]:
    """The bilinear forward's autotune configs (both layouts' unless ``channels_last``)."""
    return _configs(ALIGN_FORWARD_GPU_CONFIGS, interpret, channels_last, MAXNREG)


def backward_configs(interpret: bool | None = None, channels_last: bool | None = None) -> list[triton.Config]:
    """The bilinear backward's autotune configs (both layouts' unless ``channels_last``)."""
    return _configs(ALIGN_BACKWARD_GPU_CONFIGS, interpret, channels_last, MAXNREG)


# ---------------------------------------------------------------- rules
@triton.jit
def _align_window(k, lvl, rois_ptr, scales_ptr, aligned):
    """(start_x, start_y, size_w, size_h) of RoI k (geometry.align_windows): start =
    x1 s - o, size = (x2 s - o) - start, o = 0.5 if ``aligned`` (an int, 0 or 1); size >= 1
    without it."""
    s = tl.load(scales_ptr + lvl)
    off = aligned.to(tl.float32) * 0.5
    start_x = tl.load(rois_ptr + k * 5 + 1) * s - off
    start_y = tl.load(rois_ptr + k * 5 + 2) * s - off
    size_w = (tl.load(rois_ptr + k * 5 + 3) * s - off) - start_x
    size_h = (tl.load(rois_ptr + k * 5 + 4) * s - off) - start_y
    size_w = tl.where(aligned != 0, size_w, tl.maximum(size_w, 1.0))
    size_h = tl.where(aligned != 0, size_h, tl.maximum(size_h, 1.0))
    return start_x, start_y, size_w, size_h


@triton.jit
def _lattice_ratio(size, S: tl.constexpr, ratio):
    """int32 samples per bin of grid S along an axis of the window (geometry.lattice_ratio):
    ``ratio``, or with ratio == 0 ceil(size / S) clamped to [1, MAX_LATTICE // S]."""
    adaptive = tl.minimum(tl.maximum(tl.ceil(tl.div_rn(size, S * 1.0)), 1.0), (MAX_LATTICE // S) * 1.0)
    return tl.where(ratio > 0, ratio, adaptive.to(tl.int32))


@triton.jit
def _sample_axis(t, start, step, r, cells):
    """Lattice points ``t`` (int32) of an axis of ``cells`` cells, with ``step`` = size / S
    and r samples per bin (geometry.lattice_coords, then bilinear_axis): (low, high,
    w_low, w_high, inside), shaped like t. Outside points' other fields are unused."""
    coord = (start + (t // r).to(tl.float32) * step) + tl.div_rn(((t % r).to(tl.float32) + 0.5) * step,
                                                                 r.to(tl.float32))
    inside = (coord >= -1.0) & (coord <= cells.to(tl.float32))
    c = tl.where(coord <= 0.0, 0.0, coord)
    c = tl.minimum(c, cells.to(tl.float32))  # only outside points exceed it: keeps the cast in range
    low = c.to(tl.int32)
    edge = low >= cells - 1
    low = tl.where(edge, cells - 1, low)
    high = tl.where(edge, low, low + 1)
    c = tl.where(edge, low.to(tl.float32), c)
    w_high = c - low.to(tl.float32)
    return low, high, 1.0 - w_high, w_high, inside


@triton.jit
def _corner(base, chan_off, y, x, wy, wx, w, mask, C, CHANNELS_LAST: tl.constexpr):
    """[BC, TH, TW] float32 (wy wx) v of the corner at rows ``y`` [TH] (or [BC, TB]) and
    columns ``x``: one masked gather of every channel."""
    offs = _cell_offsets(chan_off, y * w + x, C, CHANNELS_LAST)
    return (wy * wx) * tl.load(base + offs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _lattice_tile(t, p_y, p_x, start_y, step_y, r_y, start_x, step_x, r_x, h, w, TILE_H: tl.constexpr,
                  TILE_W: tl.constexpr):
    """Tile t of a (p_y x p_x)-point lattice, tiles row-major: its rows [TH] and columns
    [TW] of lattice points, their axes' ``_sample_axis`` geometry shaped [1, TH, 1] and
    [1, 1, TW] for broadcasting over [BC, TH, TW] (low, high, w_low, w_high), and which
    points are in the lattice ([TH, TW]) and in the map ([TH, TW])."""
    tiles_x = tl.cdiv(p_x, TILE_W)
    rows = (t // tiles_x) * TILE_H + tl.arange(0, TILE_H)
    cols = (t % tiles_x) * TILE_W + tl.arange(0, TILE_W)
    y_lo, y_hi, wy_lo, wy_hi, in_y = _sample_axis(rows, start_y, step_y, r_y, h)
    x_lo, x_hi, wx_lo, wx_hi, in_x = _sample_axis(cols, start_x, step_x, r_x, w)
    ys = (y_lo[None, :, None], y_hi[None, :, None], wy_lo[None, :, None], wy_hi[None, :, None])
    xs = (x_lo[None, None, :], x_hi[None, None, :], wx_lo[None, None, :], wx_hi[None, None, :])
    in_lattice = (rows < p_y)[:, None] & (cols < p_x)[None, :]
    return rows, cols, ys, xs, in_lattice, in_y[:, None] & in_x[None, :]


@triton.jit
def _sample_grid(base, chan_off, c_mask, start_y, size_h, r_y, start_x, size_w, r_x, h, w, C,
                 S: tl.constexpr, NP: tl.constexpr, IS_MAX: tl.constexpr, CHANNELS_LAST: tl.constexpr,
                 BLOCK_C: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    """[BC, NP, NP] accumulator of grid S's bins over its (S r_y) x (S r_x) lattice: max:
    ``_pack`` keys of (sample, lattice index); avg: float32 sums of the samples."""
    p_y = S * r_y
    p_x = S * r_x
    step_y = tl.div_rn(size_h, S * 1.0)
    step_x = tl.div_rn(size_w, S * 1.0)
    row_bounds = _grid_bounds(S, p_y)
    col_bounds = _grid_bounds(S, p_x)
    if IS_MAX:
        acc = tl.full([BLOCK_C, NP, NP], NEG_PACKED, tl.int64)
    else:
        acc = tl.zeros([BLOCK_C, NP, NP], tl.float32)
    chan = chan_off[:, None, None]
    for t in range(0, tl.cdiv(p_y, TILE_H) * tl.cdiv(p_x, TILE_W)):
        rows, cols, ys, xs, in_lattice, in_map = _lattice_tile(t, p_y, p_x, start_y, step_y, r_y, start_x, step_x,
                                                               r_x, h, w, TILE_H, TILE_W)
        m = c_mask[:, None, None] & in_lattice[None]
        ld = m & in_map[None]
        val = ((_corner(base, chan, ys[0], xs[0], ys[2], xs[2], w, ld, C, CHANNELS_LAST)
                + _corner(base, chan, ys[0], xs[1], ys[2], xs[3], w, ld, C, CHANNELS_LAST))
               + _corner(base, chan, ys[1], xs[0], ys[3], xs[2], w, ld, C, CHANNELS_LAST)) \
            + _corner(base, chan, ys[1], xs[1], ys[3], xs[3], w, ld, C, CHANNELS_LAST)
        val = tl.where(in_map[None], val, 0.0)
        if IS_MAX:
            tile = _pack(val, (rows[:, None] * p_x + cols[None, :])[None], m)
        else:
            tile = tl.where(m, val, 0.0)
        acc = _pool_tile(acc, tile, rows, cols, row_bounds, col_bounds, S, NP, IS_MAX)
    return acc


# ---------------------------------------------------------------- forward
@triton.jit(do_not_specialize=["ratio", "aligned"])  # one compile for every sampling_ratio
def spp_align_fwd_kernel(
    feats,  # tuple of NUM_LEVELS pointers: level l (N, C, H_l, W_l), NCHW or channels-last, features dtype
    heights,  # tuple of NUM_LEVELS ints: H_l
    widths,  # tuple of NUM_LEVELS ints: W_l
    rois_ptr,  # (K, 5) float32 contiguous: (batch, x1, y1, x2, y2)
    levels_ptr,  # (K,) int32: level of each RoI
    scales_ptr,  # (L,) float32: spatial scale of each level
    out_ptr,  # (K, C, B) contiguous, features dtype: maxima / means of the bins' samples
    argmax_ptr,  # (K, C, B) int32 contiguous (max mode): lattice index of the chosen sample; else unused
    N, C,
    ratio,  # int: sampling_ratio (0: adaptive)
    aligned,  # int: 1 for aligned=True, else 0
    NUM_LEVELS: tl.constexpr,
    PYRAMID: tl.constexpr, OFFSETS: tl.constexpr, PADS: tl.constexpr, B: tl.constexpr,
    FINE: tl.constexpr,  # G of a nested pyramid (one lattice), 0: a lattice per grid
    FINE_PAD: tl.constexpr,  # next_power_of_2(FINE) (1 when FINE == 0)
    MODE: tl.constexpr,  # a geometry.Mode value
    CHANNELS_LAST: tl.constexpr,
    BLOCK_C: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
):
    """Forward of RoI k for BLOCK_C channels; grid (K, cdiv(C, BLOCK_C)). See the module
    docstring: the lattice sampled once in [BLOCK_C, TILE_H, TILE_W] tiles."""
    IS_MAX: tl.constexpr = MODE == MODE_MAX
    k, c, c_mask, b, lvl, h, w = _program_roi(rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS, BLOCK_C)
    start_x, start_y, size_w, size_h = _align_window(k, lvl, rois_ptr, scales_ptr, aligned)
    base = _select(lvl, feats, NUM_LEVELS)
    chan_off = _channel_offsets(b, c, C, h, w, CHANNELS_LAST)
    out_row = (k * C + c) * B  # [BLOCK_C] int64
    if FINE > 0:
        r_y = _lattice_ratio(size_h, FINE, ratio)
        r_x = _lattice_ratio(size_w, FINE, ratio)
        fine = _sample_grid(base, chan_off, c_mask, start_y, size_h, r_y, start_x, size_w, r_x, h, w, C, FINE,
                            FINE_PAD, IS_MAX, CHANNELS_LAST, BLOCK_C, TILE_H, TILE_W)
        for i in tl.static_range(len(PYRAMID)):
            if PYRAMID[i] == FINE:
                acc = fine
            else:  # an exact union of fine bins
                acc = _coarsen(fine, PYRAMID[i], PADS[i], FINE, FINE_PAD, IS_MAX)
            _store_grid(acc, base, chan_off, c_mask, out_row, out_ptr, argmax_ptr, _grid_bounds(PYRAMID[i], FINE * r_y),
                        _grid_bounds(PYRAMID[i], FINE * r_x), C, PYRAMID[i], PADS[i], OFFSETS[i], IS_MAX,
                        CHANNELS_LAST, True)
    else:
        for i in tl.static_range(len(PYRAMID)):
            r_y = _lattice_ratio(size_h, PYRAMID[i], ratio)
            r_x = _lattice_ratio(size_w, PYRAMID[i], ratio)
            acc = _sample_grid(base, chan_off, c_mask, start_y, size_h, r_y, start_x, size_w, r_x, h, w, C,
                               PYRAMID[i], PADS[i], IS_MAX, CHANNELS_LAST, BLOCK_C, TILE_H, TILE_W)
            _store_grid(acc, base, chan_off, c_mask, out_row, out_ptr, argmax_ptr, _grid_bounds(PYRAMID[i], PYRAMID[i] * r_y),
                        _grid_bounds(PYRAMID[i], PYRAMID[i] * r_x), C, PYRAMID[i], PADS[i], OFFSETS[i], IS_MAX,
                        CHANNELS_LAST, True)


spp_align_fwd_tuned = triton.autotune(configs=forward_configs(),
                                      key=["C", "CHANNELS_LAST", "B", "MODE", "FINE", "ratio"],
                                      prune_configs_by={"early_config_prune": _pruner(ALIGN_FORWARD_GPU_CONFIGS)}
                                      )(spp_align_fwd_kernel)


# ---------------------------------------------------------------- backward
@triton.jit
def _scatter_corners(grad_base, acc_base, chan_off, g, y_lo, y_hi, wy_lo, wy_hi, x_lo, x_hi, wx_lo, wx_hi, w, mask,
                     C, scale, CHANNELS_LAST: tl.constexpr, DETERMINISTIC: tl.constexpr):
    """Adds g times each corner's weight at the four corners (shapes broadcast)."""
    _scatter(grad_base, acc_base, _cell_offsets(chan_off, y_lo * w + x_lo, C, CHANNELS_LAST), g * (wy_lo * wx_lo),
             mask, scale, DETERMINISTIC)
    _scatter(grad_base, acc_base, _cell_offsets(chan_off, y_lo * w + x_hi, C, CHANNELS_LAST), g * (wy_lo * wx_hi),
             mask, scale, DETERMINISTIC)
    _scatter(grad_base, acc_base, _cell_offsets(chan_off, y_hi * w + x_lo, C, CHANNELS_LAST), g * (wy_hi * wx_lo),
             mask, scale, DETERMINISTIC)
    _scatter(grad_base, acc_base, _cell_offsets(chan_off, y_hi * w + x_hi, C, CHANNELS_LAST), g * (wy_hi * wx_hi),
             mask, scale, DETERMINISTIC)


@triton.jit
def _spread_grid(grad_base, acc_base, grad_out_ptr, out_row, chan_off, c_mask, start_y, size_h, r_y, start_x, size_w,
                 r_x, h, w, C, scale, PYRAMID: tl.constexpr, OFFSETS: tl.constexpr, PADS: tl.constexpr,
                 U0: tl.constexpr, U1: tl.constexpr, S: tl.constexpr, CHANNELS_LAST: tl.constexpr,
                 DETERMINISTIC: tl.constexpr, BLOCK_C: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    """Avg backward over grid S's lattice: every point gets the shares (grad / samples) of
    the bins holding it, of the pyramid entries U0 <= i < U1 (whose points all lie on this
    lattice), times its corner weights."""
    p_y = S * r_y
    p_x = S * r_x
    step_y = tl.div_rn(size_h, S * 1.0)
    step_x = tl.div_rn(size_w, S * 1.0)
    bounds = ()
    shares = ()
    for u in tl.static_range(U0, U1):
        grid_bounds = (_grid_bounds(PYRAMID[u], p_y), _grid_bounds(PYRAMID[u], p_x))
        bounds = bounds + (grid_bounds,)
        shares = shares + (_bin_shares(grad_out_ptr, out_row, c_mask, grid_bounds[0], grid_bounds[1], PYRAMID[u],
                                       PADS[u], OFFSETS[u]),)
    chan = chan_off[:, None, None]
    for t in range(0, tl.cdiv(p_y, TILE_H) * tl.cdiv(p_x, TILE_W)):
        rows, cols, ys, xs, in_lattice, in_map = _lattice_tile(t, p_y, p_x, start_y, step_y, r_y, start_x, step_x,
                                                               r_x, h, w, TILE_H, TILE_W)
        factor = tl.zeros([BLOCK_C, TILE_H, TILE_W], tl.float32)
        for u in tl.static_range(U1 - U0):
            factor = _spread_tile(factor, shares[u], rows, cols, bounds[u][0], bounds[u][1], PYRAMID[U0 + u],
                                  PADS[U0 + u])
        _scatter_corners(grad_base, acc_base, chan, factor, ys[0], ys[1], ys[2], ys[3], xs[0], xs[1], xs[2], xs[3], w,
                         c_mask[:, None, None] & (in_lattice & in_map)[None], C, scale, CHANNELS_LAST, DETERMINISTIC)


@triton.jit(do_not_specialize=["ratio", "aligned"])
def spp_align_bwd_kernel(
    grads,  # tuple of NUM_LEVELS float32 pointers: level l's gradient accumulator, features' layout, zeroed
    accs,  # tuple of NUM_LEVELS int64 pointers (DETERMINISTIC): fixed-point accumulators, same layout, zeroed
    exp_ptr,  # (1,) int32 (DETERMINISTIC): float32 exponent field of max |finite grad_out|
    grad_out_ptr,  # (K, C, B) float32 contiguous: incoming gradient
    argmax_ptr,  # (K, C, B) int32 contiguous (max mode): forward's lattice indices; unused otherwise
    rois_ptr,  # (K, 5) float32 contiguous
    levels_ptr,  # (K,) int32
    scales_ptr,  # (L,) float32
    heights,  # tuple of NUM_LEVELS ints: H_l
    widths,  # tuple of NUM_LEVELS ints: W_l
    N, C,
    ratio,  # int: sampling_ratio (0: adaptive)
    aligned,  # int: 1 for aligned=True, else 0
    NUM_LEVELS: tl.constexpr,
    PYRAMID: tl.constexpr, OFFSETS: tl.constexpr, PADS: tl.constexpr, B: tl.constexpr, B_PAD: tl.constexpr,
    FINE: tl.constexpr, MODE: tl.constexpr,
    CHANNELS_LAST: tl.constexpr, DETERMINISTIC: tl.constexpr,
    HEADROOM: tl.constexpr,  # ceil(log2(K * B)) + 1: bits for the largest possible sum into a cell
    BLOCK_C: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
):
    """Backward of RoI k for BLOCK_C channels; grid (K, cdiv(C, BLOCK_C)). Max: grad_out[k,
    c, ob] times the corner weights of the sample at argmax[k, c, ob], at its corners. Avg:
    every sample of a bin gets grad_out / samples, times its corner weights."""
    k, c, c_mask, b, lvl, h, w, grad_base, acc_base, chan_off, scale = _backward_program(
        grads, accs, exp_ptr, rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS, BLOCK_C, CHANNELS_LAST,
        DETERMINISTIC, HEADROOM)
    start_x, start_y, size_w, size_h = _align_window(k, lvl, rois_ptr, scales_ptr, aligned)
    out_row = (k * C + c) * B  # [BLOCK_C] int64
    if MODE == MODE_MAX:
        ob = tl.arange(0, B_PAD)
        m = c_mask[:, None] & (ob < B)[None, :]
        src = out_row[:, None] + ob[None, :]
        g = tl.load(grad_out_ptr + src, mask=m, other=0.0).to(tl.float32)
        t = tl.load(argmax_ptr + src, mask=m, other=0)
        # Per bin: its sampled grid S (FINE, or its own grid), S's step (size / S) and
        # samples per bin, as [B_PAD] vectors.
        r_y = tl.zeros([B_PAD], tl.int32) + 1
        r_x = tl.zeros([B_PAD], tl.int32) + 1
        step_y = tl.zeros([B_PAD], tl.float32)
        step_x = tl.zeros([B_PAD], tl.float32)
        grid_of = tl.zeros([B_PAD], tl.int32) + 1
        for i in tl.static_range(len(PYRAMID)):
            here = ob >= OFFSETS[i]
            r_y = tl.where(here, _lattice_ratio(size_h, FINE + (FINE == 0) * PYRAMID[i], ratio), r_y)
            r_x = tl.where(here, _lattice_ratio(size_w, FINE + (FINE == 0) * PYRAMID[i], ratio), r_x)
            step_y = tl.where(here, tl.div_rn(size_h, (FINE + (FINE == 0) * PYRAMID[i]) * 1.0), step_y)
            step_x = tl.where(here, tl.div_rn(size_w, (FINE + (FINE == 0) * PYRAMID[i]) * 1.0), step_x)
            grid_of = tl.where(here, FINE + (FINE == 0) * PYRAMID[i], grid_of)
        p_x = grid_of * r_x
        p_y = grid_of * r_y
        t = tl.minimum(tl.maximum(t, 0), (p_y * p_x)[None, :] - 1)  # memory safety for unchecked argmax
        ty = t // p_x[None, :]
        tx = t % p_x[None, :]
        y_lo, y_hi, wy_lo, wy_hi, in_y = _sample_axis(ty, start_y, step_y[None, :], r_y[None, :], h)
        x_lo, x_hi, wx_lo, wx_hi, in_x = _sample_axis(tx, start_x, step_x[None, :], r_x[None, :], w)
        _scatter_corners(grad_base, acc_base, chan_off[:, None], g, y_lo, y_hi, wy_lo, wy_hi, x_lo, x_hi, wx_lo,
                         wx_hi, w, m & in_y & in_x, C, scale, CHANNELS_LAST, DETERMINISTIC)
    elif FINE > 0:
        r_y = _lattice_ratio(size_h, FINE, ratio)
        r_x = _lattice_ratio(size_w, FINE, ratio)
        _spread_grid(grad_base, acc_base, grad_out_ptr, out_row, chan_off, c_mask, start_y, size_h, r_y, start_x,
                     size_w, r_x, h, w, C, scale, PYRAMID, OFFSETS, PADS, 0, len(PYRAMID), FINE, CHANNELS_LAST,
                     DETERMINISTIC, BLOCK_C, TILE_H, TILE_W)
    else:
        for i in tl.static_range(len(PYRAMID)):
            r_y = _lattice_ratio(size_h, PYRAMID[i], ratio)
            r_x = _lattice_ratio(size_w, PYRAMID[i], ratio)
            _spread_grid(grad_base, acc_base, grad_out_ptr, out_row, chan_off, c_mask, start_y, size_h, r_y,
                         start_x, size_w, r_x, h, w, C, scale, PYRAMID, OFFSETS, PADS, i, i + 1, PYRAMID[i],
                         CHANNELS_LAST, DETERMINISTIC, BLOCK_C, TILE_H, TILE_W)


spp_align_bwd_tuned = triton.autotune(configs=backward_configs(),
                                      key=["C", "CHANNELS_LAST", "B", "MODE", "FINE", "ratio", "DETERMINISTIC"],
                                      prune_configs_by={"early_config_prune": _pruner(ALIGN_BACKWARD_GPU_CONFIGS)},
                                      pre_hook=_zero_accumulators)(spp_align_bwd_kernel)
