"""Tests for core.animation: GIF and MP4 bytes that decode to the frames asked for."""

from __future__ import annotations

import numpy as np
import pytest

from core import animation
from core.animation import AnimationError, gif_bytes, mp4_bytes


def distinct_frames(count: int, side_px: int) -> np.ndarray:
    """Frames that differ from each other (identical neighbours would be merged in a GIF)."""
    frames = np.zeros((count, side_px, side_px, 3), dtype=np.uint8)
    for index in range(count):
        frames[index, : side_px // 2, :, 0] = 40 + 30 * index
        frames[index, side_px // 2 :, :, 2] = 250 - 30 * index
    return frames


def test_a_gif_holds_every_frame_enlarged_by_whole_pixels_and_loops_forever():
    import imageio.v3 as iio

    frames = distinct_frames(5, 32)

    encoded = gif_bytes(frames, frame_duration_ms=80, min_side_px=256)

    decoded = iio.imread(encoded, index=None, extension=".gif")
    assert decoded.shape[:3] == (5, 256, 256)
    metadata = iio.immeta(encoded, index=0, extension=".gif")
    assert metadata["loop"] == 0 and metadata["duration"] == 80
    # Nearest-neighbour enlargement: each source pixel becomes an 8 x 8 block of one colour.
    np.testing.assert_array_equal(decoded[2, :8, :8, :3], np.broadcast_to(decoded[2, 0, 0, :3], (8, 8, 3)))


def test_an_mp4_decodes_to_the_frame_count_and_enlarged_size():
    import imageio.v3 as iio

    if not animation.mp4_available():
        pytest.skip("imageio-ffmpeg is not installed")
    frames = distinct_frames(6, 16)

    encoded = mp4_bytes(frames, frame_duration_ms=100, min_side_px=128)

    decoded = iio.imread(encoded, index=None, extension=".mp4")
    assert decoded.shape == (6, 128, 128, 3)
    assert abs(int(decoded[3, 100, 64, 2]) - int(frames[3, 12, 8, 2])) < 12  # lossy, but the same picture
    assert iio.immeta(encoded, extension=".mp4")["fps"] == pytest.approx(10.0)
    # An odd side (15 px x 9 = 135) gains one black row and column: H.264 needs even sides.
    odd = iio.imread(mp4_bytes(distinct_frames(2, 15), min_side_px=128), index=None, extension=".mp4")
    assert odd.shape == (2, 136, 136, 3)


def test_an_mp4_without_imageio_ffmpeg_raises_a_message_naming_the_package(monkeypatch):
    monkeypatch.setattr(animation, "mp4_available", lambda: False)

    with pytest.raises(AnimationError, match="imageio-ffmpeg"):
        mp4_bytes(distinct_frames(2, 16))


def test_frames_that_are_not_uint8_rgb_are_refused():
    with pytest.raises(AnimationError, match="uint8"):
        gif_bytes(np.zeros((2, 16, 16, 3), dtype=np.float32))
