"""Pixel conventions shared by every module: model range, uint8, grids, saved pictures.

Inside the model images are float32 in [-1, 1]; on disk and on screen they are uint8.
These two conversions are the only place the mapping is written down.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def uint8_to_model_range(images):
    """uint8 [0, 255] -> float32 tensor in [-1, 1]; black is exactly -1, white exactly +1.

    Accepts numpy arrays and tensors, so tf.data and eager code share it.
    """
    import tensorflow as tf  # imported here so display-only callers stay light

    return tf.cast(images, tf.float32) / 127.5 - 1.0


def model_range_to_uint8(images) -> np.ndarray:
    """float [-1, 1] (array or tensor) -> uint8 [0, 255], clipped and rounded."""
    values = (np.asarray(images, dtype=np.float32) + 1.0) * 127.5
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, columns: int, padding_px: int = 2) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one uint8 picture, columns wide, black gaps."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    grid = np.zeros(
        (rows * height + (rows + 1) * padding_px, columns * width + (columns + 1) * padding_px, channels),
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top = padding_px + row * (height + padding_px)
        left = padding_px + column * (width + padding_px)
        grid[top : top + height, left : left + width] = image
    return grid


def enlarge(image: np.ndarray, min_side_px: int) -> np.ndarray:
    """Scale up by a whole factor with nearest neighbour so small faces stay crisp on screen."""
    factor = max(1, -(-min_side_px // min(image.shape[:2])))
    if factor == 1:
        return image
    return np.asarray(
        Image.fromarray(image).resize(
            (image.shape[1] * factor, image.shape[0] * factor), Image.Resampling.NEAREST
        )
    )


def read_rgb(path) -> np.ndarray:
    """A saved picture (a sample grid) as (H, W, 3) uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
