"""``sampling="bilinear"`` (SPP-Align) in pure PyTorch: the backend contract without C++.

``fallback`` hands bilinear calls here; it runs where the C++ kernel cannot (see
``fallback``). Same semantics as every backend (``spp_roi_pool``'s docstring),
bit for bit in max mode: the lattice coordinates and weights come from ``geometry``'s
rules (``align_table``, ``lattice_coords``, ``bilinear_axis``), the samples are
``((w1 v1 + w2 v2) + w3 v3) + w4 v4`` in float32 (float64 for float64 features).

How (no Python loop over RoIs): per sampled grid S (``PoolSpec.sampled_grids``), the RoIs
are grouped by their (r_y, r_x) samples per bin (one group unless ``sampling_ratio=0``)
and cut into chunks of bounded memory; a chunk's whole (S r_y) x (S r_x) lattice is
sampled with four gathers from a channels-last copy of the maps, reshaped to
(bin, samples) and reduced with ``max(dim)`` (first maximum, first NaN) or ``sum``; the
coarser grids of a nested pyramid are exact unions of the fine bins. Backward: max mode
recomputes each bin's chosen sample from its lattice index, avg mode spreads each bin's
share over its samples; both end in ``index_add_`` into the NCHW planes (serial on CPU,
hence deterministic; on CUDA under ``torch.use_deterministic_algorithms`` when asked).
"""
from __future__ import annotations

import torch

from ..geometry import ALIGN_BATCH, ALIGN_LEVEL, ALIGN_RATIOS, Mode, PoolSpec, align_table, bilinear_axis, \
    lattice_coords
from .fallback_cells import CHUNK_ELEMENTS, acc_dtype, pack


def _level_sizes(shapes, levels, device):
    heights = torch.tensor([h for h, _ in shapes], dtype=torch.int64, device=device)[levels]
    widths = torch.tensor([w for _, w in shapes], dtype=torch.int64, device=device)[levels]
    return heights, widths


def _ratio_chunks(ry: torch.Tensor, rx: torch.Tensor, points_per_roi):
    """[(indices, r_y, r_x)]: the RoIs grouped by their samples per bin, each group cut
    into chunks of at most CHUNK_ELEMENTS ``points_per_roi(r_y, r_x)`` elements."""
    key = ry * (1 << 20) + rx
    chunks = []
    for value in torch.unique(key).tolist():
        idx = torch.nonzero(key == value).flatten()
        r_y, r_x = value >> 20, value & ((1 << 20) - 1)
        step = max(1, CHUNK_ELEMENTS // points_per_roi(r_y, r_x))
        chunks += [(idx[s:s + step], r_y, r_x) for s in range(0, idx.numel(), step)]
    return chunks


def _axes(box, meta, idx, grid, gi, r_y, r_x, heights, widths):
    """Both axes' geometry of a chunk's lattice: for rows and columns, (low, high, w_low,
    w_high, inside), each (m, points)."""
    dev = box.device
    out = []
    for start, size, cells, r, col in ((box[idx, 1], box[idx, 3], heights[idx], r_y, ALIGN_RATIOS + 2 * gi),
                                       (box[idx, 0], box[idx, 2], widths[idx], r_x, ALIGN_RATIOS + 2 * gi + 1)):
        t = torch.arange(grid * r, device=dev)
        coord = lattice_coords(start[:, None], size[:, None], grid, meta[idx, col][:, None], t[None])
        out.append(bilinear_axis(coord, cells[:, None]))
    return out


def _sample_lattice(buf, base, widths_m, rows, cols, calc):
    """(m, P_y, P_x, C) samples of a chunk's lattice; ``base`` (m,) is each RoI's first row
    of ``buf`` (channels-last, last row zero)."""
    yl, yh, hy, ly, iny = rows
    xl, xh, hx, lx, inx = cols
    inside = iny[:, :, None] & inx[:, None, :]
    zero_row = buf.shape[0] - 1
    val = None
    for y, x, wy, wx in ((yl, xl, hy, hx), (yl, xh, hy, lx), (yh, xl, ly, hx), (yh, xh, ly, lx)):
        cell = base[:, None, None] + y[:, :, None] * widths_m[:, None, None] + x[:, None, :]
        v = buf[torch.where(inside, cell, zero_row)]
        term = (wy[:, :, None] * wx[:, None, :]).to(calc)[..., None] * v
        val = term if val is None else val + term
    return torch.where(inside[..., None], val, 0.0)


def _by_bin(x, m, grid, r_y, r_x, c):
    """(m, P_y, P_x, C) lattice values -> (m, grid * grid, r_y * r_x, C): each bin's
    samples in row-major order."""
    return x.view(m, grid, r_y, grid, r_x, c).permute(0, 1, 3, 2, 4, 5).reshape(m, grid * grid, r_y * r_x, c)


def _union(x, k, g, n, c):
    """(k, g * g, C) fine bins -> (k, n * n, (g / n)^2, C): each n-bin's fine bins, row-major."""
    f = g // n
    return x.view(k, n, f, n, f, c).permute(0, 1, 3, 2, 4, 5).reshape(k, n * n, f * f, c)


def forward(feats, rois, roi_levels, spec: PoolSpec):
    """The backend contract's forward for ``spec.bilinear``; any device, any strides."""
    n_img, c = feats[0].shape[:2]
    k = rois.shape[0]
    dev = feats[0].device
    dtype = feats[0].dtype
    is_max = spec.mode == Mode.MAX
    calc = acc_dtype(dtype)
    if k == 0:
        empty = feats[0].new_empty(0, c, spec.num_bins)
        return empty, (empty.to(torch.int32) if is_max else None)
    meta, box = align_table(rois, roi_levels, spec, n_img, len(feats))
    buf, offsets, t = pack(feats, calc)
    levels = meta[:, ALIGN_LEVEL]
    heights, widths = _level_sizes([tuple(f.shape[2:]) for f in feats], levels, dev)
    base = meta[:, ALIGN_BATCH] * t + offsets[levels]
    per_grid = {}
    for gi, grid in enumerate(spec.sampled_grids):
        ry_all, rx_all = meta[:, ALIGN_RATIOS + 2 * gi], meta[:, ALIGN_RATIOS + 2 * gi + 1]
        vals = buf.new_empty(k, grid * grid, c)
        index = torch.empty(k, grid * grid, c, dtype=torch.int64, device=dev)
        for idx, r_y, r_x in _ratio_chunks(ry_all, rx_all, lambda a, b: grid * grid * a * b * c * 2):
            m = idx.numel()
            rows, cols = _axes(box, meta, idx, grid, gi, r_y, r_x, heights, widths)
            samples = _by_bin(_sample_lattice(buf, base[idx], widths[idx], rows, cols, calc), m, grid, r_y, r_x, c)
            if not is_max:
                vals[idx] = samples.sum(dim=2)
                continue
            best, arg = samples.max(dim=2)  # (m, grid^2, C): the first maximum, or the first NaN
            b = torch.arange(grid * grid, device=dev)[None, :, None]
            ty = (b // grid) * r_y + arg // r_x
            tx = (b % grid) * r_x + arg % r_x
            vals[idx] = best
            index[idx] = ty * (grid * r_x) + tx
        per_grid[grid] = (vals, index, ry_all * rx_all)
    parts, cells = [], []
    g = spec.fine_grid
    for n in spec.pyramid:
        vals, index, count = per_grid[g if g else n]
        if g and n != g:  # an exact union of fine bins
            vals, index = _union(vals, k, g, n, c), _union(index, k, g, n, c)
            if is_max:
                top = vals.amax(dim=2, keepdim=True)
                hit = (vals == top) | (vals != vals)  # the maxima, or the NaNs (amax propagates NaN)
                pos = torch.where(hit, index, torch.iinfo(torch.int64).max).argmin(dim=2, keepdim=True)
                vals, index = vals.gather(2, pos)[:, :, 0], index.gather(2, pos)[:, :, 0]
            else:
                vals = vals.sum(dim=2)
            count = count * (g // n) ** 2
        parts.append(vals if is_max else vals / count[:, None, None].to(calc))
        cells.append(index)
    out = torch.cat(parts, dim=1).to(dtype).transpose(1, 2).contiguous()
    if not is_max:
        return out, None
    return out, torch.cat(cells, dim=1).to(torch.int32).transpose(1, 2).contiguous()


def backward(grad_out, argmax, shapes, n_img, c, dtype, rois, roi_levels, spec: PoolSpec):
    """(L flat NCHW gradient tensors in ``dtype``): the gradient of ``forward``.

    Max: each bin's gradient times its chosen sample's four corner weights, added at the
    corners. Avg: each bin's gradient / its samples, summed per lattice point over the
    grids whose bins hold it, times the point's corner weights.
    """
    dev = grad_out.device
    acc = acc_dtype(dtype)
    meta, box = align_table(rois, roi_levels, spec, n_img, len(shapes))
    levels = meta[:, ALIGN_LEVEL]
    heights, widths = _level_sizes(shapes, levels, dev)
    hw = torch.tensor([h * w for h, w in shapes], dtype=torch.int64, device=dev)
    sizes = [h * w * n_img * c for h, w in shapes]
    level_start = torch.cumsum(hw * (n_img * c), 0) - hw * (n_img * c)
    grad_buf = torch.zeros(sum(sizes), dtype=acc, device=dev)
    chan = torch.arange(c, device=dev)
    plane = level_start[levels][:, None] + (meta[:, ALIGN_BATCH][:, None] * c + chan) * hw[levels][:, None]  # (K, C)
    g = grad_out.to(acc)
    grids = spec.sampled_grids
    g_fine = spec.fine_grid

    def scatter(dest_plane, rows, cols, widths_b, weight_of):
        """Adds weight_of(wy, wx) at the four corners (rows x cols broadcast) of the
        points inside the map."""
        yl, yh, hy, ly, iny = rows
        xl, xh, hx, lx, inx = cols
        inside = iny & inx
        for y, x, wy, wx in ((yl, xl, hy, hx), (yl, xh, hy, lx), (yh, xl, ly, hx), (yh, xh, ly, lx)):
            dest = dest_plane + y * widths_b + x
            grad_buf.index_add_(0, torch.where(inside, dest, 0).reshape(-1),
                                torch.where(inside, weight_of(wy, wx), 0.0).reshape(-1))

    if spec.mode == Mode.MAX:
        # Each bin's sampled grid, and its RoI's samples per bin there: (K, 1, B).
        grid_of = torch.tensor([g_fine or n for n in spec.pyramid for _ in range(n * n)], device=dev)
        slot = torch.tensor([grids.index(g_fine or n) for n in spec.pyramid for _ in range(n * n)], device=dev)
        r_y = meta[:, ALIGN_RATIOS + 2 * slot][:, None]
        r_x = meta[:, ALIGN_RATIOS + 2 * slot + 1][:, None]
        idx = argmax.to(torch.int64)
        points_x = grid_of * r_x
        ty, tx = torch.div(idx, points_x, rounding_mode="floor"), idx % points_x
        rows = bilinear_axis(lattice_coords(box[:, 1, None, None], box[:, 3, None, None], grid_of, r_y, ty),
                             heights[:, None, None])
        cols = bilinear_axis(lattice_coords(box[:, 0, None, None], box[:, 2, None, None], grid_of, r_x, tx),
                             widths[:, None, None])
        scatter(plane[:, :, None], rows, cols, widths[:, None, None], lambda wy, wx: g * (wy * wx).to(acc))
    else:
        firsts = [sum(n * n for n in spec.pyramid[:i]) for i in range(len(spec.pyramid))]
        for gi, grid in enumerate(grids):
            ry_all, rx_all = meta[:, ALIGN_RATIOS + 2 * gi], meta[:, ALIGN_RATIOS + 2 * gi + 1]
            # The pyramid entries whose bins hold this lattice's points: (n, first bin).
            users = list(zip(spec.pyramid, firsts)) if g_fine else [(grid, firsts[gi])]
            for idx, r_y, r_x in _ratio_chunks(ry_all, rx_all, lambda a, b: grid * grid * a * b * c * 3):
                m = idx.numel()
                p_y, p_x = grid * r_y, grid * r_x
                factor = torch.zeros(m, c, p_y, p_x, dtype=acc, device=dev)
                for n, o in users:
                    share = g[idx, :, o:o + n * n].view(m, c, n, n) / ((grid // n) ** 2 * r_y * r_x)
                    factor += share.repeat_interleave(p_y // n, dim=2).repeat_interleave(p_x // n, dim=3)
                rows, cols = _axes(box, meta, idx, grid, gi, r_y, r_x, heights, widths)
                rows = tuple(a[:, None, :, None] for a in rows)  # (m, 1, P_y, 1)
                cols = tuple(a[:, None, None, :] for a in cols)
                scatter(plane[idx][:, :, None, None], rows, cols, widths[idx][:, None, None, None],
                        lambda wy, wx: factor * (wy * wx).to(acc))
    parts = torch.split(grad_buf, sizes)
    return [p.view(n_img, c, h, w).to(dtype, copy=True) for p, (h, w) in zip(parts, shapes)]
