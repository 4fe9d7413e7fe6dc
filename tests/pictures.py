"""Pictures the tests draw, or take from scikit-image's bundled samples; no personal data.

``skimage.data.lfw_subset()`` ships 100 face crops followed by 100 non-faces, 25x25
grayscale floats in [0, 1]; ``skimage.data.astronaut()`` is a 512x512 public-domain
NASA portrait. Everything else is drawn with numpy.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image

LFW_FACE_COUNT = 100
EXIF_ORIENTATION_TAG = 0x0112
FACE_SIDE_PX = 120
FACE_TOP_LEFT = (300, 60)  # where face_on_grey_canvas pastes the face
CANVAS_SIZE = (480, 360)


@functools.cache
def _lfw_faces() -> np.ndarray:
    from skimage import data

    faces = np.rint(data.lfw_subset()[:LFW_FACE_COUNT] * 255).astype(np.uint8)
    faces.flags.writeable = False
    return faces


def lfw_face(index: int, side_px: int = 25) -> Image.Image:
    """Face number index of the LFW subset as an 8-bit grayscale picture, side_px square."""
    face = Image.fromarray(_lfw_faces()[index])
    if side_px == face.width:
        return face
    return face.resize((side_px, side_px), Image.Resampling.BICUBIC)


def lfw_face_rgb(index: int, width_px: int, height_px: int) -> Image.Image:
    """A face tinted into colour and stretched to width_px x height_px, so modes differ visibly."""
    stretched = lfw_face(index).resize((width_px, height_px), Image.Resampling.BICUBIC)
    gray = np.asarray(stretched, dtype=np.float64)
    tint = np.array([1.0, 0.8, 0.6])
    return Image.fromarray(np.rint(gray[..., None] * tint).astype(np.uint8))


def face_on_grey_canvas() -> Image.Image:
    """An LFW face enlarged to FACE_SIDE_PX and pasted off-centre into a big plain grey picture."""
    canvas = Image.new("L", CANVAS_SIZE, 128)
    canvas.paste(lfw_face(0, FACE_SIDE_PX), FACE_TOP_LEFT)
    return canvas.convert("RGB")


@functools.cache
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def gradient(width_px: int, height_px: int) -> np.ndarray:
    """A smooth 8-bit grayscale ramp in which every value from 0 to 255 appears."""
    ramp = np.linspace(0, 255, width_px * height_px).reshape(height_px, width_px)
    return np.rint(ramp).astype(np.uint8)


def black_and_white_halves(side_px: int) -> np.ndarray:
    """(side, side, 3) uint8: the left half pure black, the right half pure white."""
    pixels = np.zeros((side_px, side_px, 3), dtype=np.uint8)
    pixels[:, side_px // 2 :] = 255
    return pixels


def noise(width_px: int, height_px: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height_px, width_px, 3), dtype=np.uint8))


def encoded(picture: Image.Image, image_format: str, **options) -> bytes:
    """The picture saved in image_format, as bytes."""
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def save_with_orientation(picture: Image.Image, path: Path, orientation: int) -> None:
    """Save as JPEG with an EXIF orientation tag, as cameras do for photos taken sideways."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    picture.save(path, format="JPEG", exif=exif, quality=95)


def truncated(content: bytes) -> bytes:
    """The first half of a file, as an interrupted copy or download leaves it."""
    return content[: len(content) // 2]
