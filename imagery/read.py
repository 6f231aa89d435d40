"""Images of any size, read window by window with the pixels mmdet gives a model.

``open_image(path)`` returns an ``Image``: ``width``, ``height``, ``read(x0, y0, w, h)``
(one window as (h, w, 3) uint8 **RGB**), ``has_data(x0, y0, w, h)`` (False where a
GeoTIFF's window is all nodata or transparent), ``thumbnail(max_side)`` for drawing, and for
a georeferenced raster its ``crs`` and affine ``transform`` (pixel corner (col, row) -> map
x, y). ``notes`` holds what a user should be told about the file once (16-bit data scaled,
a transform without a CRS). ``load_image(path)`` is the whole image as one array.

The pixels are those of mmcv's ``LoadImageFromFile`` (OpenCV's ``imread`` with
``IMREAD_COLOR``, what ``mim test`` and mmdet's ``inference_detector`` feed a model),
checked against OpenCV in tests/test_imagery.py:

* EXIF orientation applied (JPEG, PNG, WebP: OpenCV applies it to each);
* greyscale, bilevel and palette images expanded to three channels; alpha dropped, not
  composited;
* 16-bit samples scaled to 8 bits as OpenCV does (``value >> 8``; a file whose data uses
  12 of its 16 bits comes out dark, as mmdet sees it: say so in ``notes``);
* CMYK JPEGs converted with OpenCV's formula on libjpeg's samples;
* float and 32-bit integer images refused, with how to convert them.

Two readers:

* TIFFs go through rasterio (GDAL) where it is installed: each window is read from disk,
  so memory stays bounded by the window whatever the raster's size. Bands are picked by
  their colour interpretation (a 4-band file ordered blue, green, red, near-infrared
  reads as RGB; a palette band through its colour map; one grey band three times),
  and the raster's mask (nodata values, an alpha band, an internal mask) tells
  ``has_data``. Without rasterio, TIFFs are read by Pillow like any other file.
* Every other format is decoded whole by Pillow, once (3 bytes a pixel: 300 MB for
  10,000 x 10,000), and windows are cropped from that buffer: PNG and JPEG have no random
  access. Above ``max_pixels`` (default: Pillow's decompression-bomb limit, 178,956,970
  pixels) a file is refused before it is decoded; a caller that expects larger images
  passes a larger limit (``--max-pixels``). Pillow's own limit is never changed for the
  process: it is lifted around one ``open`` call at a time, under a lock.

Every failure to read raises ``ImageReadError``, whose message starts with the file's path.
Needs numpy and Pillow (rasterio optional); no torch, mmcv or OpenCV.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
# Pillow's DecompressionBombError threshold (2 x Image.MAX_IMAGE_PIXELS).
DEFAULT_MAX_PIXELS = 2 * 89_478_485
_PILLOW_LIMIT = threading.Lock()
_CONVERT_HINT = ("convert it to 8-bit RGB first, e.g. gdal_translate -ot Byte -scale in.tif out.tif, "
                 "or with Pillow/numpy")


class ImageReadError(ValueError):
    """An image that cannot be read; the message starts with its path and says why."""


class Image:
    """An image read window by window (see the module docstring)."""

    path: Path
    width: int
    height: int
    crs = None  # rasterio CRS, for a georeferenced raster
    transform = None  # affine.Affine, pixel corner (col, row) -> map (x, y)

    def __init__(self):
        self.notes: list[str] = []

    def read(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """The window [x0, x0 + w) x [y0, y0 + h) as an (h, w, 3) uint8 RGB array."""
        raise NotImplementedError

    def has_data(self, x0: int, y0: int, w: int, h: int) -> bool:
        """False if every pixel of the window is nodata or transparent (a GeoTIFF's mask)."""
        return True

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

    @property
    def size(self) -> str:
        return f"{self.width} x {self.height} px"

    def _check_window(self, x0: int, y0: int, w: int, h: int) -> None:
        if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > self.width or y0 + h > self.height:
            raise ValueError(f"window x0={x0}, y0={y0}, w={w}, h={h} is not inside {self.path} ({self.size})")

    def _check_size(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ImageReadError(f"{self.path}: the image has no pixels ({self.size})")


def _thumbnail_size(width: int, height: int, max_side: int) -> tuple[float, tuple[int, int]]:
    scale = min(1.0, max_side / max(width, height))
    return scale, (max(1, round(width * scale)), max(1, round(height * scale)))


class ArrayImage(Image):
    """An (H, W, 3) uint8 RGB array already in memory, as an ``Image``."""

    def __init__(self, rgb: np.ndarray, path: str | Path = "<array>"):
        super().__init__()
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        self.rgb, self.path = rgb, Path(path)
        self.height, self.width = rgb.shape[:2]
        self._check_size()

    def read(self, x0, y0, w, h):
        self._check_window(x0, y0, w, h)
        return self.rgb[y0:y0 + h, x0:x0 + w]

    def thumbnail(self, max_side):
        from PIL import Image as PILImage

        scale, size = _thumbnail_size(self.width, self.height, max_side)
        if scale == 1.0:
            return self.rgb, 1.0
        return np.asarray(PILImage.fromarray(self.rgb).resize(size, PILImage.BILINEAR, reducing_gap=2.0)), scale


def _cmyk_as_opencv(im) -> np.ndarray:
    """RGB of a CMYK JPEG as OpenCV computes it from libjpeg's samples: per channel
    ``k - ((255 - c) * k >> 8)``. Pillow hands Adobe files' samples over inverted."""
    cmyk = np.asarray(im).astype(np.int32)
    if "adobe" in im.info:
        cmyk = 255 - cmyk
    k = cmyk[..., 3:]
    return (k - ((255 - cmyk[..., :3]) * k >> 8)).astype(np.uint8)


def _to_rgb(im, path: Path):
    """A Pillow "RGB" image of a decoded one, with OpenCV's IMREAD_COLOR pixels (``im``
    itself when it is RGB already), and the notes for the user."""
    from PIL import Image as PILImage

    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise ImageReadError(f"{path}: 32-bit integer pixels are not read ({_CONVERT_HINT})")
        grey = PILImage.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8))
        return grey.convert("RGB"), _sixteen_bit_note(path, int(values.max()))
    if mode == "F":
        raise ImageReadError(f"{path}: floating-point pixels are not read ({_CONVERT_HINT})")
    if mode == "CMYK":
        return PILImage.fromarray(_cmyk_as_opencv(im)), []
    return (im if mode == "RGB" else im.convert("RGB")), []


def _sixteen_bit_note(path: Path, max_value: int | None) -> list[str]:
    bits = f"; its largest value is {max_value}, so it comes out dark" if max_value is not None and \
        max_value < 4096 else ""
    return [f"{path}: 16-bit samples scaled to 8 bits (value >> 8) as OpenCV, so mmdet, reads them{bits}"]


class PillowImage(Image):
    """Decoded whole by Pillow, once, into one RGB image; windows are cropped from it."""

    def __init__(self, path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        from PIL import ImageOps, UnidentifiedImageError

        super().__init__()
        self.path = path
        try:
            im = _open_without_pillows_limit(path)  # our own limit below
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                im.close()
                raise ImageReadError(
                    f"{path}: {w} x {h} = {w * h:,} px is more than the {max_pixels:,} px allowed for an image "
                    f"decoded whole ({3 * w * h / 1e9:.1f} GB; a guard against decompression bombs): allow it "
                    f"with --max-pixels {w * h}, or make it a tiled GeoTIFF, read window by window")
            im.load()  # decodes now: a truncated file fails here, not mid-inference
            ImageOps.exif_transpose(im, in_place=True)  # in place: no full-size copy of an upright image
            rgb, self.notes = _to_rgb(im, path)
            if rgb is not im:
                im.close()
        except ImageReadError:
            raise
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as e:
            raise ImageReadError(f"{path}: cannot read the image ({e})") from None
        self._pil = rgb
        self.width, self.height = rgb.size
        self._check_size()

    def read(self, x0, y0, w, h):
        self._check_window(x0, y0, w, h)
        return np.asarray(self._pil.crop((x0, y0, x0 + w, y0 + h)))

    def thumbnail(self, max_side):
        from PIL import Image as PILImage

        scale, size = _thumbnail_size(self.width, self.height, max_side)
        return np.asarray(self._pil if scale == 1.0 else self._pil.resize(size, PILImage.BILINEAR, reducing_gap=2.0)), \
            scale

    def close(self):
        self._pil.close()


class RasterioImage(Image):
    """Read window by window from disk by rasterio (see the module docstring)."""

    def __init__(self, path: Path):
        import rasterio

        super().__init__()
        self.path = path
        try:
            with warnings.catch_warnings():  # a plain TIFF is "not georeferenced": nothing to warn about
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._src = rasterio.open(path)
        except rasterio.errors.RasterioIOError as e:
            raise ImageReadError(f"{path}: cannot read the image ({e})") from None
        src = self._src
        self.width, self.height = src.width, src.height
        try:
            self._bands, colormap = self._pick_bands()
            # What every read needs, derived once: the distinct bands to read, where each
            # picked band lies among them, and a palette as a lookup table.
            self._distinct = sorted(set(self._bands))
            self._planes = [self._distinct.index(b) for b in self._bands]
            self._lut = None
            if colormap is not None:
                self._lut = np.zeros((max(256, max(colormap) + 1), 3), np.uint8)
                for i, rgb in colormap.items():
                    self._lut[i] = rgb
            dtype = src.dtypes[self._bands[0] - 1]
            if dtype not in ("uint8", "uint16"):
                kind = "floating-point" if dtype.startswith("float") else dtype
                raise ImageReadError(f"{path}: {kind} pixels are not read, only 8- and 16-bit ones "
                                     f"({_CONVERT_HINT})")
            if dtype == "uint16":
                self.notes += _sixteen_bit_note(path, None)
            self._check_size()
        except ImageReadError:
            src.close()
            raise
        self._masked = any(flag.name != "all_valid" for flags in src.mask_flag_enums for flag in flags)
        if src.crs is not None:
            self.crs, self.transform = src.crs, src.transform
        elif not src.transform.is_identity:
            self.notes.append(f"{path}: a geotransform but no CRS, so no GeoJSON: boxes in pixels only "
                              "(assign one with gdal_edit.py -a_srs EPSG:<code>)")

    def _pick_bands(self) -> tuple[list[int], dict | None]:
        """1-based band indices for R, G, B by colour interpretation, and a palette's map."""
        from rasterio.enums import ColorInterp

        src = self._src
        interp = list(src.colorinterp)
        if interp[0] == ColorInterp.palette:
            return [1], {i: rgba[:3] for i, rgba in src.colormap(1).items()}
        wanted = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if all(c in interp for c in wanted):
            return [interp.index(c) + 1 for c in wanted], None
        colour = [i + 1 for i, c in enumerate(interp) if c not in (ColorInterp.alpha,)]
        if len(colour) >= 3:  # no colour names: the first three as RGB, as OpenCV reads them
            return colour[:3], None
        if len(colour) >= 1:  # grey (with alpha, or a second band of unknown meaning)
            return [colour[0]] * 3, None
        raise ImageReadError(f"{self.path}: no colour band among {src.count} ({', '.join(c.name for c in interp)})")

    def _read(self, **kwargs) -> np.ndarray:
        import rasterio

        try:
            return self._src.read(self._distinct, **kwargs)
        except rasterio.errors.RasterioIOError as e:
            raise ImageReadError(f"{self.path}: cannot read the image ({e})") from None

    def _rgb(self, bands: np.ndarray) -> np.ndarray:
        """(bands, h, w) of the distinct picked bands -> (h, w, 3) uint8 RGB."""
        planes = bands[self._planes]
        if self._lut is not None:  # palette indices, 8 or 16 bits, looked up unscaled
            return self._lut[planes[0]]
        if planes.dtype == np.uint16:
            planes = (planes >> 8).astype(np.uint8)
        if len(planes) == 1:
            planes = np.repeat(planes, 3, axis=0)
        return np.ascontiguousarray(planes.transpose(1, 2, 0))

    def read(self, x0, y0, w, h):
        from rasterio.windows import Window

        self._check_window(x0, y0, w, h)
        return self._rgb(self._read(window=Window(x0, y0, w, h)))

    def has_data(self, x0, y0, w, h):
        if not self._masked:
            return True
        from rasterio.windows import Window

        return bool(self._src.dataset_mask(window=Window(x0, y0, w, h)).any())

    def thumbnail(self, max_side):
        from rasterio.enums import Resampling

        scale, (tw, th) = _thumbnail_size(self.width, self.height, max_side)
        # Decimated read: bounded memory. A palette is looked up, never interpolated.
        how = Resampling.nearest if self._lut is not None else Resampling.bilinear
        bands = self._read(out_shape=(len(self._distinct), th, tw), resampling=how)
        return self._rgb(bands), scale

    def close(self):
        self._src.close()


def _open_without_pillows_limit(path: Path):
    """``PIL.Image.open`` (lazy: the header only) with Pillow's decompression-bomb limit lifted
    for this one call, under a lock, and restored for everyone else at once (callers apply
    their own limit)."""
    from PIL import Image as PILImage

    with _PILLOW_LIMIT:
        saved, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
        try:
            return PILImage.open(path)
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved


def _read_by_rasterio(path: Path) -> bool:
    """TIFFs are read by rasterio (window by window) where it is installed; the rest by Pillow."""
    return path.suffix.lower() in TIFF_SUFFIXES and _rasterio_installed()


def _rasterio_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("rasterio") is not None


def open_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """An ``Image`` for ``path``: rasterio for TIFFs where it is installed, Pillow for the
    rest. ``max_pixels`` bounds what is decoded whole (None: no bound).
    Raises ``ImageReadError`` naming the file if it is missing, unreadable, truncated,
    empty, too large to decode whole, or of a pixel type that is not read."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty (0 bytes)")
    if _read_by_rasterio(path):
        return RasterioImage(path)
    return PillowImage(path, max_pixels)


def peek_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding its pixels (an EXIF rotation
    may swap them), or None if the header cannot be read (``open_image`` then says why)."""
    path = Path(path)
    try:
        if _read_by_rasterio(path):
            with RasterioImage(path) as image:
                return image.width, image.height
        with _open_without_pillows_limit(path) as im:
            return im.size
    except Exception:
        return None


def load_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The whole image as (H, W, 3) uint8 RGB (``open_image``'s pixels)."""
    with open_image(path, max_pixels) as image:
        return np.ascontiguousarray(image.read(0, 0, image.width, image.height))
