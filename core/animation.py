"""Frames to animations: GIF and MP4 bytes for download buttons.

Frames are (N, H, W, 3) uint8, as ``core.latent`` and the sample grids give them. Small
frames are enlarged by whole pixels first (``core.imaging.enlarge``), so a 32 px face
stays crisp instead of being blurred by the viewer's scaling.

GIF goes through imageio's Pillow plugin. Pillow merges identical consecutive frames
into one that shows for their summed time, so a GIF may hold fewer frames than given
while playing just as long. MP4 (H.264) needs the imageio-ffmpeg package, which brings
its own ffmpeg; without it ``mp4_bytes`` raises AnimationError saying so.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from core.imaging import enlarge

DEFAULT_FRAME_DURATION_MS = 100
DEFAULT_MIN_SIDE_PX = 256
MP4_MISSING_MESSAGE = (
    "MP4 export needs the imageio-ffmpeg package (pip install -r requirements.txt); "
    "GIF export works without it."
)


class AnimationError(ValueError):
    """An animation that cannot be made; the message says why and what to do."""


def enlarged_frames(frames: np.ndarray, min_side_px: int) -> np.ndarray:
    """Every frame scaled up by the same whole factor, to at least min_side_px."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or len(frames) == 0:
        raise AnimationError(
            f"frames must be a non-empty (N, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}"
        )
    return np.stack([enlarge(frame, min_side_px) for frame in frames])


def gif_bytes(
    frames: np.ndarray,
    frame_duration_ms: int = DEFAULT_FRAME_DURATION_MS,
    min_side_px: int = DEFAULT_MIN_SIDE_PX,
) -> bytes:
    """An animated GIF that loops forever, each frame shown for frame_duration_ms."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", enlarged_frames(frames, min_side_px), extension=".gif",
                       duration=int(frame_duration_ms), loop=0)


def mp4_available() -> bool:
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def mp4_bytes(
    frames: np.ndarray,
    frame_duration_ms: int = DEFAULT_FRAME_DURATION_MS,
    min_side_px: int = DEFAULT_MIN_SIDE_PX,
) -> bytes:
    """An H.264 MP4 (yuv420p, plays in browsers and phones), frame_duration_ms per frame."""
    if not mp4_available():
        raise AnimationError(MP4_MISSING_MESSAGE)
    import imageio.v3 as iio

    pictures = _even_sides(enlarged_frames(frames, min_side_px))
    # macro_block_size=2: keep the exact size; yuv420p only needs even sides, ensured above.
    return iio.imwrite("<bytes>", pictures, extension=".mp4", fps=1000.0 / frame_duration_ms,
                       codec="libx264", pixelformat="yuv420p", macro_block_size=2)


def _even_sides(frames: np.ndarray) -> np.ndarray:
    """Pad an odd height or width with one black row or column (H.264 with yuv420p needs even)."""
    extra_rows, extra_columns = frames.shape[1] % 2, frames.shape[2] % 2
    if not (extra_rows or extra_columns):
        return frames
    return np.pad(frames, ((0, 0), (0, extra_rows), (0, extra_columns), (0, 0)))
