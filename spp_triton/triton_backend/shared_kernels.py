"""What every Triton kernel of this package shares: pure ``@triton.jit`` helpers, the
autotune machinery, and the deterministic backward's pre-pass and finalize kernels.

The kernel families: ``cells_kernels.py`` (``sampling="cells"``, the paper) and
``align_kernels.py`` (``sampling="bilinear"``, SPP-Align); launchers:
``launch.py``. Notation (both families):

* L feature levels; level l is an (N, C, H_l, W_l) tensor, NCHW-contiguous or, with
  ``CHANNELS_LAST``, channels-last. Element (b, c, y, x) is at
  ``(b C + c) H W + y W + x`` or ``(b H W + y W + x) C + c``: the contiguous dimension
  (cells, or channels) is the one a tile vectorises.
* K RoIs: ``rois[k] = (batch, x1, y1, x2, y2)`` float32, ``levels[k]`` its level,
  ``scales[level]`` the level's float32 scale.
* ``PYRAMID``: the grid sizes n (constexpr tuple), B = sum(n * n) bins per channel,
  ``OFFSETS[i]`` the first bin of grid i, ``PADS[i]`` = next_power_of_2(PYRAMID[i]).
  ``FINE`` = G when the kernels fold the G x G grid once and derive the coarser ones
  (``PoolSpec.fine_grid``), else 0.

The shared rules: ``_grid_bounds`` (the bin rule of ``geometry.bin_bounds``, once per
program and grid), ``_pack`` / ``_unpack`` (max pooling's order in one int64 key: the
value, then the smaller index), ``_pool_tile`` (folds a tile of cells or lattice points
into an n x n grid, separably), ``_coarsen`` (a nested grid's coarse bins as unions of
fine ones), ``_store_grid``, and the backward's ``_bin_shares``, ``_spread_tile`` and
``_scatter`` (float32 atomics, or int64 fixed-point ones with ``DETERMINISTIC``: integer
sums do not depend on the order of the atomics, so the result is bit-identical run to run).
"""
from __future__ import annotations

import os

import triton
import triton.language as tl

from ..geometry import Mode

# geometry.Mode values, as the MODE constexprs take them.
MODE_MAX = tl.constexpr(int(Mode.MAX))
NEG_PACKED = tl.constexpr(-9223372036854775808)  # -2**63: below every packed element
# Fixed point of the deterministic backward: |sum| < 2**FIXED_BITS (int64 holds 2**63).
FIXED_BITS = tl.constexpr(62)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _interpreter_block_c() -> int:
    """BLOCK_C of the interpreter's one config; SPP_TRITON_INTERPRET_BLOCK_C widens it for
    the traffic counts of C = 256 workloads (fewer, wider programs: same bytes, faster)."""
    return int(os.environ.get("SPP_TRITON_INTERPRET_BLOCK_C", "8"))



def _configs(table, interpret, channels_last, maxnreg=None):
    """triton.Configs of ``table`` ({channels_last: ((num_warps, BLOCK_C, TILE_H, TILE_W),
    ...)}), each with ``maxnreg`` (None: ptxas's own register limit)."""
    if _interpreting() if interpret is None else interpret:
        # one config: no benchmarking, and whole small windows in one tile (fast tests)
        return [triton.Config(dict(BLOCK_C=_interpreter_block_c(), TILE_H=16, TILE_W=16), num_warps=4)]
    layouts = (False, True) if channels_last is None else (channels_last,)
    shapes = dict.fromkeys(shape for layout in layouts for shape in table[layout])
    return [triton.Config(dict(BLOCK_C=c, TILE_H=h, TILE_W=w), num_warps=warps, maxnreg=maxnreg)
            for warps, c, h, w in shapes]


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
def _coarsen(fine, n: tl.constexpr, NP: tl.constexpr, G: tl.constexpr, G_PAD: tl.constexpr, IS_MAX: tl.constexpr):
    """[BC, NP, NP] accumulator of an n x n grid, n | G, from the [BC, G_PAD, G_PAD] one of
    the fine G x G grid: bin i of n is the union of fine bins [i G / n, (i + 1) G / n).
    Max: keys (the best, ties to the smaller index); avg: float32 sums of the fine sums."""
    if IS_MAX:
        init = tl.full([fine.shape[0], NP, NP], NEG_PACKED, tl.int64)
    else:
        init = tl.zeros([fine.shape[0], NP, NP], tl.float32)
    cells = tl.arange(0, G_PAD)
    cb = _coarse_bounds(n, G)
    return _pool_tile(init, fine, cells, cells, cb, cb, n, NP, IS_MAX)


@triton.jit
def _cast_out(v, dtype: tl.constexpr):
    """float32 ``v`` as ``dtype``, rounded to nearest even. bfloat16 is rounded on its
    bits: Triton's interpreter truncates float32 -> bfloat16 casts (and its RTNE mode
    rounds half up), the GPU rounds to nearest even; this is the GPU's result on both.
    NaN becomes a NaN (0x7FC0)."""
    if dtype == tl.bfloat16:
        bits = v.to(tl.int32, bitcast=True)
        r = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        r = tl.where(v != v, 0x7FC0, r)
        return r.to(tl.int16).to(tl.bfloat16, bitcast=True)
    else:
        return v.to(dtype)


@triton.jit
def _store_grid(acc, base, chan_off, c_mask, out_row, out_ptr, argmax_ptr, row_bounds, col_bounds, C,
                n: tl.constexpr, NP: tl.constexpr, OFFSET: tl.constexpr, IS_MAX: tl.constexpr,
                CHANNELS_LAST: tl.constexpr, SAMPLES: tl.constexpr):
    """Writes an n x n grid's [BC, NP, NP] accumulator to out[k, c, OFFSET + p * n + q]
    (and argmax). Max: the value decoded from the key; avg: the sum / the bin's size
    (cells, or lattice points: the bounds' product). Cells (SAMPLES False): a NaN maximum
    is the element itself (its payload, loaded again), and values are cast with ``.to``.
    Bilinear samples (SAMPLES): the keys index the lattice, so a NaN stays the decoded NaN,
    and values are rounded to the output dtype by ``_cast_out``."""
    j = tl.arange(0, NP)
    sel = c_mask[:, None, None] & ((j < n)[:, None] & (j < n)[None, :])[None]
    dst = out_row[:, None, None] + OFFSET + (j[:, None] * n + j[None, :])[None]
    if IS_MAX:
        val, best, is_nan = _unpack(acc)
        if SAMPLES:
            val = _cast_out(val, out_ptr.dtype.element_ty)
        else:  # a cell's own value: every cast is exact
            nan_val = tl.load(base + _cell_offsets(chan_off[:, None, None], best, C, CHANNELS_LAST),
                              mask=sel & is_nan)  # NaN payloads only
            val = tl.where(is_nan, nan_val, val.to(out_ptr.dtype.element_ty))
        tl.store(out_ptr + dst, val, mask=sel)
        tl.store(argmax_ptr + dst, best, mask=sel)
    else:
        cells = _bin_sizes(row_bounds, n, NP)[:, None] * _bin_sizes(col_bounds, n, NP)[None, :]
        mean = acc / tl.where(cells > 0, cells, 1.0)[None]
        if SAMPLES:
            mean = _cast_out(mean, out_ptr.dtype.element_ty)
        tl.store(out_ptr + dst, mean.to(out_ptr.dtype.element_ty), mask=sel)


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
def _backward_program(grads, accs, exp_ptr, rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS: tl.constexpr,
                      BLOCK_C: tl.constexpr, CHANNELS_LAST: tl.constexpr, DETERMINISTIC: tl.constexpr,
                      HEADROOM: tl.constexpr):
    """What a backward program of grid (K, cdiv(C, BLOCK_C)) works on: ``_program_roi``'s
    (k, c, c_mask, b, lvl, h, w), its level's gradient and fixed-point accumulators, its
    channels' offsets and the fixed-point scale (1.0 with float32 atomics)."""
    k, c, c_mask, b, lvl, h, w = _program_roi(rois_ptr, levels_ptr, heights, widths, N, C, NUM_LEVELS, BLOCK_C)
    if DETERMINISTIC:
        scale = _pow2(_fixed_shift(exp_ptr, HEADROOM))
    else:
        scale = 1.0
    return (k, c, c_mask, b, lvl, h, w, _select(lvl, grads, NUM_LEVELS), _select(lvl, accs, NUM_LEVELS),
            _channel_offsets(b, c, C, h, w, CHANNELS_LAST), scale)


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


def _zero_accumulators(nargs, reset_only=False):
    """Autotuning runs the kernel once per config: start each run from zero."""
    for name in ("grads", "accs"):
        for t in nargs[name]:
            t.zero_()


@triton.jit
def abs_max_exponent_kernel(
    x_ptr,  # (n,) float32 contiguous (grad_out)
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
