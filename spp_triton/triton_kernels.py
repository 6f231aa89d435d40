"""Triton kernels of spatial-pyramid RoI pooling (pure ``@triton.jit`` code + autotune configs).

The launchers live in ``triton_backend.py``; the semantics are those of ``geometry.py``
and ``torch_backend.py`` (bit for bit in max mode). Notation used below:

* L feature levels, level l is a contiguous (N, C, H_l, W_l) tensor; K RoIs; B output
  bins per channel (B = sum(n * n) over the pyramid); G the fine grid of a nested
  pyramid (``PyramidPlan.fine_grid``).
* RoI k: ``rois[k] = (batch, x1, y1, x2, y2)`` float32 in input pixels,
  ``levels[k]`` its level, ``scales[level]`` the level's float32 spatial scale.
* ``table`` (B, 3) int32: (n, p, q) of output bin ob, i.e. ``PyramidPlan.bin_table()``.

Windows are recomputed per program with the float32 operations of
``geometry.roi_windows`` (launch with ``enable_fp_fusion=False`` so ``x * s + 0.5`` is
two roundings, as in torch). Max mode encodes every element as one int64

    (order-preserving int32 key of the float32 value) << 32 | (0x7FFFFFFF - (y * W + x))

(NaN -> key 0x7FFFFFFF, the largest; +0 and -0 -> key 0; masked lanes -> -2**63), so a
single integer max gives the largest value and, among equal values, the first element in
row-major order. The output value is re-loaded at that index in the features' dtype, so
NaN payloads and the sign of zero are those of the element itself.

Bins are walked as flat runs of cells: a chunk of BLOCK_X consecutive (row-major) cells
of the bin, (y, x) = (ys + t // bw, xs + t % bw), loaded as a [BLOCK_C, BLOCK_X] tile.
For the small bins of realistic RoIs (2-4 cells wide) this fills the lanes that a
row-by-row walk would leave idle, and it halves the loop trips of the interpreter.
"""
from __future__ import annotations

import os

import triton
import triton.language as tl

# Fine-grid accumulators wider than this (G * G rounded up to a power of two) do not
# fit in registers next to the load tile: such pyramids use the direct kernel.
MAX_FINE_COLUMNS = 64
# Levels accepted in one launch (the level is selected with a static chain of selects).
MAX_LEVELS = 8

NEG_PACKED = tl.constexpr(-9223372036854775808)  # -2**63: below every packed element


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _cfg(block_c, block_x, warps):
    return triton.Config({"BLOCK_C": block_c, "BLOCK_X": block_x}, num_warps=warps)


# The interpreter gets one config (no benchmarking, fast tests); compile_check asks for the
# GPU lists with interpret=False.
def nested_forward_configs(interpret: bool | None = None) -> list[triton.Config]:
    """Configs of the nested (fine-grid) forward: the [BLOCK_C, 64] int64 accumulator costs
    BLOCK_C * 128 / (32 * num_warps) registers per thread, the load tile as much again."""
    if _interpreting() if interpret is None else interpret:
        return [_cfg(8, 32, 4)]
    return [_cfg(32, 16, 4), _cfg(32, 32, 4), _cfg(64, 16, 8), _cfg(16, 32, 2)]


def direct_forward_configs(interpret: bool | None = None) -> list[triton.Config]:
    """Configs of the direct forward (non-nested max pyramids and avg mode)."""
    if _interpreting() if interpret is None else interpret:
        return [_cfg(8, 32, 4)]
    return [_cfg(32, 16, 4), _cfg(32, 32, 4), _cfg(64, 32, 8), _cfg(16, 64, 4)]


def backward_configs(interpret: bool | None = None) -> list[triton.Config]:
    """Configs of both backward kernels (BLOCK_X: bins per tile in the max-mode atomic
    scatter, cells per tile in avg mode; unused by the deterministic max scatter)."""
    if _interpreting() if interpret is None else interpret:
        return [_cfg(8, 32, 4)]
    return [_cfg(32, 16, 4), _cfg(16, 32, 4), _cfg(64, 16, 8), _cfg(32, 32, 8)]


# ---------------------------------------------------------------- helpers
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
def _level_hw(lvl, heights, widths, NUM_LEVELS: tl.constexpr):
    """(H, W) of level ``lvl`` as int32 (a static chain of selects over the tuples)."""
    h = lvl * 0 + heights[0]
    w = lvl * 0 + widths[0]
    for i in tl.static_range(1, NUM_LEVELS):
        h = tl.where(lvl == i, heights[i], h)
        w = tl.where(lvl == i, widths[i], w)
    return h, w


@triton.jit
def _level_ptr(lvl, feats, NUM_LEVELS: tl.constexpr):
    """Base pointer of level ``lvl``."""
    base = feats[0]
    for i in tl.static_range(1, NUM_LEVELS):
        base = tl.where(lvl == i, feats[i], base)
    return base


@triton.jit
def _project(c_lo, c_hi, s, size, PROJ: tl.constexpr):
    """Inclusive window [lo, hi] on an axis of ``size`` cells (geometry._project followed
    by geometry._collapse_and_clamp). PROJ 0: "sppnet", 1: "round"."""
    if PROJ == 0:
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
def _roi_window(k, lvl, rois_ptr, scales_ptr, h, w, PROJ: tl.constexpr):
    """(x_lo, x_hi, y_lo, y_hi) inclusive window of RoI k on its level."""
    s = tl.load(scales_ptr + lvl)
    x1 = tl.load(rois_ptr + k * 5 + 1)
    y1 = tl.load(rois_ptr + k * 5 + 2)
    x2 = tl.load(rois_ptr + k * 5 + 3)
    y2 = tl.load(rois_ptr + k * 5 + 4)
    x_lo, x_hi = _project(x1, x2, s, w, PROJ)
    y_lo, y_hi = _project(y1, y2, s, h, PROJ)
    return x_lo, x_hi, y_lo, y_hi


# Note: the per-bin code below is written inline rather than in @triton.jit helpers:
# under TRITON_INTERPRET every call of a jit helper re-patches triton.language (~1 ms),
# which dominated the interpreted tests when helpers were called per bin.

# ---------------------------------------------------------------- forward
@triton.jit
def spp_fwd_kernel(
    feats,  # tuple of NUM_LEVELS pointers: feats[l] (N, C, H_l, W_l) contiguous, features dtype
    heights,  # tuple of NUM_LEVELS ints: H_l
    widths,  # tuple of NUM_LEVELS ints: W_l
    rois_ptr,  # (K, 5) float32 contiguous: (batch, x1, y1, x2, y2)
    levels_ptr,  # (K,) int32: level of each RoI
    scales_ptr,  # (L,) float32: spatial scale of each level
    table_ptr,  # (B, 3) int32 contiguous: (n, p, q) of each output bin, in output order
    out_ptr,  # (K, C, B) contiguous, features dtype: pooled maxima / means
    argmax_ptr,  # (K, C, B) int32 contiguous (IS_MAX): y * W + x of the first maximum; unused otherwise
    N, C, B,
    NUM_LEVELS: tl.constexpr,  # L
    G: tl.constexpr,  # fine grid of a nested max pyramid, 0: direct pooling
    GG_PAD: tl.constexpr,  # next_power_of_2(G * G) (1 when G == 0)
    IS_MAX: tl.constexpr,  # max (True) or avg (False) mode; G > 0 needs IS_MAX
    PROJ: tl.constexpr,  # 0: "sppnet", 1: "round"
    BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr,
):
    """Forward of one RoI x BLOCK_C channels; grid (K, cdiv(C, BLOCK_C)).

    G > 0 (nested, max): the G x G fine bins are reduced once into acc [BLOCK_C, GG_PAD]
    (packed int64); output bin (n, p, q) is the exact union of the fine bins (r, s) with
    r // (G // n) == p and s // (G // n) == q, i.e. a masked max over acc's columns.
    G == 0: every output bin is reduced straight from the features (max + first argmax,
    or the float32 mean cast to the features' dtype).
    Each bin is walked in chunks of BLOCK_X row-major cells, [BLOCK_C, BLOCK_X] tiles.
    """
    k = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    b, lvl = _roi_meta(k, rois_ptr, levels_ptr, N, NUM_LEVELS)
    h, w = _level_hw(lvl, heights, widths, NUM_LEVELS)
    x_lo, x_hi, y_lo, y_hi = _roi_window(k, lvl, rois_ptr, scales_ptr, h, w, PROJ)
    base = _level_ptr(lvl, feats, NUM_LEVELS)
    plane_ptr = base + (b.to(tl.int64) * C + c) * (h.to(tl.int64) * w)  # [BLOCK_C]
    win_h = y_hi - y_lo + 1
    win_w = x_hi - x_lo + 1
    out_row = (k * C + c) * B  # [BLOCK_C] int64
    t = tl.arange(0, BLOCK_X)
    col = tl.arange(0, GG_PAD)
    acc = tl.full([BLOCK_C, GG_PAD], NEG_PACKED, tl.int64)
    if G > 0:
        num_red = G * G
    else:
        num_red = B
    for j in range(num_red):
        # ---- bin j: fine bin (j // G, j % G) of G, or output bin (n, p, q) of the table
        if G > 0:
            n = G
            p = j // G
            q = j % G
        else:
            n = tl.load(table_ptr + j * 3)
            p = tl.load(table_ptr + j * 3 + 1)
            q = tl.load(table_ptr + j * 3 + 2)
        ys = (p * win_h) // n  # bin rows [ys, ye) and columns [xs, xe), window-relative
        ye = ((p + 1) * win_h + n - 1) // n  # ye > ys: bins are never empty
        xs = (q * win_w) // n
        xe = ((q + 1) * win_w + n - 1) // n
        bw = xe - xs
        cells = (ye - ys) * bw
        first = (y_lo + ys) * w + x_lo + xs  # y * W + x of the bin's first cell
        # ---- reduce its cells
        if IS_MAX:
            red = tl.full([BLOCK_C], NEG_PACKED, tl.int64)
        else:
            red = tl.zeros([BLOCK_C], tl.float32)
        for t0 in range(0, cells, BLOCK_X):
            tt = t0 + t
            idx = first + (tt // bw) * w + tt % bw  # [BLOCK_X] y * W + x
            m = c_mask[:, None] & (tt < cells)[None, :]
            v = tl.load(plane_ptr[:, None] + idx[None, :], mask=m, other=0.0).to(tl.float32)
            if IS_MAX:
                bits = v.to(tl.int32, bitcast=True)
                key = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # order-preserving
                key = tl.where(v != v, 0x7FFFFFFF, key)  # NaN: the largest
                key = tl.where(v == 0.0, 0, key)  # -0.0 == +0.0
                packed = (key.to(tl.int64) << 32) | (0x7FFFFFFF - idx).to(tl.int64)[None, :]
                packed = tl.where(m, packed, NEG_PACKED)
                red = tl.maximum(red, tl.max(packed, axis=1))
            else:
                red += tl.sum(v, axis=1)
        # ---- keep the fine bin, or write the output bin
        if G > 0:
            acc = tl.where(col[None, :] == j, red[:, None], acc)
        elif IS_MAX:
            best = 0x7FFFFFFF - (red & 0x7FFFFFFF).to(tl.int32)
            val = tl.load(plane_ptr + best, mask=c_mask)
            tl.store(out_ptr + out_row + j, val, mask=c_mask)
            tl.store(argmax_ptr + out_row + j, best, mask=c_mask)
        else:
            mean = red / cells.to(tl.float32)
            tl.store(out_ptr + out_row + j, mean.to(out_ptr.dtype.element_ty), mask=c_mask)
    if G > 0:
        fine_r = col // G  # fine bin (fine_r, fine_s) of acc's column
        fine_s = col % G
        fine_ok = col < G * G
        for ob in range(B):
            n = tl.load(table_ptr + ob * 3)
            p = tl.load(table_ptr + ob * 3 + 1)
            q = tl.load(table_ptr + ob * 3 + 2)
            f = G // n
            sel = (fine_r // f == p) & (fine_s // f == q) & fine_ok
            red = tl.max(tl.where(sel[None, :], acc, NEG_PACKED), axis=1)
            best = 0x7FFFFFFF - (red & 0x7FFFFFFF).to(tl.int32)
            val = tl.load(plane_ptr + best, mask=c_mask)
            dst = out_row + ob
            tl.store(out_ptr + dst, val, mask=c_mask)
            tl.store(argmax_ptr + dst, best, mask=c_mask)


# One kernel body, two tuners: the nested variant holds the accumulator in registers.
spp_fwd_nested_kernel = triton.autotune(configs=nested_forward_configs(), key=["C", "B", "G"])(spp_fwd_kernel)
spp_fwd_direct_kernel = triton.autotune(configs=direct_forward_configs(), key=["C", "B", "IS_MAX"])(spp_fwd_kernel)


# ---------------------------------------------------------------- backward
@triton.jit
def _grad_plane(k, b, lvl, c, heights, widths, level_off, C, NUM_LEVELS: tl.constexpr):
    """Level (H, W) of RoI k and the int64 offsets [BLOCK_C] of its channels' planes in
    the flat gradient buffer."""
    h, w = _level_hw(lvl, heights, widths, NUM_LEVELS)
    off = lvl.to(tl.int64) * 0 + level_off[0]
    for i in tl.static_range(1, NUM_LEVELS):
        off = tl.where(lvl == i, level_off[i], off)
    plane = off + (b.to(tl.int64) * C + c) * (h.to(tl.int64) * w)
    return h, w, plane


@triton.autotune(configs=backward_configs(), key=["C", "B", "IS_MAX"], reset_to_zero=["grad_ptr"])
@triton.jit
def spp_bwd_atomic_kernel(
    grad_ptr,  # (T,) float32, zeroed: level l's (N, C, H_l, W_l) gradient at offset level_off[l]
    grad_out_ptr,  # (K, C, B) contiguous, any float dtype: incoming gradient
    argmax_ptr,  # (K, C, B) int32 contiguous (IS_MAX): forward's argmax; unused otherwise
    rois_ptr,  # (K, 5) float32 contiguous
    levels_ptr,  # (K,) int32
    scales_ptr,  # (L,) float32
    table_ptr,  # (B, 3) int32 contiguous: (n, p, q) of each output bin
    heights,  # tuple of NUM_LEVELS ints: H_l
    widths,  # tuple of NUM_LEVELS ints: W_l
    level_off,  # tuple of NUM_LEVELS ints: element offset of level l in grad_ptr
    N, C, B, K,
    NUM_LEVELS: tl.constexpr, IS_MAX: tl.constexpr, PROJ: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr,
):
    """Scatter with float32 atomics; grid (K, cdiv(C, BLOCK_C)). The summation order
    depends on scheduling (not bit-reproducible run to run).

    IS_MAX: grad_out[k, c, ob] is added at argmax[k, c, ob] of plane (batch_k, c) on RoI
    k's level, [BLOCK_C, BLOCK_X] bins per tile. Avg: grad_out[k, c, ob] / cells is added
    to every cell of the bin, [BLOCK_C, BLOCK_X] cells per tile.
    """
    k = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    b, lvl = _roi_meta(k, rois_ptr, levels_ptr, N, NUM_LEVELS)
    h, w, plane = _grad_plane(k, b, lvl, c, heights, widths, level_off, C, NUM_LEVELS)
    row = (k * C + c) * B  # [BLOCK_C] int64
    t = tl.arange(0, BLOCK_X)
    if IS_MAX:
        for ob0 in range(0, B, BLOCK_X):
            ob = ob0 + t
            m = c_mask[:, None] & (ob < B)[None, :]
            src = row[:, None] + ob[None, :]
            g = tl.load(grad_out_ptr + src, mask=m, other=0.0).to(tl.float32)
            idx = tl.load(argmax_ptr + src, mask=m, other=0)
            idx = tl.minimum(tl.maximum(idx, 0), h * w - 1)
            tl.atomic_add(grad_ptr + plane[:, None] + idx, g, mask=m)
    else:
        x_lo, x_hi, y_lo, y_hi = _roi_window(k, lvl, rois_ptr, scales_ptr, h, w, PROJ)
        win_h = y_hi - y_lo + 1
        win_w = x_hi - x_lo + 1
        for ob in range(B):
            n = tl.load(table_ptr + ob * 3)
            p = tl.load(table_ptr + ob * 3 + 1)
            q = tl.load(table_ptr + ob * 3 + 2)
            ys = y_lo + (p * win_h) // n
            ye = y_lo + ((p + 1) * win_h + n - 1) // n
            xs = x_lo + (q * win_w) // n
            xe = x_lo + ((q + 1) * win_w + n - 1) // n
            bw = xe - xs
            cells = (ye - ys) * bw
            g = tl.load(grad_out_ptr + row + ob, mask=c_mask, other=0.0).to(tl.float32)
            share = tl.broadcast_to((g / cells.to(tl.float32))[:, None], [BLOCK_C, BLOCK_X])
            for t0 in range(0, cells, BLOCK_X):
                tt = t0 + t
                idx = (ys + tt // bw) * w + xs + tt % bw
                m = c_mask[:, None] & (tt < cells)[None, :]
                tl.atomic_add(grad_ptr + plane[:, None] + idx[None, :], share, mask=m)


@triton.autotune(configs=backward_configs(), key=["C", "B", "IS_MAX"], reset_to_zero=["grad_ptr"])
@triton.jit
def spp_bwd_deterministic_kernel(
    grad_ptr,  # (T,) float32, zeroed: level l's (N, C, H_l, W_l) gradient at offset level_off[l]
    grad_out_ptr,  # (K, C, B) contiguous, any float dtype: incoming gradient
    argmax_ptr,  # (K, C, B) int32 contiguous (IS_MAX): forward's argmax; unused otherwise
    rois_ptr,  # (K, 5) float32 contiguous
    levels_ptr,  # (K,) int32
    scales_ptr,  # (L,) float32
    table_ptr,  # (B, 3) int32 contiguous: (n, p, q) of each output bin
    heights,  # tuple of NUM_LEVELS ints: H_l
    widths,  # tuple of NUM_LEVELS ints: W_l
    level_off,  # tuple of NUM_LEVELS ints: element offset of level l in grad_ptr
    N, C, B, K,
    NUM_LEVELS: tl.constexpr, IS_MAX: tl.constexpr, PROJ: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr,
):
    """Deterministic scatter; grid (cdiv(C, BLOCK_C), N).

    Program (channel block, image) owns that slice of every level's gradient. It walks
    all RoIs k = 0..K-1 in order (skipping those of other images), then their bins in
    order, with plain load-add-store and a block barrier after each store (a later bin
    may hit the same cell from another thread). Every float32 sum is therefore taken in
    the same order: bit-identical run to run. Slow (every program reads every RoI, only
    N * cdiv(C, BLOCK_C) programs, max mode one bin at a time) but simple; the same
    contributions as ``spp_bwd_atomic_kernel``.
    """
    img = tl.program_id(1)
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    t = tl.arange(0, BLOCK_X)
    for k in range(K):
        k64 = tl.cast(k, tl.int64)
        b, lvl = _roi_meta(k64, rois_ptr, levels_ptr, N, NUM_LEVELS)
        if b == img:
            h, w, plane = _grad_plane(k64, b, lvl, c, heights, widths, level_off, C, NUM_LEVELS)
            row = (k64 * C + c) * B  # [BLOCK_C] int64
            if IS_MAX:
                for ob in range(B):
                    g = tl.load(grad_out_ptr + row + ob, mask=c_mask, other=0.0).to(tl.float32)
                    idx = tl.load(argmax_ptr + row + ob, mask=c_mask, other=0)
                    idx = tl.minimum(tl.maximum(idx, 0), h * w - 1)
                    dst = grad_ptr + plane + idx
                    cur = tl.load(dst, mask=c_mask, other=0.0)
                    tl.store(dst, cur + g, mask=c_mask)
                    tl.debug_barrier()
            else:
                x_lo, x_hi, y_lo, y_hi = _roi_window(k64, lvl, rois_ptr, scales_ptr, h, w, PROJ)
                win_h = y_hi - y_lo + 1
                win_w = x_hi - x_lo + 1
                for ob in range(B):
                    n = tl.load(table_ptr + ob * 3)
                    p = tl.load(table_ptr + ob * 3 + 1)
                    q = tl.load(table_ptr + ob * 3 + 2)
                    ys = y_lo + (p * win_h) // n
                    ye = y_lo + ((p + 1) * win_h + n - 1) // n
                    xs = x_lo + (q * win_w) // n
                    xe = x_lo + ((q + 1) * win_w + n - 1) // n
                    bw = xe - xs
                    cells = (ye - ys) * bw
                    g = tl.load(grad_out_ptr + row + ob, mask=c_mask, other=0.0).to(tl.float32)
                    share = (g / cells.to(tl.float32))[:, None]
                    for t0 in range(0, cells, BLOCK_X):
                        tt = t0 + t
                        idx = (ys + tt // bw) * w + xs + tt % bw
                        m = c_mask[:, None] & (tt < cells)[None, :]
                        dst = grad_ptr + plane[:, None] + idx[None, :]
                        cur = tl.load(dst, mask=m, other=0.0)
                        tl.store(dst, cur + share, mask=m)
                        tl.debug_barrier()
