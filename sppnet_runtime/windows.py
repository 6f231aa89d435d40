"""The windows of sliced inference, shared by ``tools/infer.py`` (mmdet) and the ONNX
runtime: where the windows of a large image lie (``window_grid``, ``tile_voc``'s grid) and
the settings that choose them (``SliceSettings``, ``choose_slicing``). Plain Python."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .merge_detections import MERGE_RULES


@dataclass(frozen=True)
class SliceSettings:
    """Window size and stride, and how boxes are merged across seams."""

    tile: int
    overlap: int = 0
    merge: str = "nms"
    merge_thr: float = 0.5

    def __post_init__(self):
        if not isinstance(self.tile, int) or self.tile <= 0:
            raise ValueError(f"tile must be a positive number of pixels, got {self.tile!r}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile) = [0, {self.tile}), got {self.overlap!r}")
        if self.merge not in MERGE_RULES:
            raise ValueError(f"merge must be one of {MERGE_RULES}, got {self.merge!r}")
        if not 0.0 <= self.merge_thr <= 1.0:
            raise ValueError(f"merge_thr must be in [0, 1], got {self.merge_thr!r}")

    @classmethod
    def from_config(cls, cfg) -> "SliceSettings | None":
        """A config's ``sliced_infer_cfg`` (any mapping with ``get``), or None if it has none."""
        got = cfg.get("sliced_infer_cfg")
        if got is None:
            return None
        try:
            return cls(**dict(got))
        except (TypeError, ValueError) as e:
            raise ValueError(f"sliced_infer_cfg: {e}") from None

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for the tools' logs: "600 px windows, overlap 50 px, merged by nms > 0.5"."""
        return f"{self.tile} px windows, overlap {self.overlap} px, merged by {self.merge} > {self.merge_thr}"

    def fits_one_window(self, width: int, height: int) -> bool:
        """Whether an image of this size runs whole (no larger than a window)."""
        return width <= self.tile and height <= self.tile

    def record(self, windows: int) -> dict:
        """The prediction JSON's ``sliced`` member: how an image was cut."""
        return dict(self.as_dict(), windows=windows)


def check_tile_fits(tile: int | None, width: int, height: int) -> None:
    """An explicit ``--tile`` larger than the image on both sides is a mistake the tools
    report for that image (a ValueError naming the sizes); None (the model's windows) passes."""
    if tile is not None and width < tile and height < tile:
        raise ValueError(f"--tile {tile} is larger than the image ({width} x {height} px): give a smaller --tile, "
                         "or leave it out to run the image whole")


def choose_slicing(default: SliceSettings | None, tile: int | None = None, overlap: int | None = None,
                   merge: str | None = None, merge_thr: float | None = None,
                   no_slicing: bool = False) -> SliceSettings | None:
    """The command line's ``--tile``, ``--overlap``, ``--merge``, ``--merge-thr`` over the
    model's ``default``; None (every image whole) with ``--no-slicing``, or when neither gives
    a tile. ValueError naming the option: a bad value, or an option that needs ``--tile``."""
    if no_slicing:
        return None
    if default is None and tile is None:
        given = [f for f, v in (("--overlap", overlap), ("--merge", merge), ("--merge-thr", merge_thr)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} need --tile: the model has no default windows (sliced_infer_cfg)")
        return None
    chosen = {k: v for k, v in dict(tile=tile, overlap=overlap, merge=merge, merge_thr=merge_thr).items() if v is not None}
    try:
        return SliceSettings(**{**(default.as_dict() if default else {}), **chosen})
    except ValueError as e:
        raise ValueError(f"--{str(e).replace('_', '-')}") from None


def tile_origins(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets along one axis: every ``size - overlap`` pixels, the last one moved
    back to end at the edge."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"need size > 0 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    if length <= size:
        return [0]
    step = size - overlap
    starts = list(range(0, length - size + 1, step))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def window_grid(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, w, h) of every window, row by row: ``tile_voc``'s grid (full-sized windows,
    the last ones ending at the edge; one window as wide or tall as the image where it is
    smaller than ``tile``)."""
    w, h = min(tile, width), min(tile, height)
    return [(x0, y0, w, h) for y0 in tile_origins(height, tile, overlap) for x0 in tile_origins(width, tile, overlap)]
