"""One photo file -> an upright 8-bit RGB picture, or a short reason why not.

Everything PIL can read is accepted, whatever the file is called: the format comes
from the file's content. Colour modes are normalised here (grayscale, palette, CMYK,
1-bit, 16-bit, alpha), camera orientation is applied, and huge pictures are refused
before they are decoded. Fitting the picture to a training square happens elsewhere.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from core.config import BACKGROUNDS

# The formats people keep photos in; PIL reads many more and those work too.
COMMON_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WebP")
MIN_SOURCE_SIDE_PX = 8  # thumbnails and icons smaller than this hold no face to learn
MAX_SOURCE_MEGAPIXELS = 100  # larger pictures are skipped: decoding one would need > 300 MB
ROTATED_EXIF_ORIENTATIONS = frozenset({5, 6, 7, 8})  # these swap width and height
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
SIXTEEN_BIT_FULL_SCALE = 65535.0

# Decoding runs in several threads, where warnings.catch_warnings() is not safe, so these
# two PIL warnings are silenced for the process: the size limit above speaks first for
# big pictures, and damaged EXIF in camera files only costs the rotation.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)

# Formats PIL cannot read, recognised by their first bytes so the message can name them.
_KNOWN_UNREADABLE = (
    (b"%PDF", "PDF"),
    (b"<svg", "SVG"),
    (b"<?xml", "SVG or other XML"),
    (b"8BPS", "Photoshop (PSD) with unsupported features"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1")


class UnusableImage(ValueError):
    """A file that cannot be trained on; str() is a short reason for the user."""


@dataclass(frozen=True)
class DecodedImage:
    """A picture ready for fitting, and what the original was."""

    picture: Image.Image  # RGB, 8 bits per channel, upright
    source_format: str  # what PIL found in the content, e.g. "JPEG"
    source_mode: str  # PIL's mode of the original, e.g. "I;16", "P", "CMYK"
    source_size: tuple[int, int]  # (width, height) as the photo is meant to be seen


def decode_image(path: Path, background: str = "black", draft_size_px: int | None = None) -> DecodedImage:
    """Read one file. Raises UnusableImage with the reason when it cannot be used.

    draft_size_px lets JPEG decode at 1/2, 1/4 or 1/8 scale while staying at least that
    big, which keeps memory and time small for camera photos.
    """
    path = Path(path)
    if background not in BACKGROUNDS:
        raise ValueError(f"background={background!r} must be one of {tuple(BACKGROUNDS)}")
    _check_not_empty(path)

    source_format = ""  # known once PIL has read the header; a damaged header leaves it unknown
    try:
        with Image.open(path) as image:
            source_format, source_mode = image.format or "unknown", image.mode
            # Checked before the EXIF is read: PNG's getexif() decodes every pixel first.
            _check_pixel_count(image.size)
            source_size = _upright_size(image)
            if image.format == "JPEG" and draft_size_px:
                image.draft("RGB", (draft_size_px, draft_size_px))
            image.seek(0)  # the first frame of an animation
            image.load()
            upright = ImageOps.exif_transpose(image)
            picture = to_rgb(upright, BACKGROUNDS[background])
    except UnidentifiedImageError:
        raise UnusableImage(_unidentified_reason(path)) from None
    except Image.DecompressionBombError as error:
        raise UnusableImage(f"too large to decode safely: {error}") from None
    except UnusableImage:
        raise
    except (OSError, SyntaxError, EOFError, ValueError, IndexError) as error:
        # PIL reports damaged data through any of these, depending on the format.
        described = f"{source_format} image" if source_format else "image"
        raise UnusableImage(f"truncated or corrupt {described}: {error}") from None
    return DecodedImage(picture, source_format, source_mode, source_size)


def to_rgb(image: Image.Image, background_rgb: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparent areas are composited onto background_rgb."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return _high_bit_depth_to_rgb(image)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        ground = Image.new("RGBA", rgba.size, (*background_rgb, 255))
        return Image.alpha_composite(ground, rgba).convert("RGB")
    # CMYK converts without its colour profile: close enough for small training squares.
    return image.convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit and float grayscale by their real range, not by 255.

    PIL's convert("L") clips these at 255, which turns a normal 16-bit photo white.
    """
    values = np.asarray(image, dtype=np.float64)
    brightest = float(values.max(initial=0.0))
    if image.mode in SIXTEEN_BIT_MODES:
        full_scale = SIXTEEN_BIT_FULL_SCALE
    elif image.mode == "F" and brightest <= 1.0:
        full_scale = 1.0  # float images conventionally hold [0, 1]
    elif brightest <= SIXTEEN_BIT_FULL_SCALE:
        full_scale = SIXTEEN_BIT_FULL_SCALE  # PIL widens 16-bit files to "I" in some formats
    else:
        full_scale = brightest

    gray = np.clip(np.rint(values / full_scale * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def _check_not_empty(path: Path) -> None:
    try:
        size_bytes = path.stat().st_size
    except OSError as error:
        raise UnusableImage(f"cannot read file: {error.strerror or error}") from None
    if size_bytes == 0:
        raise UnusableImage("empty file (0 bytes)")


def _check_pixel_count(size: tuple[int, int]) -> None:
    if min(size) < MIN_SOURCE_SIDE_PX:
        raise UnusableImage(
            f"too small to learn from: {size[0]}x{size[1]} px (at least {MIN_SOURCE_SIDE_PX} px each way)"
        )
    megapixels = size[0] * size[1] / 1e6
    if megapixels > MAX_SOURCE_MEGAPIXELS:
        raise UnusableImage(
            f"too large: {size[0]}x{size[1]} = {megapixels:.1f} MP (limit {MAX_SOURCE_MEGAPIXELS} MP); "
            "save a smaller copy and use that"
        )


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The (width, height) the photo is meant to be seen at, read before any draft shrinks it."""
    width, height = image.size
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in ROTATED_EXIF_ORIENTATIONS:
        return height, width
    return width, height


def _unidentified_reason(path: Path) -> str:
    supported = f"readable formats include {', '.join(COMMON_FORMATS)}"
    try:
        with path.open("rb") as file:
            head = file.read(64)
    except OSError as error:
        return f"cannot read file: {error.strerror or error}"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return f"HEIC/HEIF photo, which PIL cannot read; export it as JPEG ({supported})"
    for magic, name in _KNOWN_UNREADABLE:
        if head.lstrip().startswith(magic):
            return f"{name} file, not a picture PIL can read ({supported})"
    return f"not an image PIL can read ({supported})"
