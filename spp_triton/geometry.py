"""The rules of spatial-pyramid RoI pooling, defined once in Python.

* ``Mode``, ``Projection`` and ``Sampling``: the options, each one integer end to end
  (the C++ ops take ``int mode``, the Triton kernels ``MODE``/``PROJ`` constexprs of the
  same value).
* ``PoolSpec``: everything about a call that is not a tensor; every backend takes it.
* ``sampling="cells"`` (the paper): ``roi_windows`` (projection, collapse, clamp) and
  ``bin_bounds`` (the paper's bin rule). The C++ kernel applies ``bin_bounds``'s rule in
  its one ``bin_bounds`` function; the Triton kernels in their ``_grid_bounds`` and
  ``_window`` helpers, with the same float32 operations in the same order, so every
  backend agrees bit for bit in max mode.
* ``sampling="bilinear"`` (SPP-Align): ``align_windows`` (the continuous window),
  ``lattice_ratio`` (samples per bin and axis), ``lattice_coords`` (where the lattice's
  points lie) and ``bilinear_axis`` (mmcv's bilinear rule along one axis). The C++ kernel
  takes the windows and ratios from ``align_table`` and applies the last two rules in its
  ``lattice_axis``; the Triton kernels in ``_align_window``, ``_lattice_ratio`` and
  ``_sample_axis``: the same float32 operations in the same order again.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

# |coordinate| bound: beyond 2**24 float32 cannot hold integer pixels, and the
# bound keeps every projected index inside int32 for scales up to 32.
MAX_ABS_COORD = float(2**24)
MAX_SCALE = 32.0


class _Named(enum.IntEnum):
    """An option whose public name is its lower-case member name."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(m.label for m in cls)

    @classmethod
    def parse(cls, arg: str, value) -> "_Named":
        """The member named ``value``; ValueError naming the argument ``arg`` otherwise."""
        if isinstance(value, cls):
            return value
        for m in cls:
            if value == m.label:
                return m
        raise ValueError(f"{arg} must be one of {cls.names()}, got {value!r}")


class Mode(_Named):
    """Pooling mode. Its value is what the C++ op and the Triton kernels receive."""

    MAX = 0  # maximum of the bin; gradient to its first maximal element
    AVG = 1  # float32 mean of the bin; gradient spread evenly


class Projection(_Named):
    """How a RoI's corners become feature indices (see ``roi_windows``); cells only."""

    SPPNET = 0  # the paper's Appendix A: floor((x1 + 1) s), ceil((x2 + 1) s) - 2
    ROUND = 1  # Fast R-CNN's RoIPool: floor(x s + 0.5)


class Sampling(_Named):
    """What a bin pools: whole feature cells, or bilinear samples on a lattice."""

    CELLS = 0  # the paper: the integer window's cells (``roi_windows``, ``bin_bounds``)
    BILINEAR = 1  # SPP-Align: RoIAlign's continuous window and bilinear samples


# Lattice points per axis at most (bilinear): argmax holds a point's index, an int32.
MAX_LATTICE = 32768


@dataclass(frozen=True)
class PoolSpec:
    """The non-tensor arguments of one pooling call, already checked.

    Attributes:
        pyramid: grid sizes n in output order, e.g. (1, 2, 3, 6).
        mode, projection, sampling: see ``Mode``, ``Projection`` (cells only) and
            ``Sampling``.
        scales: spatial scale (1 / stride) of each feature level, used as float32.
        sampling_ratio: bilinear only: samples per bin and axis of each sampled grid
            (``lattice_ratio``; 0: adaptive).
        aligned: bilinear only: the half-pixel shift of mmcv's ``aligned=True``.
    """

    pyramid: tuple[int, ...]
    mode: Mode
    projection: Projection
    scales: tuple[float, ...]
    sampling: Sampling = Sampling.CELLS
    sampling_ratio: int = 2
    aligned: bool = True

    @staticmethod
    def make(pyramid, mode, projection, scales, sampling="cells", sampling_ratio=2, aligned=True) -> "PoolSpec":
        return PoolSpec(tuple(int(n) for n in pyramid), Mode.parse("mode", mode),
                        Projection.parse("projection", projection), tuple(float(s) for s in scales),
                        Sampling.parse("sampling", sampling), int(sampling_ratio), bool(aligned))

    @property
    def num_bins(self) -> int:
        """B = sum(n * n): output bins per channel."""
        return sum(n * n for n in self.pyramid)

    @property
    def bilinear(self) -> bool:
        return self.sampling == Sampling.BILINEAR

    @property
    def nested(self) -> bool:
        """Whether every pyramid entry divides G = max(pyramid) (1, 2, 3, 6 do)."""
        g = max(self.pyramid)
        return all(g % n == 0 for n in self.pyramid)

    @property
    def fine_grid(self) -> int:
        """G = max(pyramid) when the kernels reduce the G x G fine bins once and derive
        every other grid's bins as exact unions of them; 0 when every grid is pooled
        directly. Cells: nested pyramids in max mode (the paper's nesting). Bilinear:
        nested pyramids in both modes (one lattice; every fine bin holds the same number
        of samples, so sums of fine bins are the coarse bins' sums)."""
        use = self.nested and (self.bilinear or self.mode == Mode.MAX)
        return max(self.pyramid) if use else 0

    @property
    def sampled_grids(self) -> tuple[int, ...]:
        """Bilinear: the grids S whose lattices are sampled, (G,) for a nested pyramid
        (every grid's points lie on G's lattice) or the pyramid itself."""
        return (self.fine_grid,) if self.fine_grid else self.pyramid


def _project(lo_coord: torch.Tensor, hi_coord: torch.Tensor, scale: torch.Tensor, projection: Projection):
    """Float32 corner projection; the Triton kernels do the same operations in order."""
    if projection == Projection.SPPNET:
        lo = torch.floor((lo_coord + 1.0) * scale)
        hi = torch.ceil((hi_coord + 1.0) * scale) - 2.0
    else:
        lo = torch.floor(lo_coord * scale + 0.5)
        hi = torch.floor(hi_coord * scale + 0.5)
    return lo.to(torch.int64), hi.to(torch.int64)


def _collapse_and_clamp(lo: torch.Tensor, hi: torch.Tensor, size: torch.Tensor):
    mid = (lo + hi) >> 1  # floor((lo + hi) / 2), also for negatives
    inverted = lo > hi
    lo = torch.where(inverted, mid, lo)
    hi = torch.where(inverted, mid, hi)
    upper = size - 1
    return lo.clamp(min=0).minimum(upper), hi.clamp(min=0).minimum(upper)


def roi_windows(rois: torch.Tensor, roi_levels: torch.Tensor, scales: torch.Tensor,
                heights: torch.Tensor, widths: torch.Tensor, projection: Projection):
    """Inclusive feature windows of every RoI on its level.

    With s the level's float32 scale: "sppnet" gives ``lo = floor((x1 + 1) s)``,
    ``hi = ceil((x2 + 1) s) - 2``; "round" gives ``floor(x s + 0.5)`` for both corners;
    rows alike. If lo > hi both become floor((lo + hi) / 2); then both are clamped to
    [0, size - 1].

    Args:
        rois: (K, 5) float32 (batch_index, x1, y1, x2, y2) in input pixels.
        roi_levels: (K,) int64 level of each RoI.
        scales, heights, widths: (L,) float32 / int64 per level.
    Returns:
        (x_lo, x_hi, y_lo, y_hi): four (K,) int64 tensors, 0 <= lo <= hi < size.
    """
    s = scales[roi_levels]
    x_lo, x_hi = _project(rois[:, 1], rois[:, 3], s, projection)
    y_lo, y_hi = _project(rois[:, 2], rois[:, 4], s, projection)
    x_lo, x_hi = _collapse_and_clamp(x_lo, x_hi, widths[roi_levels])
    y_lo, y_hi = _collapse_and_clamp(y_lo, y_hi, heights[roi_levels])
    return x_lo, x_hi, y_lo, y_hi


# Columns of ``window_table``.
WIN_BATCH, WIN_LEVEL, WIN_X_LO, WIN_X_HI, WIN_Y_LO, WIN_Y_HI = range(6)


def window_table(shapes: list[tuple[int, int]], rois: torch.Tensor, roi_levels: torch.Tensor,
                 spec: PoolSpec, num_images: int) -> torch.Tensor:
    """(K, 6) int64 contiguous table of (batch, level, x_lo, x_hi, y_lo, y_hi) per RoI.

    ``shapes`` are the levels' (H, W). Batch and level are clamped into range (memory
    safety for unchecked input; checked input is already in range).
    """
    dev = rois.device
    rois32 = rois.to(torch.float32)
    levels = roi_levels.to(device=dev, dtype=torch.int64).clamp(0, len(shapes) - 1)
    scales_t = torch.tensor(spec.scales, dtype=torch.float32, device=dev)
    heights = torch.tensor([h for h, _ in shapes], dtype=torch.int64, device=dev)
    widths = torch.tensor([w for _, w in shapes], dtype=torch.int64, device=dev)
    x_lo, x_hi, y_lo, y_hi = roi_windows(rois32, levels, scales_t, heights, widths, spec.projection)
    batch = rois32[:, 0].to(torch.int64).clamp(0, num_images - 1)
    return torch.stack([batch, levels, x_lo, x_hi, y_lo, y_hi], 1).contiguous()


def bin_bounds(lo: torch.Tensor, hi: torch.Tensor, n: int):
    """Inclusive [start, end] of the n bins over windows [lo, hi] (paper, Appendix A).

    Bin i over h = hi - lo + 1 cells covers ``lo + floor(i h / n)`` to
    ``lo + ceil((i + 1) h / n) - 1``: never empty; neighbours share at most one cell
    when h >= n.

    Args:
        lo, hi: (K,) int64. Returns two (K, n) int64 tensors.
    """
    size = (hi - lo + 1)[:, None]
    i = torch.arange(n, device=lo.device)
    start = lo[:, None] + (i * size) // n
    end = lo[:, None] + ((i + 1) * size + n - 1) // n - 1
    return start, end


# ---------------------------------------------------------------- sampling="bilinear"
def align_windows(rois: torch.Tensor, roi_levels: torch.Tensor, scales: torch.Tensor, aligned: bool):
    """Continuous windows (mmcv ``RoIAlign``'s): with s the level's float32 scale and
    o = 0.5 if ``aligned`` else 0, ``start = x1 * s - o``, ``size = (x2 * s - o) - start``
    (float32, each operation rounded); without ``aligned`` the size is at least 1. Rows
    alike. An inverted RoI keeps its negative size when aligned (mmcv's CUDA kernel and
    torchvision do; its lattice then runs backwards).

    Args:
        rois: (K, 5) float32; roi_levels: (K,) int64; scales: (L,) float32.
    Returns:
        (start_x, start_y, size_w, size_h): four (K,) float32 tensors.
    """
    s = scales[roi_levels]
    off = 0.5 if aligned else 0.0
    out = []
    for lo, hi in ((rois[:, 1], rois[:, 3]), (rois[:, 2], rois[:, 4])):
        start = lo * s - off
        size = (hi * s - off) - start
        out += [start, size if aligned else size.clamp(min=1.0)]
    return out[0], out[2], out[1], out[3]


def lattice_ratio(size: torch.Tensor, grid: int, sampling_ratio: int) -> torch.Tensor:
    """(K,) int64 samples per bin along one axis for grid ``grid``: ``sampling_ratio`` when
    it is > 0, else adaptive: ``ceil(size / grid)`` (float32) clamped to
    [1, MAX_LATTICE // grid] (mmcv's ``sampling_ratio=0`` per grid, but never 0)."""
    if sampling_ratio > 0:
        return torch.full(size.shape, sampling_ratio, dtype=torch.int64, device=size.device)
    r = torch.ceil(size / float(grid)).clamp(min=1.0, max=float(MAX_LATTICE // grid))
    return r.to(torch.int64)


def lattice_coords(start: torch.Tensor, size: torch.Tensor, grid, ratio: torch.Tensor,
                   t: torch.Tensor) -> torch.Tensor:
    """Float32 coordinates of lattice points ``t`` (int64; ``start``, ``size``, ``ratio``
    and ``grid``, an int or an int64 tensor, broadcast against it): point t lies in bin p = t // r, at sample
    i = t % r of it: ``(start + p * bin) + ((i + 0.5) * bin) / r`` with ``bin = size /
    grid``, the operations of mmcv's ``roi_align`` in its order (so grid ``grid`` of the
    lattice is mmcv ``RoIAlign(grid, sampling_ratio=r)``'s sampling, bit for bit)."""
    bin_size = size / (grid.to(torch.float32) if isinstance(grid, torch.Tensor) else float(grid))
    p = torch.div(t, ratio, rounding_mode="floor").to(torch.float32)
    i = (t % ratio).to(torch.float32)
    return (start + p * bin_size) + ((i + 0.5) * bin_size) / ratio.to(torch.float32)


def bilinear_axis(coord: torch.Tensor, size: int | torch.Tensor):
    """mmcv's bilinear rule along one axis of ``size`` cells, for float32 ``coord``.

    A point with ``coord < -1`` or ``coord > size`` is outside (its sample is 0). Else
    ``c = 0 if coord <= 0 else coord``, ``low = int(c)``; if ``low >= size - 1``: low =
    high = size - 1 and c = low; else high = low + 1. Weights: ``w_high = c - low``,
    ``w_low = 1 - w_high`` (float32). A sample's value is then, for row weights (hy, ly)
    and column weights (hx, lx) and corners v(low/high row, low/high column),
    ``((hy hx v_ll + hy lx v_lh) + ly hx v_hl) + ly lx v_hh``, left to right.

    Returns:
        (low, high, w_low, w_high, inside): int64, int64, float32, float32, bool; shaped
        like ``coord``.
    """
    inside = (coord >= -1.0) & (coord <= size)
    c = torch.where(coord <= 0.0, 0.0, coord)
    low = c.to(torch.int64)
    edge = low >= size - 1
    low = torch.where(edge, size - 1, low)
    high = torch.where(edge, low, low + 1)
    c = torch.where(edge, low.to(torch.float32), c)
    w_high = c - low.to(torch.float32)
    return low, high, 1.0 - w_high, w_high, inside


# Columns of ``align_table``'s integer part: batch, level, then (r_y, r_x) per sampled grid.
ALIGN_BATCH, ALIGN_LEVEL, ALIGN_RATIOS = 0, 1, 2


def align_table(rois: torch.Tensor, roi_levels: torch.Tensor, spec: PoolSpec, num_images: int, num_levels: int):
    """Per RoI, what the bilinear kernels need: (meta (K, 2 + 2 S) int64 contiguous:
    batch, level, then r_y, r_x of each of the S ``spec.sampled_grids``; box (K, 4)
    float32 contiguous: start_x, start_y, size_w, size_h of ``align_windows``). Batch and
    level are clamped into range (memory safety for unchecked input)."""
    dev = rois.device
    rois32 = rois.to(torch.float32)
    levels = roi_levels.to(device=dev, dtype=torch.int64).clamp(0, num_levels - 1)
    scales = torch.tensor(spec.scales, dtype=torch.float32, device=dev)
    start_x, start_y, size_w, size_h = align_windows(rois32, levels, scales, spec.aligned)
    cols = [rois32[:, 0].to(torch.int64).clamp(0, num_images - 1), levels]
    for g in spec.sampled_grids:
        cols += [lattice_ratio(size_h, g, spec.sampling_ratio), lattice_ratio(size_w, g, spec.sampling_ratio)]
    meta = torch.stack(cols, 1).contiguous()
    box = torch.stack([start_x, start_y, size_w, size_h], 1).contiguous()
    return meta, box
