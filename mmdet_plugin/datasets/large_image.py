"""Read windows of images of any size: photographs, orthophotos, GeoTIFFs.

``open_large_image(path)`` returns a ``LargeImage``: its ``width`` and ``height``, ``read(x0,
y0, w, h)`` for one window as an (h, w, 3) uint8 array in BGR order (what mmcv's
``LoadImageFromFile`` gives a pipeline), ``thumbnail(max_side)`` for drawing, and, for a
georeferenced raster, its ``crs`` and affine ``transform`` (pixel corner (col, row) ->
map coordinates).

Two readers:

* TIFFs go through rasterio (GDAL), which reads each window from disk: memory stays
  bounded by the window, whatever the raster's size, and a GeoTIFF's CRS and transform
  come along. Bands 1-3 are read as RGB (one band: grey); only 8-bit rasters are taken.
* Every other format (PNG, JPEG, ...) is decoded whole by Pillow, once, and windows are
  cropped from Pillow's buffer (3 bytes a pixel: 300 MB for 10,000 x 10,000): PNG and
  JPEG have no random access.
  Pillow's decompression-bomb limit is lifted (large images are the point here), and
  truncated files are refused instead of being padded with grey.

Any failure to read raises ``ImageReadError`` naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")


class ImageReadError(ValueError):
    """An image that cannot be read, named with the reason."""


class LargeImage:
    """An image read window by window (see the module docstring)."""

    path: Path
    width: int
    height: int
    crs = None  # rasterio CRS, for a georeferenced raster
    transform = None  # affine.Affine, pixel corner (col, row) -> map (x, y)

    def read(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """The window [x0, x0 + w) x [y0, y0 + h) as an (h, w, 3) uint8 BGR array."""
        raise NotImplementedError

    def thumbnail(self, max_side: int) -> tuple[np.ndarray, float]:
        """The whole image as (H', W', 3) uint8 RGB with its longer side at most
        ``max_side``, and the factor (<= 1) that maps image pixels onto it."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_window(self, x0: int, y0: int, w: int, h: int) -> None:
        if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > self.width or y0 + h > self.height:
            raise ValueError(f"window x0={x0}, y0={y0}, w={w}, h={h} is not inside {self.path} "
                             f"({self.width} x {self.height})")

    def _check_size(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ImageReadError(f"{self.path}: the image is empty ({self.width} x {self.height} px)")


def _scale_for(width: int, height: int, max_side: int) -> float:
    return min(1.0, max_side / max(width, height))


class PillowImage(LargeImage):
    """Decoded whole by Pillow, once; windows are cropped from Pillow's own buffer (no
    second full-size copy: 3 bytes a pixel in all)."""

    def __init__(self, path: Path):
        from PIL import Image, UnidentifiedImageError

        Image.MAX_IMAGE_PIXELS = None  # aerial mosaics exceed Pillow's decompression-bomb limit
        self.path = path
        try:
            im = Image.open(path)
            im.load()  # decodes now: a truncated file fails here, not mid-inference
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            raise ImageReadError(f"{path}: cannot read the image ({e})") from None
        if im.mode != "RGB":  # one buffer, not the original beside its RGB copy
            rgb = im.convert("RGB")
            im.close()
            im = rgb
        self._im = im
        self.width, self.height = self._im.size
        self._check_size()

    def read(self, x0, y0, w, h):
        self._check_window(x0, y0, w, h)
        return np.ascontiguousarray(np.asarray(self._im.crop((x0, y0, x0 + w, y0 + h)))[..., ::-1])

    def thumbnail(self, max_side):
        from PIL import Image

        scale = _scale_for(self.width, self.height, max_side)
        if scale == 1.0:
            return np.asarray(self._im), 1.0
        size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        return np.asarray(self._im.resize(size, Image.BILINEAR, reducing_gap=2.0)), scale

    def close(self):
        self._im.close()


class RasterioImage(LargeImage):
    """Read window by window from disk by rasterio; carries a GeoTIFF's CRS and transform."""

    def __init__(self, path: Path):
        try:
            import rasterio
        except ImportError:
            raise ImageReadError(f"{path}: TIFFs are read with rasterio, which is not installed "
                                 "(pip install rasterio, or make setup)") from None
        self.path = path
        try:
            self._src = rasterio.open(path)
        except rasterio.errors.RasterioIOError as e:
            raise ImageReadError(f"{path}: cannot read the image ({e})") from None
        src = self._src
        self.width, self.height = src.width, src.height
        if src.count not in (1, 3, 4) or any(dt != "uint8" for dt in src.dtypes[:3]):
            self.close()
            raise ImageReadError(f"{path}: {src.count} band(s) of {src.dtypes[0]}; only 8-bit grey, RGB or "
                                 "RGBA rasters are read (convert it first, e.g. gdal_translate -ot Byte -scale)")
        self._bands = [1, 1, 1] if src.count == 1 else [1, 2, 3]
        if src.crs is not None:
            self.crs, self.transform = src.crs, src.transform
        self._check_size()

    def _read(self, **kwargs) -> np.ndarray:
        import rasterio

        try:
            return self._src.read(self._bands, **kwargs)
        except rasterio.errors.RasterioIOError as e:
            raise ImageReadError(f"{self.path}: cannot read the image ({e})") from None

    def read(self, x0, y0, w, h):
        from rasterio.windows import Window

        self._check_window(x0, y0, w, h)
        bands = self._read(window=Window(x0, y0, w, h))  # (3, h, w) RGB
        return np.ascontiguousarray(bands[::-1].transpose(1, 2, 0))

    def thumbnail(self, max_side):
        from rasterio.enums import Resampling

        scale = _scale_for(self.width, self.height, max_side)
        shape = (3, max(1, round(self.height * scale)), max(1, round(self.width * scale)))
        bands = self._read(out_shape=shape, resampling=Resampling.bilinear)  # decimated read: bounded memory
        return np.ascontiguousarray(bands.transpose(1, 2, 0)), scale

    def close(self):
        self._src.close()


def open_large_image(path: Path | str) -> LargeImage:
    """A ``LargeImage`` for ``path``: rasterio for TIFFs, Pillow for the rest.
    Raises ``ImageReadError`` naming the file if it is missing, unreadable, truncated or empty."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty (0 bytes)")
    return RasterioImage(path) if path.suffix.lower() in TIFF_SUFFIXES else PillowImage(path)
