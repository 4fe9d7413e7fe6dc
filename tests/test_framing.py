"""Tests for core.framing: pad keeps the whole photo with background bars, crop takes the
centre, face crops around a real face and falls back to the centre crop when there is none.

Faces come from scikit-image's bundled LFW subset and astronaut portrait.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from core.framing import fit_to_square, find_face_square
from pictures import (
    CANVAS_SIZE,
    FACE_SIDE_PX,
    FACE_TOP_LEFT,
    astronaut,
    black_and_white_halves,
    face_on_grey_canvas,
    gradient,
    lfw_face,
    noise,
)

RESOLUTION_PX = 16


def three_vertical_bands(width_px: int, height_px: int) -> Image.Image:
    """Red, green and blue thirds from left to right."""
    pixels = np.zeros((height_px, width_px, 3), dtype=np.uint8)
    third = width_px // 3
    pixels[:, :third] = (255, 0, 0)
    pixels[:, third : 2 * third] = (0, 255, 0)
    pixels[:, 2 * third :] = (0, 0, 255)
    return Image.fromarray(pixels)


@pytest.mark.parametrize(
    ("background_rgb", "picture_rgb"),
    [((0, 0, 0), (255, 255, 255)), ((255, 255, 255), (0, 0, 0)), ((128, 128, 128), (9, 9, 9))],
)
def test_pad_keeps_the_whole_photo_between_bars_of_the_background_colour(background_rgb, picture_rgb):
    wide = Image.new("RGB", (64, 32), picture_rgb)

    fitted = fit_to_square(wide, RESOLUTION_PX, "pad", background_rgb)

    assert fitted.pixels.shape == (RESOLUTION_PX, RESOLUTION_PX, 3)
    assert fitted.pixels.dtype == np.uint8
    assert (fitted.pixels[:4] == background_rgb).all() and (fitted.pixels[-4:] == background_rgb).all()
    assert (fitted.pixels[4:-4] == picture_rgb).all()
    assert fitted.preparation == "padded, 64x32 -> 16x16"


def test_crop_fills_the_square_with_the_centre_of_the_photo():
    fitted = fit_to_square(three_vertical_bands(96, 32), RESOLUTION_PX, "crop")

    # The green middle third only; the resampling filter lets the bands beside it tint the edges.
    assert (fitted.pixels[:, 3:-3] == (0, 255, 0)).all()
    green = fitted.pixels.astype(int)[..., 1]
    assert (green > 200).all() and (fitted.pixels.astype(int)[..., [0, 2]] < 40).all()
    assert fitted.preparation == "centre crop, 96x32 -> 16x16"


@pytest.mark.parametrize("fit_mode", ["pad", "crop"])
def test_a_picture_already_the_right_size_is_left_exactly_as_it_was(fit_mode):
    halves = black_and_white_halves(RESOLUTION_PX)

    fitted = fit_to_square(Image.fromarray(halves), RESOLUTION_PX, fit_mode)

    np.testing.assert_array_equal(fitted.pixels, halves)


def test_face_crop_centres_the_square_on_a_small_face_in_a_large_picture():
    picture = face_on_grey_canvas()

    fitted = fit_to_square(picture, RESOLUTION_PX, "face")

    box = find_face_square(picture)
    assert box is not None
    left, top, right, bottom = box
    face_centre_x = FACE_TOP_LEFT[0] + FACE_SIDE_PX / 2
    face_centre_y = FACE_TOP_LEFT[1] + FACE_SIDE_PX / 2
    tolerance_px = 0.15 * FACE_SIDE_PX
    assert abs((left + right) / 2 - face_centre_x) < tolerance_px
    assert abs((top + bottom) / 2 - face_centre_y) < tolerance_px
    assert right - left == bottom - top
    assert FACE_SIDE_PX < right - left < CANVAS_SIZE[1]  # the face and a margin, not the whole canvas

    assert fitted.preparation.startswith("face crop")
    assert fitted.preparation == f"face crop {right - left}px at ({left}, {top}), 480x360 -> 16x16"
    expected = picture.resize((RESOLUTION_PX, RESOLUTION_PX), Image.Resampling.LANCZOS, box=box)
    np.testing.assert_array_equal(fitted.pixels, np.asarray(expected))
    centre_crop = fit_to_square(picture, RESOLUTION_PX, "crop").pixels
    assert not np.array_equal(fitted.pixels, centre_crop)


def test_face_crop_finds_the_astronauts_face_and_leaves_out_most_of_the_background():
    picture = astronaut()  # 512x512; her face is in the upper left quarter-to-centre

    fitted = fit_to_square(picture, RESOLUTION_PX, "face")

    assert fitted.preparation.startswith("face crop")
    left, top, right, bottom = find_face_square(picture)
    assert 150 < (left + right) / 2 < 300 and 50 < (top + bottom) / 2 < 200
    assert right - left < picture.width / 2


@pytest.mark.parametrize(
    "picture",
    [noise(360, 240), Image.new("RGB", (300, 200), (90, 140, 200)), Image.fromarray(gradient(200, 300))],
    ids=["noise", "flat colour", "gradient"],
)
def test_face_mode_without_a_face_says_so_and_gives_the_centre_crop(picture):
    picture = picture.convert("RGB")

    fitted = fit_to_square(picture, RESOLUTION_PX, "face")

    width, height = picture.size
    assert fitted.preparation == f"no face found, centre crop, {width}x{height} -> 16x16"
    centre_crop = ImageOps.fit(picture, (RESOLUTION_PX, RESOLUTION_PX), method=Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(fitted.pixels, np.asarray(centre_crop))
    np.testing.assert_array_equal(fitted.pixels, fit_to_square(picture, RESOLUTION_PX, "crop").pixels)


def test_face_mode_on_a_picture_smaller_than_the_detector_falls_back_to_the_centre_crop():
    tiny = lfw_face(0, 20).convert("RGB")

    fitted = fit_to_square(tiny, RESOLUTION_PX, "face")

    assert fitted.preparation.startswith("no face found, centre crop")


def test_an_unknown_fit_mode_is_rejected_by_name():
    with pytest.raises(ValueError, match="fit_mode='stretch'"):
        fit_to_square(Image.new("RGB", (8, 8)), RESOLUTION_PX, "stretch")
