"""``sampling="cells"`` (the paper's pooling) in pure PyTorch.

``fallback`` (the contract's entry) calls it for ``sampling="cells"``; same semantics as the
C++ kernel, bit for bit in max mode; it uses ``geometry``'s window and bin rules directly.
``fallback_align`` reuses its packing (``pack``, ``acc_dtype``, ``CHUNK_ELEMENTS``).

How (vectorised over RoIs, no Python loop over them): a separable reduction, each
window row reduced over every column bin with ``max(dim)`` (which keeps the first
maximum and the first NaN), then those rows over every row bin; RoIs bucketed by padded
shape so chunks waste little and stay within ``CHUNK_ELEMENTS``; coarse levels as exact
unions of the fine bins; backward one ``index_add_`` straight into NCHW planes. It is
exact but about 20x slower than the C++ kernel: a gather or reduction over the RoIs'
cells costs ~5 ns per element on a CPU (``max(dim)`` with indices is not vectorised),
and the int64 index bookkeeping on (K, bins, C) tensors adds as much again
(``benchmarks/speed/bench_spp_roi_pool.py`` times both: the ``spp`` and ``spp_pytorch`` rows). Memory is bounded by the chunking.
"""
from __future__ import annotations

import torch

from ..geometry import Mode, PoolSpec, bin_bounds

# Elements of the largest gathered tensor per chunk.
CHUNK_ELEMENTS = 1 << 24


def pack(feats, dtype):
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
    most CHUNK_ELEMENTS padded elements (rows * cols * unit per RoI). The loop runs
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
        step = max(1, CHUNK_ELEMENTS // (h * w * unit))
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


def forward_max(feats, win, spec: PoolSpec):
    n_img, c = feats[0].shape[:2]
    k = win.shape[0]
    buf, offsets, t = pack(feats, feats[0].dtype)
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
    g = spec.fine_grid
    if g:
        fine = grid(g)
        for n in set(spec.pyramid):
            per_level[n] = fine if n == g else derive(*fine, g, n)
    else:
        for n in set(spec.pyramid):
            per_level[n] = grid(n)
    cells = torch.cat([per_level[n][1] for n in spec.pyramid], dim=1)  # (K, B, C)
    # The output is the element at the argmax, read from the buffer's bits (reductions
    # in half/bfloat16 may canonicalise NaN payloads).
    base = win[:, 0] * t + offsets[win[:, 1]]
    chan = torch.arange(c, device=buf.device)
    int_view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[buf.element_size()]
    vals = buf.view(int_view).view(-1)[(base[:, None, None] + cells) * c + chan].view(buf.dtype)
    return vals.transpose(1, 2).contiguous(), cells.to(torch.int32).transpose(1, 2).contiguous()


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def forward_avg(feats, win, spec: PoolSpec):
    n_img, c = feats[0].shape[:2]
    k = win.shape[0]
    dtype = feats[0].dtype
    buf, offsets, t = pack(feats, acc_dtype(dtype))
    widths = torch.tensor([f.shape[3] for f in feats], dtype=torch.int64, device=buf.device)
    winw = torch.cat([win, widths[win[:, 1]][:, None]], 1)
    parts = []
    for n in spec.pyramid:
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


def backward(grad_out, argmax, win, shapes, n_img, c, dtype, spec: PoolSpec):
    """Adds into one flat buffer holding every level's (N, C, H, W) planes back to back;
    ``index_add_`` on CPU is serial, hence deterministic."""
    dev = grad_out.device
    acc = acc_dtype(dtype)
    hw = torch.tensor([h * w for h, w in shapes], dtype=torch.int64, device=dev)
    sizes = [h * w * n_img * c for h, w in shapes]  # host ints: no device reads
    level_start = torch.cumsum(hw * (n_img * c), 0) - hw * (n_img * c)
    grad_buf = torch.zeros(sum(sizes), dtype=acc, device=dev)
    g = grad_out.to(acc)
    lv = win[:, 1]
    chan = torch.arange(c, device=dev)
    plane = level_start[lv][:, None] + (win[:, 0][:, None] * c + chan) * hw[lv][:, None]  # (K, C)
    if spec.mode == Mode.MAX:
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
            for n in spec.pyramid:
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
    parts = torch.split(grad_buf, sizes)
    return [p.view(n_img, c, h, w).to(dtype, copy=True) for p, (h, w) in zip(parts, shapes)]
