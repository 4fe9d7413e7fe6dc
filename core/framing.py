"""How a photo of any shape becomes a training square: pad, centre crop, or face crop.

'pad' keeps the whole photo with bars of the background colour (the original project
padded with black); 'crop' takes the centre square; 'face' takes a square around the
largest frontal face found by scikit-image's LBP cascade, and falls back to the centre
crop, saying so, when it finds none.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from core.config import FIT_MODES

FACE_SEARCH_SIDE_PX = 320  # faces are searched on a copy this big: fast, and faces stay > 24 px
FACE_MIN_SIDE_PX = 24  # the cascade's own window
_CASCADE_LOCK = threading.Lock()
FACE_MARGIN = 1.8  # the square is this many face widths, so hair and chin stay in


@dataclass(frozen=True)
class FittedImage:
    pixels: np.ndarray  # (R, R, 3) uint8
    preparation: str  # what was done, in words, for the manifest and the Data page


def fit_to_square(
    picture: Image.Image, resolution_px: int, fit_mode: str, background_rgb: tuple[int, int, int] = (0, 0, 0)
) -> FittedImage:
    """Fit an RGB picture into a resolution_px square the way fit_mode says."""
    size = (resolution_px, resolution_px)
    width, height = picture.size
    resized = f"{width}x{height} -> {resolution_px}x{resolution_px}"
    if fit_mode == "pad":
        # Resizing before padding keeps the bars exactly the background colour: no ringing.
        fitted = ImageOps.pad(picture, size, method=Image.Resampling.LANCZOS, color=background_rgb)
        return FittedImage(np.asarray(fitted, dtype=np.uint8), f"padded, {resized}")
    if fit_mode == "crop":
        fitted = ImageOps.fit(picture, size, method=Image.Resampling.LANCZOS)
        return FittedImage(np.asarray(fitted, dtype=np.uint8), f"centre crop, {resized}")
    if fit_mode == "face":
        box = find_face_square(picture)
        if box is None:
            fitted = ImageOps.fit(picture, size, method=Image.Resampling.LANCZOS)
            return FittedImage(np.asarray(fitted, dtype=np.uint8), f"no face found, centre crop, {resized}")
        fitted = picture.resize(size, Image.Resampling.LANCZOS, box=box)
        left, top, right, _ = box
        return FittedImage(
            np.asarray(fitted, dtype=np.uint8),
            f"face crop {right - left}px at ({left}, {top}), {resized}",
        )
    raise ValueError(f"fit_mode={fit_mode!r} must be one of {FIT_MODES}")


@functools.cache
def _face_cascade():
    # Imported and loaded on first use: only 'face' framing needs scikit-image's detector.
    from skimage import data, feature

    return feature.Cascade(data.lbp_frontal_face_cascade_filename())


def find_face_square(picture: Image.Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of a square around the largest face, inside the picture."""
    width, height = picture.size
    scale = min(1.0, FACE_SEARCH_SIDE_PX / max(width, height))
    small = picture.convert("L").resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR
    )
    gray = np.asarray(small, dtype=np.float64) / 255.0
    if min(gray.shape) < FACE_MIN_SIDE_PX:
        return None
    with _CASCADE_LOCK:  # folders load in several threads; the detector is not known to be thread-safe
        detections = _face_cascade().detect_multi_scale(
            img=gray,
            scale_factor=1.2,
            step_ratio=1,
            min_size=(FACE_MIN_SIDE_PX, FACE_MIN_SIDE_PX),
            max_size=(min(gray.shape), min(gray.shape)),
        )
    if not detections:
        return None

    face = max(detections, key=lambda found: found["width"] * found["height"])
    centre_x = (face["c"] + face["width"] / 2) / scale
    centre_y = (face["r"] + face["height"] / 2) / scale
    side = min(round(max(face["width"], face["height"]) * FACE_MARGIN / scale), width, height)
    # Slide the square back inside the picture rather than pad it.
    left = int(min(max(centre_x - side / 2, 0), width - side))
    top = int(min(max(centre_y - side / 2, 0), height - side))
    return left, top, left + side, top + side
