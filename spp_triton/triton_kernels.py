"""Triton kernels of spatial-pyramid RoI pooling: pure ``@triton.jit`` code and autotune configs.

Launchers: ``triton_backend.py``. Semantics: ``geometry.py`` and ``spp_roi_pool``'s
docstring; ``tests/reference.py`` judges. Notation below:

* L feature levels; level l is an (N, C, H_l, W_l) tensor, NCHW-contiguous or, with
  ``CHANNELS_LAST``, channels-last. Element (b, c, y, x) is at
  ``(b C + c) H W + y W + x`` or ``(b H W + y W + x) C + c``: the contiguous dimension
  (cells, or channels) is the one a tile vectorises.
* K RoIs: ``rois[k] = (batch, x1, y1, x2, y2)`` float32, ``levels[k]`` its level,
  ``scales[level]`` the level's float32 scale.
* ``PYRAMID``: the grid sizes n (constexpr tuple), B = sum(n * n) bins per channel,
  ``OFFSETS[i]`` the first bin of grid i, ``PADS[i]`` = next_power_of_2(PYRAMID[i]).
  ``FINE`` = G when the pyramid nests (max mode, every n divides G = max(PYRAMID)),
  else 0.

The rules live in three helpers used by every kernel: ``_window`` (projection, collapse,
clamp: ``geometry.roi_windows`` with the same float32 operations in the same order,
launched with ``enable_fp_fusion=False`` so ``x * s + 0.5`` rounds twice, as in torch),
``_grid_bounds`` (the bin rule of ``geometry.bin_bounds``, evaluated once per program
and grid, not per bin) and ``_pack`` / ``_unpack`` (the max-mode order).

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

import os

import triton
import triton.language as tl

from .geometry import Mode, Projection

# geometry.Mode / geometry.Projection values, as the MODE / PROJ constexprs take them.
MODE_MAX = tl.constexpr(int(Mode.MAX))
PROJ_SPPNET = tl.constexpr(int(Projection.SPPNET))
NEG_PACKED = tl.constexpr(-9223372036854775808)  # -2**63: below every packed element
# Fixed point of the deterministic backward: |sum| < 2**FIXED_BITS (int64 holds 2**63).
FIXED_BITS = tl.constexpr(62)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _interpreter_block_c() -> int:
    """BLOCK_C of the interpreter's one config; SPP_TRITON_INTERPRET_BLOCK_C widens it for
    the traffic counts of C = 256 workloads (fewer, wider programs: same bytes, faster)."""
    return int(os.environ.get("SPP_TRITON_INTERPRET_BLOCK_C", "8"))


# GPU autotune configs per layout, (num_warps, BLOCK_C, TILE_H, TILE_W): NCHW tiles
# vectorise along the window's columns (TILE_W), channels-last tiles along the channels
# (BLOCK_C). Every one compiles for sm_80 and sm_90 without spills in every variant and
# dtype (``python -m spp_triton.compile_check``); wider ones spilled.
# Chosen from a sweep of 30 shapes: the register pressure of the int64 keys and the
# per-grid accumulators leaves few that stay spill-free for the non-nested max forward.
FORWARD_GPU_CONFIGS = {False: ((4, 8, 2, 32), (4, 8, 1, 32), (8, 16, 1, 32)),
                       True: ((8, 16, 1, 32),)}
BACKWARD_GPU_CONFIGS = {False: ((4, 8, 4, 16), (4, 8, 2, 32), (8, 16, 2, 32), (4, 16, 2, 16)),
                        True: ((4, 8, 4, 16), (4, 8, 2, 32), (8, 16, 2, 32))}


def _configs(table, interpret, channels_last):
    if _interpreting() if interpret is None else interpret:
        # one config: no benchmarking, and whole small windows in one tile (fast tests)
        return [triton.Config(dict(BLOCK_C=_interpreter_block_c(), TILE_H=16, TILE_W=16), num_warps=4)]
    layouts = (False, True) if channels_last is None else (channels_last,)
    shapes = dict.fromkeys(shape for layout in layouts for shape in table[layout])
    return [triton.Config(dict(BLOCK_C=c, TILE_H=h, TILE_W=w), num_warps=warps) for warps, c, h, w in shapes]


def forward_configs(interpret: bool | None = None, channels_last: bool | None = None) -> list[triton.Config]:
    """The forward's autotune configs (both layouts' unless ``channels_last`` is given)."""
    return _configs(FORWARD_GPU_CONFIGS, interpret, channels_last)


def backward_configs(interpret: bool | None = None, channels_last: bool | None = None) -> list[triton.Config]:
    """The backward's autotune configs (both layouts' unless ``channels_last`` is given)."""
    return _configs(BACKWARD_GPU_CONFIGS, interpret, channels_last)


def _pruner(table):
    def prune(configs, named_args, **kwargs):
        """Keeps the configs of the call's layout that are not wider than the channels
        (BLOCK_C <= max(16, next_power_of_2(C))); at least one."""
        if len(configs) == 1:  # the interpreter's
            return configs
        layout = table[bool(kwargs.get("CHANNELS_LAST", named_args.get("CHANNELS_LAST")))]
        widest = max(16, triton.next_power_of_2(named_args["C"]))
        mine = [cfg for cfg in configs
                if (cfg.num_warps, cfg.kwargs["BLOCK_C"], cfg.kwargs["TILE_H"], cfg.kwargs["TILE_W"]) in layout]
        return [cfg for cfg in mine if cfg.kwargs["BLOCK_C"] <= widest] or mine[:1]
    return prune


def pyramid_constexprs(pyramid) -> dict:
    """The pyramid as the kernels' constexprs: PYRAMID, OFFSETS (first bin of each grid),
    PADS (next_power_of_2 of each n) and B."""
    offsets = tuple(sum(n * n for n in pyramid[:i]) for i in range(len(pyramid)))
    return dict(PYRAMID=tuple(pyramid), OFFSETS=offsets, PADS=tuple(triton.next_power_of_2(n) for n in pyramid),
                B=sum(n * n for n in pyramid))


# ---------------------------------------------------------------- rules (used by every kernel)
@triton.jit
def _select(lvl, values, NUM_LEVELS: tl.constexpr):
    """values[lvl] for a tuple of NUM_LEVELS scalars or pointers (a static chain of selects,
    hence the backend's limit of 8 levels, registry.BACKENDS["triton"].max_levels)."""
    out = values[0]
    for i in tl.static_range(1, NUM_LEVELS):
        out = tl.where(lvl == i, values[i], out)
    return out


@triton.jit
def _roi_meta(k, rois_ptr, levels_ptr, N, NUM_LEVELS: tl.constexpr):
    """(batch, level) of RoI k, both clamped into range (memory safety only)."""
    b_f = tl.load(rois_ptr + k * 5)
    b_f = tl.minimum(tl.maximum(b_f, 0.0), 1073741824.0)
    b = tl.minimum(tl.maximum(b_f.to(tl.int32), 0), N - 1)
    lvl = tl.load(levels_ptr + k)
    lvl = tl.minimum(tl.maximum(lvl, 0), NUM_LEVELS - 1)
    return b, lvl


@triton.jit
def _program_roi(rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS: tl.constexpr, BLOCK_C: tl.constexpr):
    """What a (RoI, channel block) program of grid (K, cdiv(C, BLOCK_C)) works on:
    k (int64), its channels c [BLOCK_C] and their mask, the RoI's batch and level, and
    the level's (H, W)."""
    k = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    b, lvl = _roi_meta(k, rois_ptr, levels_ptr, N, NUM_LEVELS)
    return k, c, c < C, b, lvl, _select(lvl, heights, NUM_LEVELS), _select(lvl, widths, NUM_LEVELS)


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


@triton.jit
def _grid_bounds(n: tl.constexpr, size):
    """(starts, stops): tuples of the n bins' [start, stop) over ``size`` cells, relative
    to the window's first cell. The paper's rule, as geometry.bin_bounds: start
    floor(i size / n), stop ceil((i + 1) size / n); never empty."""
    starts = ()
    stops = ()
    for i in tl.static_range(n):
        starts = starts + ((i * size) // n,)
        stops = stops + (((i + 1) * size + n - 1) // n,)
    return starts, stops


@triton.jit
def _channel_offsets(b, c, C, h, w, CHANNELS_LAST: tl.constexpr):
    """[BLOCK_C] int64 offsets of (b, c, 0, 0) within a level; cell y * W + x of channel c
    is at offset + cell (NCHW) or offset + cell * C (channels-last)."""
    if CHANNELS_LAST:
        return b.to(tl.int64) * h * w * C + c
    return (b.to(tl.int64) * C + c) * h * w


@triton.jit
def _cell_offsets(chan_off, cell, C, CHANNELS_LAST: tl.constexpr):
    """Offsets of cells ``cell`` (int32 y * W + x) of the channels whose (b, c, 0, 0)
    offsets are ``chan_off`` (``_channel_offsets``, broadcast by the caller)."""
    if CHANNELS_LAST:
        return chan_off + cell.to(tl.int64) * C
    return chan_off + cell


@triton.jit
def _pack(v, cell, mask):
    """int64 keys whose integer order is max pooling's order: the float32 value ``v``
    (NaN the largest, -0.0 == +0.0), then the smaller cell index ``cell``. High 32 bits:
    the value's order-preserving bits; low 32: (0x7FFFFFFF - cell) << 1 | (v is -0.0),
    the sign of zero riding below the index. Masked lanes: -2**63."""
    bits = v.to(tl.int32, bitcast=True)
    key = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    key = tl.where(v != v, 0x7FFFFFFF, key)
    key = tl.where(v == 0.0, 0, key)
    low = ((0x7FFFFFFF - cell).to(tl.int64) << 1) | (bits == -2147483648).to(tl.int64)
    return tl.where(mask, (key.to(tl.int64) << 32) | low, NEG_PACKED)


@triton.jit
def _unpack(packed):
    """(float32 value, int32 cell, is NaN) of ``_pack``'s keys; the value is exact
    (sign of zero included) except a NaN's payload."""
    key = (packed >> 32).to(tl.int32)
    low = packed & 0xFFFFFFFF
    cell = 0x7FFFFFFF - (low >> 1).to(tl.int32)
    bits = tl.where(key >= 0, key, key ^ 0x7FFFFFFF)
    bits = tl.where((key == 0) & ((low & 1) == 1), -2147483648, bits)
    return bits.to(tl.float32, bitcast=True), cell, key == 0x7FFFFFFF


@triton.jit
def _pool_tile(acc, tile, rows, cols, row_bounds, col_bounds, n: tl.constexpr, NP: tl.constexpr,
               IS_MAX: tl.constexpr):
    """Folds ``tile`` [BC, TH, TW] into ``acc`` [BC, NP, NP] (row bin, column bin) of an
    n x n grid whose bins are ``row_bounds`` / ``col_bounds`` (``_grid_bounds``); ``rows``
    [TH] and ``cols`` [TW] are the tile's positions in the same coordinates. Max: tile and
    acc hold ``_pack`` keys; avg: float32 values, 0 where masked. Separable: the column
    bins of every tile row first, then the row bins."""
    BC: tl.constexpr = tile.shape[0]
    TH: tl.constexpr = tile.shape[1]
    j = tl.arange(0, NP)
    if IS_MAX:
        part = tl.full([BC, TH, NP], NEG_PACKED, tl.int64)
        for q in tl.static_range(n):
            in_q = (cols >= col_bounds[0][q]) & (cols < col_bounds[1][q])
            red = tl.max(tl.where(in_q[None, None, :], tile, NEG_PACKED), axis=2)
            part = tl.where(j[None, None, :] == q, red[:, :, None], part)
        for p in tl.static_range(n):
            in_p = (rows >= row_bounds[0][p]) & (rows < row_bounds[1][p])
            red = tl.max(tl.where(in_p[None, :, None], part, NEG_PACKED), axis=1)
            acc = tl.where(j[None, :, None] == p, tl.maximum(acc, red[:, None, :]), acc)
    else:
        part = tl.zeros([BC, TH, NP], tl.float32)
        for q in tl.static_range(n):
            in_q = (cols >= col_bounds[0][q]) & (cols < col_bounds[1][q])
            red = tl.sum(tl.where(in_q[None, None, :], tile, 0.0), axis=2)
            part = tl.where(j[None, None, :] == q, red[:, :, None], part)
        for p in tl.static_range(n):
            in_p = (rows >= row_bounds[0][p]) & (rows < row_bounds[1][p])
            red = tl.sum(tl.where(in_p[None, :, None], part, 0.0), axis=1)
            acc = tl.where(j[None, :, None] == p, acc + red[:, None, :], acc)
    return acc


@triton.jit
def _bin_sizes(bounds, n: tl.constexpr, NP: tl.constexpr):
    """[NP] float32 cells of each of the n bins (0 beyond n)."""
    j = tl.arange(0, NP)
    sizes = tl.zeros([NP], tl.float32)
    for i in tl.static_range(n):
        sizes = tl.where(j == i, (bounds[1][i] - bounds[0][i]).to(tl.float32), sizes)
    return sizes


@triton.jit
def _coarse_bounds(n: tl.constexpr, G: tl.constexpr):
    """(starts, stops) of bin i of n as the fine bins [i G / n, (i + 1) G / n) of G."""
    starts = ()
    stops = ()
    for i in tl.static_range(n):
        starts = starts + (i * (G // n),)
        stops = stops + ((i + 1) * (G // n),)
    return starts, stops


@triton.jit
def _coarsen(fine, n: tl.constexpr, NP: tl.constexpr, G: tl.constexpr, G_PAD: tl.constexpr):
    """[BC, NP, NP] keys of an n x n grid, n | G, from the [BC, G_PAD, G_PAD] keys of the
    fine G x G grid: bin i of n is the union of fine bins [i G / n, (i + 1) G / n)."""
    init = tl.full([fine.shape[0], NP, NP], NEG_PACKED, tl.int64)
    cells = tl.arange(0, G_PAD)
    cb = _coarse_bounds(n, G)
    return _pool_tile(init, fine, cells, cells, cb, cb, n, NP, True)


@triton.jit
def _store_grid(acc, base, chan_off, c_mask, out_row, out_ptr, argmax_ptr, row_bounds, col_bounds, C,
                n: tl.constexpr, NP: tl.constexpr, OFFSET: tl.constexpr, IS_MAX: tl.constexpr,
                CHANNELS_LAST: tl.constexpr):
    """Writes an n x n grid's [BC, NP, NP] accumulator to out[k, c, OFFSET + p * n + q]
    (and argmax). Max: the value decoded from the key, or the element itself where it is
    NaN (its payload); avg: the sum / the bin's cells."""
    j = tl.arange(0, NP)
    sel = c_mask[:, None, None] & ((j < n)[:, None] & (j < n)[None, :])[None]
    dst = out_row[:, None, None] + OFFSET + (j[:, None] * n + j[None, :])[None]
    if IS_MAX:
        val, best, is_nan = _unpack(acc)
        nan_val = tl.load(base + _cell_offsets(chan_off[:, None, None], best, C, CHANNELS_LAST),
                          mask=sel & is_nan)  # NaN payloads only
        tl.store(out_ptr + dst, tl.where(is_nan, nan_val, val.to(out_ptr.dtype.element_ty)), mask=sel)
        tl.store(argmax_ptr + dst, best, mask=sel)
    else:
        cells = _bin_sizes(row_bounds, n, NP)[:, None] * _bin_sizes(col_bounds, n, NP)[None, :]
        mean = acc / tl.where(cells > 0, cells, 1.0)[None]
        tl.store(out_ptr + dst, mean.to(out_ptr.dtype.element_ty), mask=sel)


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
                acc = _coarsen(accs[0], PYRAMID[i], PADS[i], FINE, FINE_PAD)
            grid_bounds = bounds[0]  # unused by max mode
        else:
            acc = accs[i]
            grid_bounds = bounds[i]
        _store_grid(acc, base, chan_off, c_mask, out_row, out_ptr, argmax_ptr, grid_bounds[0], grid_bounds[1], C,
                    PYRAMID[i], PADS[i], OFFSETS[i], IS_MAX, CHANNELS_LAST)


spp_fwd_tuned = triton.autotune(configs=forward_configs(), key=["C", "CHANNELS_LAST", "B", "MODE", "FINE"],
                                prune_configs_by={"early_config_prune": _pruner(FORWARD_GPU_CONFIGS)})(spp_fwd_kernel)


# ---------------------------------------------------------------- backward
@triton.jit
def _to_fixed(g, scale):
    """round(g * scale) as int64 (g float32, scale float64 = 2**s)."""
    return tl.floor(g.to(tl.float64) * scale + 0.5).to(tl.int64)


@triton.jit
def _pow2(e):
    """2.0 ** e as float64 for an integer e in [-1022, 1023] (built from its bits: exact)."""
    return ((e.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)


@triton.jit
def _fixed_shift(exp_ptr, HEADROOM: tl.constexpr):
    """s such that |sum| * 2**s < 2**FIXED_BITS for every cell: exp_ptr holds the float32
    exponent field of max |finite grad_out| (so that max < 2**(field - 126)), and
    HEADROOM bits leave room for the largest possible number of terms per cell."""
    field = tl.maximum(tl.load(exp_ptr), 1)  # zero and subnormal maxima: below 2**-125
    return -field + (FIXED_BITS - HEADROOM + 126)  # tensor first: constexpr - tensor stays a constexpr


@triton.jit
def _scatter(grad_base, acc_base, offs, g, mask, scale, DETERMINISTIC: tl.constexpr):
    """Adds g at offs: float32 atomics, or int64 fixed-point atomics (non-finite values
    go to the float32 buffer, where their sum is order-independent too)."""
    if DETERMINISTIC:
        finite = tl.abs(g) < float("inf")  # False for NaN
        tl.atomic_add(acc_base + offs, _to_fixed(g, scale), mask=mask & finite, sem="relaxed")
        tl.atomic_add(grad_base + offs, g, mask=mask & ~finite, sem="relaxed")
    else:
        tl.atomic_add(grad_base + offs, g, mask=mask, sem="relaxed")


@triton.jit
def _bin_shares(grad_out_ptr, out_row, c_mask, row_bounds, col_bounds, n: tl.constexpr, NP: tl.constexpr,
                OFFSET: tl.constexpr):
    """[BC, NP, NP] float32 grad_out[k, c, OFFSET + p * n + q] / (cells of bin (p, q))."""
    j = tl.arange(0, NP)
    sel = c_mask[:, None, None] & ((j < n)[:, None] & (j < n)[None, :])[None]
    g = tl.load(grad_out_ptr + out_row[:, None, None] + OFFSET + (j[:, None] * n + j[None, :])[None],
                mask=sel, other=0.0).to(tl.float32)
    cells = _bin_sizes(row_bounds, n, NP)[:, None] * _bin_sizes(col_bounds, n, NP)[None, :]
    return g / tl.where(cells > 0, cells, 1.0)[None]


@triton.jit
def _spread_tile(tile, shares, rows, cols, row_bounds, col_bounds, n: tl.constexpr, NP: tl.constexpr):
    """tile [BC, TH, TW] += for each cell, the shares [BC, NP, NP] of the n x n bins that
    hold it. Separable: per row bin, the column bins' shares of every tile column first."""
    j = tl.arange(0, NP)
    by_row = tl.zeros([tile.shape[0], NP, tile.shape[2]], tl.float32)  # [BC, row bin, column]
    for q in tl.static_range(n):
        in_q = (cols >= col_bounds[0][q]) & (cols < col_bounds[1][q])
        s_q = tl.sum(tl.where(j[None, None, :] == q, shares, 0.0), axis=2)  # [BC, NP]
        by_row += s_q[:, :, None] * in_q[None, None, :].to(tl.float32)
    for p in tl.static_range(n):
        in_p = (rows >= row_bounds[0][p]) & (rows < row_bounds[1][p])
        r_p = tl.sum(tl.where(j[None, :, None] == p, by_row, 0.0), axis=1)  # [BC, TW]
        tile += r_p[:, None, :] * in_p[None, :, None].to(tl.float32)
    return tile


@triton.jit
def spp_bwd_kernel(
    grads,  # tuple of NUM_LEVELS float32 pointers: level l's gradient accumulator, features' layout, zeroed
    accs,  # tuple of NUM_LEVELS int64 pointers (DETERMINISTIC): fixed-point accumulators, same layout, zeroed
    exp_ptr,  # (1,) int32 (DETERMINISTIC): float32 exponent field of max |finite grad_out|
    grad_out_ptr,  # (K, C, B) contiguous, any float dtype: incoming gradient
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
    k, c, c_mask, b, lvl, h, w = _program_roi(rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS, BLOCK_C)
    grad_base = _select(lvl, grads, NUM_LEVELS)
    acc_base = _select(lvl, accs, NUM_LEVELS)
    chan_off = _channel_offsets(b, c, C, h, w, CHANNELS_LAST)
    if DETERMINISTIC:
        scale = _pow2(_fixed_shift(exp_ptr, HEADROOM))
    else:
        scale = 1.0
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


def _zero_accumulators(nargs, reset_only=False):
    """Autotuning runs the kernel once per config: start each run from zero."""
    for name in ("grads", "accs"):
        for t in nargs[name]:
            t.zero_()


spp_bwd_tuned = triton.autotune(configs=backward_configs(),
                                key=["C", "CHANNELS_LAST", "B", "MODE", "DETERMINISTIC"],
                                prune_configs_by={"early_config_prune": _pruner(BACKWARD_GPU_CONFIGS)},
                                pre_hook=_zero_accumulators)(spp_bwd_kernel)


@triton.jit
def abs_max_exponent_kernel(
    x_ptr,  # (n,) any float dtype, contiguous
    n,
    exp_ptr,  # (1,) int32, zeroed: receives the float32 exponent field of max |finite x|
    BLOCK: tl.constexpr,
):
    """Grid cdiv(n, BLOCK). Integer atomic max: deterministic."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    a = tl.abs(tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(tl.float32))
    a = tl.where(a < float("inf"), a, 0.0)  # NaN and inf are summed apart
    field = (tl.max(a, axis=0).to(tl.int32, bitcast=True) >> 23) & 0xFF
    tl.atomic_max(exp_ptr, field, sem="relaxed")


@triton.jit
def finalize_kernel(
    grads,  # tuple of NUM_LEVELS float32 pointers: accumulated gradients (non-finite parts, DETERMINISTIC)
    accs,  # tuple of NUM_LEVELS int64 pointers (DETERMINISTIC): fixed-point sums
    outs,  # tuple of NUM_LEVELS pointers: the gradients in the features' dtype (may equal grads)
    numels,  # tuple of NUM_LEVELS ints: elements of each level (same layout in all three)
    exp_ptr,  # (1,) int32 (DETERMINISTIC)
    NUM_LEVELS: tl.constexpr, DETERMINISTIC: tl.constexpr, HEADROOM: tl.constexpr, BLOCK: tl.constexpr,
):
    """out = grads + acc * 2**-s (DETERMINISTIC) or grads, cast to the output dtype, one
    rounding. Grid (cdiv(max numel, BLOCK), NUM_LEVELS)."""
    lvl = tl.program_id(1)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < _select(lvl, numels, NUM_LEVELS)
    g = tl.load(_select(lvl, grads, NUM_LEVELS) + offs, mask=m, other=0.0)
    if DETERMINISTIC:
        fixed = tl.load(_select(lvl, accs, NUM_LEVELS) + offs, mask=m, other=0)
        g = g + (fixed.to(tl.float64) * _pow2(-_fixed_shift(exp_ptr, HEADROOM))).to(tl.float32)
    out = _select(lvl, outs, NUM_LEVELS)
    tl.store(out + offs, g.to(out.dtype.element_ty), mask=m)
