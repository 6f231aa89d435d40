"""The rules of spatial-pyramid RoI pooling, defined once in Python.

* ``Mode`` and ``Projection``: the options, each one integer end to end (the C++ op
  takes ``int mode``, the Triton kernels ``MODE``/``PROJ`` constexprs of the same value).
* ``PoolSpec``: everything about a call that is not a tensor; every backend takes it.
* ``roi_windows`` (projection, collapse, clamp) and ``bin_bounds`` (the paper's bin rule):
  the Python definitions of the geometry. The C++ kernel applies ``bin_bounds``'s rule in
  its one ``bin_bounds`` function; the Triton kernels in their one ``_bin_range`` and
  ``_window`` helpers, with the same float32 operations in the same order, so every
  backend agrees bit for bit in max mode.
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
    """How a RoI's corners become feature indices (see ``roi_windows``)."""

    SPPNET = 0  # the paper's Appendix A: floor((x1 + 1) s), ceil((x2 + 1) s) - 2
    ROUND = 1  # Fast R-CNN's RoIPool: floor(x s + 0.5)


@dataclass(frozen=True)
class PoolSpec:
    """The non-tensor arguments of one pooling call, already checked.

    Attributes:
        pyramid: grid sizes n in output order, e.g. (1, 2, 3, 6).
        mode, projection: see ``Mode`` and ``Projection``.
        scales: spatial scale (1 / stride) of each feature level, used as float32.
    """

    pyramid: tuple[int, ...]
    mode: Mode
    projection: Projection
    scales: tuple[float, ...]

    @staticmethod
    def make(pyramid, mode, projection, scales) -> "PoolSpec":
        return PoolSpec(tuple(int(n) for n in pyramid), Mode.parse("mode", mode),
                        Projection.parse("projection", projection), tuple(float(s) for s in scales))

    @property
    def num_bins(self) -> int:
        """B = sum(n * n): output bins per channel."""
        return sum(n * n for n in self.pyramid)

    @property
    def fine_grid(self) -> int:
        """G = max(pyramid) when every entry divides it and the mode is max: every bin of
        every level is then an exact union of the G x G fine bins (the paper's nesting),
        so kernels reduce the fine bins once. 0 when levels are pooled directly."""
        g = max(self.pyramid)
        nested = self.mode == Mode.MAX and all(g % n == 0 for n in self.pyramid)
        return g if nested else 0


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
