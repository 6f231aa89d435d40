"""Spatial-pyramid RoI pooling on the CPU: a C++ kernel, with a pure-PyTorch fallback.

Same semantics as the Triton kernels (bit for bit in max mode). The windows always come
from ``geometry.roi_windows``; the bins from ``geometry.bin_bounds`` (the C++ code applies
the same integer bin rule to those windows).

Why C++. A pure-PyTorch formulation was tried first, seriously, and is kept as the
fallback: a separable reduction (each window row reduced over every column bin with
``max(dim)``, which keeps the first maximum and the first NaN, then those rows over
every row bin), RoIs bucketed by padded shape so chunks waste little and stay within
``_CHUNK_ELEMENTS``, coarse levels as exact unions of the 6 x 6 fine bins, backward one
``index_add_`` straight into NCHW planes. It is exact but cannot reach the target: a
gather or reduction over the RoIs' cells costs ~5 ns per element on this CPU
(``max(dim)`` with indices is not vectorised; ``amax`` + first-index recovery takes
three passes and was no faster), the benchmark touches ~60 M padded elements, and the
int64 index bookkeeping on (K, bins, C) tensors adds as much again: ~1.6 s forward on
one thread. The C++ kernel (``csrc/spp_cpu.cpp``) takes one (RoI, channel block) per
``at::parallel_for`` item and scans each bin once with the channels innermost, on
channels-last features (NCHW maps are transposed once per call when the RoIs' windows
cover more cells than the maps hold, as a detector's overlapping proposals do, else
read in place); backward is parallel over blocks of 16 channels. It is built on first
use with ``torch.utils.cpp_extension.load`` (-O3 -fopenmp, plus -mavx2 -mfma on CPUs that
have them; gcc + ninja, offline; ~10-30 s once,
then torch's extension cache reuses it, keyed by the source's hash). If it cannot be
built, one RuntimeWarning is issued and the fallback is used; ``SPP_TRITON_CPU_KERNEL=0``
forces the fallback.

Measured on the 2-core CPU (AMD EPYC VM) while another job kept ~1.8 cores busy, so
these are upper bounds: FPN levels of an 800 x 1216 image (200x304, 100x152, 50x76,
25x38), C = 256, N = 1, K = 512 proposals (centres uniform, sqrt(area) log-uniform in
[32, 512], aspect log-uniform in [1/3, 3], mmdet's finest_scale = 56 level mapping),
sppnet projection, float32, medians of 5, command
``python -c "from spp_triton import torch_backend as t; t._benchmark()" [--impl pure]
[--extreme] [--mode avg] [--pyramid 1,3,5] [--dtype bfloat16]``:

    ==========================================  ========  ========  ========
    max, pyramid (1, 2, 3, 6)                    forward   backward  total
    ==========================================  ========  ========  ========
    previous version (gather every padded bin)   4480 ms    353 ms   4.8 s
    C++ kernel, 2 threads                          82 ms     59 ms   142 ms
    C++ kernel, 1 thread                           84 ms     45 ms   128 ms
    C++ kernel, 500x16 / 16x500 boxes             148 ms     60 ms   208 ms
    C++ kernel, pyramid (1, 3, 5) (no nesting)    115 ms     61 ms   176 ms
    C++ kernel, avg                                89 ms    141 ms   230 ms
    pure-PyTorch fallback, 1 thread              1590 ms    100 ms   1.7 s
    pure-PyTorch fallback, 2 threads, contended  4-6 s     ~250 ms
    mmcv roi_align 7x7 per level, same load       877 ms   1531 ms   2.4 s
    ==========================================  ========  ========  ========

These figures predate the channels-last transposition, AVX2 and the blocked backward;
current ones are in benchmarks/results/. Page faults of fresh allocations are a large
share of the kernel's time on this VM (~0.4 ms per MB: the 82 MB of gradients alone
cost ~35 ms). The fallback's memory is
bounded (peak RSS < 1 GB at K = 512, also for the 500 x 16 boxes).

Backward is deterministic on both paths: the C++ kernel gives each channel to one
thread, which adds the RoIs in order; the fallback uses serial CPU ``index_add_`` and
elementwise ops (no BLAS, whose sums need not be bit-reproducible).
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

from .geometry import PyramidPlan, bin_bounds, roi_windows

# Elements of the largest gathered tensor per chunk in the pure-PyTorch path.
_CHUNK_ELEMENTS = 1 << 24
# Largest grid size the C++ kernel takes (it keeps bin bounds on the stack).
_KERNEL_MAX_GRID = 64
# "auto": the C++ kernel when it builds, else the fallback; "pure": always the fallback;
# "kernel": the C++ kernel or an error. Tests switch this.
_IMPL = "auto" if os.environ.get("SPP_TRITON_CPU_KERNEL", "1") != "0" else "pure"

_ext_lock = threading.Lock()
_ext_state: bool | None = None  # None: not tried yet
_ext_error: str | None = None


def _simd_flags() -> list[str]:
    """AVX2 + FMA when this CPU has them (the kernel is built on the machine that runs
    it): the channel loops then take 8 floats at a time instead of SSE2's 4, ~1.4x."""
    if platform.machine().lower() in ("x86_64", "amd64") and \
            torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        return ["-mavx2", "-mfma"]
    return []


def _load_kernel() -> bool:
    """Builds/loads csrc/spp_cpu.cpp once per process; False (and one warning) on failure."""
    global _ext_state, _ext_error
    with _ext_lock:
        if _ext_state is not None:
            return _ext_state
        try:
            from torch.utils import cpp_extension

            path = os.environ.get("PATH", "")
            venv_bin = os.path.dirname(sys.executable)
            if shutil.which("ninja") is None and venv_bin not in path.split(os.pathsep):
                os.environ["PATH"] = venv_bin + os.pathsep + path  # the venv's ninja
            src = Path(__file__).resolve().parent / "csrc" / "spp_cpu.cpp"
            cpp_extension.load(name="spp_triton_cpu", sources=[str(src)],
                               extra_cflags=["-O3", "-fopenmp", *_simd_flags()], extra_ldflags=["-fopenmp"],
                               is_python_module=False, verbose=False)
            torch.ops.spp_triton_cpu.forward  # noqa: B018  (raises if not registered)
            _ext_state = True
        except Exception as exc:  # no compiler, no ninja, read-only cache, ...
            _ext_error = f"{type(exc).__name__}: {exc}"
            warnings.warn("spp_triton: could not build the C++ CPU kernel "
                          f"({_ext_error.splitlines()[0][:300]}); using the much slower "
                          "pure-PyTorch path", RuntimeWarning, stacklevel=3)
            _ext_state = False
        return _ext_state


def _use_kernel(device: torch.device, plan: PyramidPlan) -> bool:
    if _IMPL == "pure" or device.type != "cpu" or max(plan.pyramid) > _KERNEL_MAX_GRID:
        return False
    ok = _load_kernel()
    if not ok and _IMPL == "kernel":
        raise RuntimeError(f"spp_triton: the C++ CPU kernel is unavailable: {_ext_error}")
    return ok


# ---------------------------------------------------------------- shared geometry
def _windows(shapes, rois, roi_levels, scales, num_images, projection):
    """(K, 6) int64 table of (batch, level, x_lo, x_hi, y_lo, y_hi)."""
    dev = rois.device
    rois32 = rois.to(torch.float32)
    levels = roi_levels.to(device=dev, dtype=torch.int64).clamp(0, len(shapes) - 1)
    scales_t = torch.tensor(scales, dtype=torch.float32, device=dev)
    heights = torch.tensor([h for h, _ in shapes], dtype=torch.int64, device=dev)
    widths = torch.tensor([w for _, w in shapes], dtype=torch.int64, device=dev)
    x_lo, x_hi, y_lo, y_hi = roi_windows(rois32, levels, scales_t, heights, widths, projection)
    batch = rois32[:, 0].to(torch.int64).clamp(0, num_images - 1)
    return torch.stack([batch, levels, x_lo, x_hi, y_lo, y_hi], 1).contiguous()


def forward(feats, rois, roi_levels, scales, plan: PyramidPlan, mode: str, projection: str):
    """Returns (out (K, C, B) in the features' dtype, argmax (K, C, B) int32 or None).

    argmax holds, per output, the flat index y * W + x within the RoI's level of the
    first maximal element (max mode only).
    """
    n_img, c = feats[0].shape[:2]
    k = rois.shape[0]
    if k == 0:
        empty = feats[0].new_empty(0, c, plan.num_bins)
        return empty, (empty.to(torch.int32) if mode == "max" else None)
    shapes = [tuple(f.shape[2:]) for f in feats]
    win = _windows(shapes, rois, roi_levels, scales, n_img, projection)
    if _use_kernel(feats[0].device, plan):
        out, argmax = torch.ops.spp_triton_cpu.forward(
            list(feats), win, list(plan.pyramid), plan.fine_grid, mode == "max")
        return out, (argmax if mode == "max" else None)
    if mode == "max":
        return _pure_forward_max(feats, win, plan)
    return _pure_forward_avg(feats, win, plan), None


def backward(grad_out, argmax, feats_meta, rois, roi_levels, scales, plan: PyramidPlan,
             mode: str, projection: str):
    """Gradients for each level, shapes and dtype of ``feats_meta`` (a list of tensors
    or of zero-stride stand-ins). Deterministic (bit-identical run to run)."""
    n_img, c = feats_meta[0].shape[:2]
    dtype = feats_meta[0].dtype
    shapes = [tuple(f.shape[2:]) for f in feats_meta]
    k = rois.shape[0]
    dev = grad_out.device
    if k == 0:
        return [torch.zeros(n_img, c, h, w, dtype=dtype, device=dev) for h, w in shapes]
    win = _windows(shapes, rois, roi_levels, scales, n_img, projection)
    if _use_kernel(dev, plan):
        hw = [d for s in shapes for d in s]
        am = argmax if mode == "max" else torch.empty(0, dtype=torch.int32)
        grads = torch.ops.spp_triton_cpu.backward(grad_out.to(dtype), am, win, hw, n_img,
                                                  list(plan.pyramid), mode == "max")
        return list(grads)
    return _pure_backward(grad_out, argmax, win, shapes, n_img, c, dtype, plan, mode)


# ---------------------------------------------------------------- pure-PyTorch fallback
def _pack(feats, dtype):
    """All levels as one (N * T + 1, C) channels-last buffer (last row zero) and the
    (L,) row offset of each level's first cell within an image's T rows."""
    n_img, c = feats[0].shape[:2]
    flat = torch.cat([f.flatten(2) for f in feats], dim=2).to(dtype)  # (N, C, T)
    t = flat.shape[2]
    buf = flat.new_zeros(n_img * t + 1, c)
    buf[:-1].view(n_img, t, c).copy_(flat.transpose(1, 2))
    sizes = torch.tensor([f.shape[2] * f.shape[3] for f in feats], dtype=torch.int64, device=flat.device)
    return buf, torch.cumsum(sizes, 0) - sizes, t


def _shape_chunks(rows: torch.Tensor, cols: torch.Tensor, unit: int):
    """RoIs grouped by padded shape, as a few index tensors.

    RoIs fall into buckets of (rows, cols) rounded up to powers of sqrt(2), so padding
    a bucket to its largest member costs little; each bucket is cut into chunks of at
    most _CHUNK_ELEMENTS padded elements (rows * cols * unit per RoI). The loop runs
    over buckets and chunks, not RoIs.
    """
    def bucket(x):
        return torch.ceil(torch.log2(x.to(torch.float64)) * 2).to(torch.int64)

    key = bucket(rows) * 4096 + bucket(cols)
    keys, inverse = torch.unique(key, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse, minlength=keys.numel())
    big_rows = torch.zeros_like(keys).scatter_reduce(0, inverse, rows, "amax")
    big_cols = torch.zeros_like(keys).scatter_reduce(0, inverse, cols, "amax")
    chunks, start = [], 0
    for count, h, w in zip(counts.tolist(), big_rows.tolist(), big_cols.tolist()):
        step = max(1, _CHUNK_ELEMENTS // (h * w * unit))
        chunks += [order[s:min(s + step, start + count)] for s in range(start, start + count, step)]
        start += count
    return chunks


def _grid_chunks(win, n, c):
    """Bin bounds of an n x n grid, and chunks of RoIs with similar padded sizes."""
    x_lo, x_hi, y_lo, y_hi = win[:, 2], win[:, 3], win[:, 4], win[:, 5]
    ys, ye = bin_bounds(y_lo, y_hi, n)
    xs, xe = bin_bounds(x_lo, x_hi, n)
    rows = y_hi - y_lo + 1
    seg = (xe - xs).amax(1) + 1  # widest column bin
    return ys, ye, xs, xe, _shape_chunks(rows, seg, n * c)


def _gather_rows(buf, offsets, t, c, win, xs, xe, idx, n, pad_cell):
    """(k', H, n, L, C) values of every window row's column bins, padded with
    ``pad_cell``: "last" repeats the bin's last column, "zero" reads the zero row."""
    y_lo, y_hi, width = win[idx, 4], win[idx, 5], win[idx, 6]
    rows_n = int((y_hi - y_lo).max()) + 1
    seg = int((xe[idx] - xs[idx]).max()) + 1
    base = win[idx, 0] * t + offsets[win[idx, 1]]
    rows = torch.minimum(y_lo[:, None] + torch.arange(rows_n, device=buf.device), y_hi[:, None])
    cols = xs[idx][:, :, None] + torch.arange(seg, device=buf.device)  # (k', n, L)
    over = cols > xe[idx][:, :, None]
    cols = torch.minimum(cols, xe[idx][:, :, None])
    cell = base[:, None, None, None] + rows[:, :, None, None] * width[:, None, None, None] + cols[:, None]
    row_pad = (y_lo[:, None] + torch.arange(rows_n, device=buf.device)) > y_hi[:, None]
    if pad_cell == "zero":
        zero_row = buf.shape[0] - 1
        cell = torch.where(over[:, None] | row_pad[:, :, None, None], zero_row, cell)
    return buf[cell], cols


def _pure_forward_max(feats, win, plan: PyramidPlan):
    n_img, c = feats[0].shape[:2]
    k = win.shape[0]
    buf, offsets, t = _pack(feats, feats[0].dtype)
    widths = torch.tensor([f.shape[3] for f in feats], dtype=torch.int64, device=buf.device)
    winw = torch.cat([win, widths[win[:, 1]][:, None]], 1)  # column 6: level width

    def grid(n):
        """(K, n*n, C) values and cells y * W + x of each bin's first maximum."""
        ys, ye, xs, xe, chunks = _grid_chunks(win, n, c)
        vals = buf.new_empty(k, n, n, c)
        cells = torch.empty(k, n, n, c, dtype=torch.int64, device=buf.device)
        chan = torch.arange(c, device=buf.device)
        for idx in chunks:
            m = idx.numel()
            v, cols = _gather_rows(buf, offsets, t, c, winw, xs, xe, idx, n, "last")
            row_max, row_arg = v.max(dim=3)  # (m, H, n, C): first max in each row segment
            del v
            y_lo = winw[idx, 4]
            seg_h = int((ye[idx] - ys[idx]).max()) + 1
            rel = torch.minimum((ys[idx] - y_lo[:, None])[:, :, None] + torch.arange(seg_h, device=buf.device),
                                (ye[idx] - y_lo[:, None])[:, :, None])  # (m, n, LH)
            v2 = row_max[torch.arange(m, device=buf.device)[:, None, None], rel]  # (m, n, LH, n, C)
            best, r_arg = v2.max(dim=2)  # (m, n, n, C): first row holding the maximum
            del v2
            y_rel = torch.gather(rel, 2, r_arg.flatten(2)).view(m, n, n, c)
            j = torch.arange(n, device=buf.device)[None, None, :, None]
            x_arg = torch.gather(row_arg.reshape(m, -1), 1, ((y_rel * n + j) * c + chan).reshape(m, -1))
            x = torch.gather(cols.reshape(m, -1), 1, (j * cols.shape[2] + x_arg.view(m, n, n, c)).reshape(m, -1))
            vals[idx] = best
            cells[idx] = (y_lo[:, None, None, None] + y_rel) * winw[idx, 6][:, None, None, None] + x.view(m, n, n, c)
        return vals.view(k, n * n, c), cells.view(k, n * n, c)

    def derive(fine_vals, fine_cells, g, n):
        """Exact unions of (g/n)^2 fine bins: the maximum with the smallest cell index."""
        f = g // n

        def group(x):
            return x.view(k, n, f, n, f, c).permute(0, 1, 3, 2, 4, 5).reshape(k, n * n, f * f, c)

        v, cl = group(fine_vals), group(fine_cells)
        top = v.amax(dim=2, keepdim=True)
        hit = (v == top) | (v != v)
        return None, torch.where(hit, cl, torch.iinfo(torch.int64).max).amin(dim=2)

    per_level = {}
    g = plan.fine_grid
    if g:
        fine = grid(g)
        for n in set(plan.pyramid):
            per_level[n] = fine if n == g else derive(*fine, g, n)
    else:
        for n in set(plan.pyramid):
            per_level[n] = grid(n)
    cells = torch.cat([per_level[n][1] for n in plan.pyramid], dim=1)  # (K, B, C)
    # The output is the element at the argmax, read from the buffer's bits (reductions
    # in half/bfloat16 may canonicalise NaN payloads).
    base = win[:, 0] * t + offsets[win[:, 1]]
    chan = torch.arange(c, device=buf.device)
    int_view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[buf.element_size()]
    vals = buf.view(int_view).view(-1)[(base[:, None, None] + cells) * c + chan].view(buf.dtype)
    return vals.transpose(1, 2).contiguous(), cells.to(torch.int32).transpose(1, 2).contiguous()


def _acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _pure_forward_avg(feats, win, plan: PyramidPlan):
    n_img, c = feats[0].shape[:2]
    k = win.shape[0]
    dtype = feats[0].dtype
    buf, offsets, t = _pack(feats, _acc_dtype(dtype))
    widths = torch.tensor([f.shape[3] for f in feats], dtype=torch.int64, device=buf.device)
    winw = torch.cat([win, widths[win[:, 1]][:, None]], 1)
    parts = []
    for n in plan.pyramid:
        ys, ye, xs, xe, chunks = _grid_chunks(win, n, c)
        means = buf.new_empty(k, n, n, c)
        for idx in chunks:
            m = idx.numel()
            v, _ = _gather_rows(buf, offsets, t, c, winw, xs, xe, idx, n, "zero")
            row_sum = v.sum(dim=3)  # (m, H, n, C); padded rows and columns read zeros
            del v
            row_sum = torch.cat([row_sum, row_sum.new_zeros(m, 1, n, c)], 1)  # zero row at H
            y_lo = winw[idx, 4]
            seg_h = int((ye[idx] - ys[idx]).max()) + 1
            rel = (ys[idx] - y_lo[:, None])[:, :, None] + torch.arange(seg_h, device=buf.device)
            rel = torch.where(rel > (ye[idx] - y_lo[:, None])[:, :, None], row_sum.shape[1] - 1, rel)
            sums = row_sum[torch.arange(m, device=buf.device)[:, None, None], rel].sum(dim=2)  # (m, n, n, C)
            count = (ye[idx] - ys[idx] + 1)[:, :, None] * (xe[idx] - xs[idx] + 1)[:, None, :]
            means[idx] = sums / count[:, :, :, None].to(buf.dtype)
        parts.append(means.view(k, n * n, c))
    return torch.cat(parts, dim=1).to(dtype).transpose(1, 2).contiguous()


def _pure_backward(grad_out, argmax, win, shapes, n_img, c, dtype, plan: PyramidPlan, mode: str):
    """Adds into one flat buffer holding every level's (N, C, H, W) planes back to back;
    ``index_add_`` on CPU is serial, hence deterministic."""
    dev = grad_out.device
    acc = _acc_dtype(dtype)
    hw = torch.tensor([h * w for h, w in shapes], dtype=torch.int64, device=dev)
    sizes = hw * n_img * c
    level_start = torch.cumsum(sizes, 0) - sizes
    grad_buf = torch.zeros(int(sizes.sum()), dtype=acc, device=dev)
    g = grad_out.to(acc)
    k = win.shape[0]
    lv = win[:, 1]
    chan = torch.arange(c, device=dev)
    plane = level_start[lv][:, None] + (win[:, 0][:, None] * c + chan) * hw[lv][:, None]  # (K, C)
    if mode == "max":
        dest = plane[:, :, None] + argmax.to(torch.int64)
        grad_buf.index_add_(0, dest.reshape(-1), g.reshape(-1))
    else:
        # Per RoI and level n, cell (y, x) of the window gets the shares of the bins that
        # hold it: bins are ordered, so the row bins holding y are i1(y), i1(y) + 1, ...
        # (two at most once the window has n - 1 rows; more on tiny windows), columns
        # alike. Built separably with gathers, summed over the pyramid, then one
        # index_add_ of the padded windows per chunk.
        widths = torch.tensor([w for _, w in shapes], dtype=torch.int64, device=dev)[lv]
        x_lo, x_hi, y_lo, y_hi = win[:, 2], win[:, 3], win[:, 4], win[:, 5]
        rows, cols = y_hi - y_lo + 1, x_hi - x_lo + 1

        def covering(start, end, pos, hi, size):
            """[(bin, 0/1 weight)] for each position: every bin that holds it."""
            n = start.shape[1]
            first = (end[:, :, None] < pos[:, None, :]).sum(1)  # (m, P) first bin holding pos
            inside = pos <= hi[:, None]
            out = []
            for t in range(min(n, -(-n // int(size.min())) + 1)):
                b = (first + t).clamp(max=n - 1)
                ok = inside & (first + t < n) & (torch.gather(start, 1, b) <= pos)
                out.append((b, ok.to(acc)))
            return out

        for idx in _shape_chunks(rows, cols, c * 3):
            m = idx.numel()
            hp, wp = int(rows[idx].max()), int(cols[idx].max())
            ry = y_lo[idx, None] + torch.arange(hp, device=dev)  # (m, hp) absolute rows
            rx = x_lo[idx, None] + torch.arange(wp, device=dev)
            win_grad = torch.zeros(m, c, hp, wp, dtype=acc, device=dev)
            offset = 0
            for n in plan.pyramid:
                ys, ye = bin_bounds(y_lo[idx], y_hi[idx], n)
                xs, xe = bin_bounds(x_lo[idx], x_hi[idx], n)
                count = (ye - ys + 1)[:, :, None] * (xe - xs + 1)[:, None, :]
                share = g[idx, :, offset:offset + n * n].view(m, c, n, n) / count[:, None].to(acc)
                offset += n * n
                shape = (m, c, n, wp)
                by_col = sum(torch.gather(share, 3, j[:, None, None].expand(shape)) * u[:, None, None]
                             for j, u in covering(xs, xe, rx, x_hi[idx], cols[idx]))
                shape = (m, c, hp, wp)
                for i, v in covering(ys, ye, ry, y_hi[idx], rows[idx]):
                    win_grad += torch.gather(by_col, 2, i[:, None, :, None].expand(shape)) * v[:, None, :, None]
            # Padding rows/columns hold zeros; point them at the window's last cell.
            cell = (torch.minimum(ry, y_hi[idx, None])[:, :, None] * widths[idx, None, None]
                    + torch.minimum(rx, x_hi[idx, None])[:, None, :])  # (m, hp, wp)
            dest = plane[idx, :, None, None] + cell[:, None]
            grad_buf.index_add_(0, dest.reshape(-1), win_grad.reshape(-1))
    # Separate tensors: the op's outputs must not alias one another.
    parts = torch.split(grad_buf, sizes.tolist())
    return [p.view(n_img, c, h, w).to(dtype, copy=True) for p, (h, w) in zip(parts, shapes)]


# ---------------------------------------------------------------- benchmark
def _benchmark_inputs(k=512, c=256, dtype=torch.float32, seed=0, extreme=False):
    """FPN levels of an 800 x 1216 image and K realistic proposals (mmdet's mapping)."""
    import math

    g = torch.Generator().manual_seed(seed)
    strides = (4, 8, 16, 32)
    feats = [torch.randn(1, c, math.ceil(800 / s), math.ceil(1216 / s), generator=g).to(dtype) for s in strides]
    cx, cy = torch.rand(k, generator=g) * 1216, torch.rand(k, generator=g) * 800
    side = torch.empty(k).uniform_(math.log(32), math.log(512), generator=g).exp()
    ratio = torch.empty(k).uniform_(math.log(1 / 3), math.log(3), generator=g).exp()
    w, h = side * ratio.sqrt(), side / ratio.sqrt()
    if extreme:  # 500 x 16 and 16 x 500 boxes
        w, h = torch.full((k,), 500.0), torch.full((k,), 16.0)
        w[::2], h[::2] = 16.0, 500.0
    rois = torch.stack([torch.zeros(k), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    levels = torch.floor(torch.log2((w * h).sqrt() / 56 + 1e-6)).clamp(0, 3).long()
    return feats, rois, levels, tuple(1.0 / s for s in strides)


def _benchmark(argv=None):
    import argparse
    import statistics
    import time

    p = argparse.ArgumentParser(description="Time the CPU forward + backward (medians).")
    p.add_argument("--k", type=int, default=512)
    p.add_argument("--mode", default="max", choices=("max", "avg"))
    p.add_argument("--pyramid", default="1,2,3,6")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--impl", default="auto", choices=("auto", "pure", "kernel"))
    p.add_argument("--extreme", action="store_true", help="500x16 / 16x500 boxes")
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args(argv)
    global _IMPL
    _IMPL = a.impl
    feats, rois, levels, scales = _benchmark_inputs(a.k, dtype=getattr(torch, a.dtype), extreme=a.extreme)
    plan = PyramidPlan.make([int(x) for x in a.pyramid.split(",")], a.mode)
    fwd, bwd = [], []
    for _ in range(a.reps + 1):
        t0 = time.perf_counter()
        out, argmax = forward(feats, rois, levels, scales, plan, a.mode, "sppnet")
        t1 = time.perf_counter()
        backward(torch.ones_like(out), argmax, feats, rois, levels, scales, plan, a.mode, "sppnet")
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    f, b = statistics.median(fwd[1:]), statistics.median(bwd[1:])  # the first run warms up
    print(f"impl={a.impl} K={a.k} mode={a.mode} pyramid={plan.pyramid} dtype={a.dtype} extreme={a.extreme}: "
          f"forward {f * 1e3:.1f} ms, backward {b * 1e3:.1f} ms, total {(f + b) * 1e3:.1f} ms (median of {a.reps})")


if __name__ == "__main__":
    from spp_triton import torch_backend as _module  # the package's module, not __main__

    _module._benchmark()
