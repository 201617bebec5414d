"""Reading images as 8-bit RGB, whatever is on disk, with errors that name the file.

Conversions (documented behaviour, tested):

- 16-bit PNG (grey, grey+alpha, RGB, RGBA): decoded at full depth with OpenCV, then mapped to
  8 bit by rounding ``v * 255 / 65535`` (not by dropping the low byte).
- alpha (RGBA, LA, palette with transparency): the alpha channel is dropped, colour kept as is
  (no compositing on a background).
- greyscale (L, 1-bit, 16-bit grey): the one channel is replicated to three.
- CMYK, YCbCr, palette: converted to RGB by Pillow.
- EXIF orientation of JPEG/WebP files is applied (as ``cv2.imread``, which BasicSR uses, does).
- anything else (32-bit integer or float images, unknown channel counts) is an error.

A file that cannot be read, is not an image or is truncated raises :class:`ImageError` naming it,
and so does one above :func:`max_pixels` (default 100 megapixels, ``GANKD_MAX_PIXELS``): read
whole, such a photo takes gigabytes in its float copies, and Pillow's own limit (a warning at 89
megapixels, an error at 179) names no file.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gankd.datasets.lmdb_store import read_value
from gankd.errors import ConfigError, ImageError  # ImageError: importable from here as it always was

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ORIENTED_FORMATS = ("JPEG", "WEBP")  # formats whose EXIF orientation we apply (cameras write it)


#: the default of :func:`max_pixels`: DIV2K's photos are 2-4 megapixels, FFHQ's one
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "GANKD_MAX_PIXELS"
_PIL_LIMIT = threading.Lock()


def max_pixels() -> int:
    """The most pixels (width x height) an image may have: ``$GANKD_MAX_PIXELS`` or 100 million."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive number of pixels (e.g. 200e6), got {raw!r}")
    return value


@dataclass(frozen=True)
class ImageRef:
    """One image of a data source.

    ``name`` is stable and unique within the source (the path relative to the source root, with
    its extension, POSIX separators); splits, seeds and cache keys are derived from it.
    ``size`` is (width, height) after EXIF orientation, read from the header only.
    """

    name: str
    path: Path
    size: tuple[int, int]
    #: an image stored in an LMDB database (BasicSR's layout, ``lmdb_dataset``): the database
    #: folder, and ``key`` its key there; ``path`` (``<database>/<name>``) then only names it
    database: Path | None = None
    key: str = ""

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


def check_pixels(size: tuple[int, int], name: str) -> None:
    w, h = size
    limit = max_pixels()
    if w * h > limit:
        raise ImageError(f"{name}: {w}x{h} is {w * h / 1e6:.3g} megapixels, more than the limit of "
                         f"{limit / 1e6:g} (set {MAX_PIXELS_ENV} to allow larger images)")


@contextmanager
def _opened(src: Path | io.BytesIO, name: str) -> Iterator[Image.Image]:
    """``Image.open`` with our pixel limit in place of Pillow's (its switch is a module global:
    turned off only for our own open, under a lock, as decoding runs in threads)."""
    with _PIL_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(src)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with im:
        check_pixels(im.size, name)
        yield im


def probe_size(path: Path) -> tuple[int, int]:
    """(width, height) as displayed, from the header alone (no pixel decoding)."""
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"empty image file (0 bytes): {path}")
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path}") from None
    except OSError as exc:
        raise ImageError(f"cannot read image header of {path}: {exc}") from None
    return _header_size(path, str(path))


def probe_bytes(data: bytes, name: str) -> tuple[int, int]:
    """:func:`probe_size` of encoded image bytes (an LMDB value); ``name`` is used in messages."""
    if not data:
        raise ImageError(f"empty image (0 bytes): {name}")
    return _header_size(io.BytesIO(data), name)


def _header_size(src: Path | io.BytesIO, name: str) -> tuple[int, int]:
    try:
        with _opened(src, name) as im:
            w, h = im.size
            if im.format in _ORIENTED_FORMATS:
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
                if orientation in _TRANSPOSING_ORIENTATIONS:
                    w, h = h, w
    except FileNotFoundError:
        raise ImageError(f"image file not found: {name}") from None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not a readable image (corrupt or unknown format): {name}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image header of {name}: {exc}") from None
    if w <= 0 or h <= 0:
        raise ImageError(f"image has an empty size {w}x{h}: {name}")
    return w, h


def read_image(path: Path | str) -> np.ndarray:
    """The image at ``path`` as a (H, W, 3) uint8 RGB array (see the module doc for conversions)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from None
    return decode_image(data, str(path))


def ref_bytes(ref: ImageRef) -> bytes:
    """The encoded bytes of ``ref``: its file, or its value in an LMDB database."""
    if ref.database is None:
        try:
            return ref.path.read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read image file {ref.path}: {exc.strerror or exc}") from None
    return read_value(ref.database, ref.key, ref.name)


def read_ref(ref: ImageRef) -> np.ndarray:
    """:func:`read_image` of an image of a source, wherever it is stored."""
    if ref.database is None:
        return read_image(ref.path)
    return decode_image(ref_bytes(ref), str(ref.path))


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode encoded image bytes; ``name`` is used in error messages."""
    if not data:
        raise ImageError(f"empty image file: {name}")
    if data[:8] == _PNG_SIGNATURE and len(data) > 24 and data[24] == 16:
        arr = _decode_png16(data, name)
    else:
        arr = _decode_pil(data, name)
    return _to_rgb(arr, name)


def _decode_png16(data: bytes, name: str) -> np.ndarray:
    # Pillow truncates 16-bit colour PNGs to their high byte; OpenCV keeps all 16 bits.
    check_pixels((int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")), name)  # IHDR
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"cannot decode 16-bit PNG (corrupt or truncated): {name}")
    if arr.dtype != np.uint16:
        raise ImageError(f"16-bit PNG decoded as {arr.dtype}: {name}")
    arr = np.rint(arr.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] >= 3:  # OpenCV orders colour channels BGR(A)
        arr = np.concatenate([arr[:, :, 2::-1], arr[:, :, 3:]], axis=2)
    return arr


def _decode_pil(data: bytes, name: str) -> np.ndarray:
    try:
        with _opened(io.BytesIO(data), name) as im:
            im.load()  # a truncated file raises here, not at open
            if im.format in _ORIENTED_FORMATS:
                im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode in ("RGB", "L"):
                return np.asarray(im)
            if mode in ("RGBA", "LA"):
                return np.asarray(im)[:, :, :-1]
            if mode == "1":
                return np.asarray(im.convert("L"))
            if mode in ("P", "PA"):
                return np.asarray(im.convert("RGBA"))[:, :, :3]
            if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
                return np.asarray(im.convert("RGB"))
            if mode.startswith("I;16"):
                arr = np.asarray(im).astype(np.float32)
                return np.rint(arr * (255.0 / 65535.0)).astype(np.uint8)
            raise ImageError(f"unsupported pixel format {mode!r} (need 8- or 16-bit grey/RGB): {name}")
    except UnidentifiedImageError:
        raise ImageError(f"not a readable image (corrupt or unknown format): {name}") from None
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot decode image (corrupt or truncated?) {name}: {exc}") from None


def _to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    channels = arr.shape[2]
    if channels in (1, 2):  # grey, grey + alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif channels == 4:
        arr = arr[:, :, :3]
    elif channels != 3:
        raise ImageError(f"unsupported channel count {channels} (need 1 to 4): {name}")
    if arr.dtype != np.uint8:
        raise ImageError(f"unsupported sample type {arr.dtype}: {name}")
    return np.ascontiguousarray(arr)


def resize_short_side(img: np.ndarray, short: int) -> np.ndarray:
    """Resize so that the shorter side is ``short`` (Pillow Lanczos, antialiased), keeping aspect."""
    h, w = img.shape[:2]
    if min(h, w) == short:
        return img
    if h <= w:
        size = (max(1, round(w * short / h)), short)
    else:
        size = (short, max(1, round(h * short / w)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def shown_size(size: tuple[int, int], short: int | None) -> tuple[int, int]:
    """(width, height) after :func:`resize_short_side` (or unchanged when ``short`` is None)."""
    w, h = size
    if short is None or min(w, h) == short:
        return w, h
    if h <= w:
        return max(1, round(w * short / h)), short
    return short, max(1, round(h * short / w))
