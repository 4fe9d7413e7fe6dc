"""Tests for core.decode: any readable file becomes an upright 8-bit RGB picture, and any
other file an UnusableImage whose reason says what is wrong with it.

Every picture is drawn by the tests or taken from scikit-image's bundled samples.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import core.decode
from core.decode import UnusableImage, decode_image
from pictures import encoded, gradient, lfw_face_rgb, noise, save_with_orientation, truncated

WIDTH_PX, HEIGHT_PX = 40, 30


def decode_bytes(tmp_path, content: bytes, name: str = "photo", **options):
    path = tmp_path / name
    path.write_bytes(content)
    return decode_image(path, **options)


def as_array(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture, dtype=np.int16)  # signed, so differences do not wrap


@pytest.mark.parametrize(
    ("mode", "image_format", "max_mean_error"),
    [
        ("RGB", "PNG", 0),
        ("RGB", "BMP", 0),
        ("RGB", "TIFF", 0),
        ("RGB", "WEBP", 0),  # saved lossless below
        ("RGB", "JPEG", 6),
        ("L", "PNG", 0),
        ("L", "JPEG", 6),
        ("P", "PNG", 0),
        ("P", "GIF", 0),
        ("CMYK", "TIFF", 0),
        ("CMYK", "JPEG", 6),
    ],
)
def test_every_colour_mode_becomes_8_bit_rgb_that_looks_like_the_original(
    tmp_path, mode, image_format, max_mean_error
):
    original = lfw_face_rgb(0, WIDTH_PX, HEIGHT_PX).convert(mode)
    options = {"lossless": True} if image_format == "WEBP" else {}

    decoded = decode_bytes(tmp_path, encoded(original, image_format, **options))

    assert decoded.picture.mode == "RGB"
    assert decoded.picture.size == (WIDTH_PX, HEIGHT_PX)
    assert (decoded.source_format, decoded.source_mode) == (image_format, mode)
    assert decoded.source_size == (WIDTH_PX, HEIGHT_PX)
    expected = as_array(original.convert("RGB"))
    assert np.abs(as_array(decoded.picture) - expected).mean() <= max_mean_error


@pytest.mark.parametrize("image_format", ["PNG", "BMP", "TIFF"])
def test_one_bit_pictures_become_pure_black_and_white_rgb(tmp_path, image_format):
    original = lfw_face_rgb(1, WIDTH_PX, HEIGHT_PX).convert("1")

    decoded = decode_bytes(tmp_path, encoded(original, image_format))

    pixels = np.asarray(decoded.picture)
    assert decoded.source_mode == "1"
    assert set(np.unique(pixels).tolist()) == {0, 255}
    np.testing.assert_array_equal(pixels[..., 0], np.asarray(original, dtype=np.uint8) * 255)


@pytest.mark.parametrize("image_format", ["PNG", "TIFF"])
def test_sixteen_bit_grayscale_is_scaled_by_its_full_range_not_clipped_to_white(tmp_path, image_format):
    eight_bit = gradient(WIDTH_PX, HEIGHT_PX)
    sixteen_bit = Image.fromarray(eight_bit.astype(np.uint16) * 257)  # 255 * 257 = 65535
    assert sixteen_bit.mode == "I;16"

    decoded = decode_bytes(tmp_path, encoded(sixteen_bit, image_format))

    assert decoded.source_mode == "I;16"
    for channel in range(3):
        np.testing.assert_array_equal(np.asarray(decoded.picture)[..., channel], eight_bit)


def test_float_pictures_in_zero_to_one_are_scaled_to_255(tmp_path):
    values = gradient(WIDTH_PX, HEIGHT_PX) / 255.0
    floating = Image.fromarray(values.astype(np.float32), mode="F")

    decoded = decode_bytes(tmp_path, encoded(floating, "TIFF"))

    assert decoded.source_mode == "F"
    np.testing.assert_array_equal(np.asarray(decoded.picture)[..., 1], gradient(WIDTH_PX, HEIGHT_PX))


def half_transparent(mode: str) -> tuple[Image.Image, tuple[int, int, int]]:
    """Left half fully transparent, right half an opaque colour; returns it and that colour."""
    colour = (200, 120, 40)
    rgba = np.zeros((HEIGHT_PX, WIDTH_PX, 4), dtype=np.uint8)
    rgba[..., :3] = (255, 255, 255)  # the colour hidden under the transparency must not show
    rgba[:, WIDTH_PX // 2 :] = (*colour, 255)
    picture = Image.fromarray(rgba)
    if mode == "LA":
        picture = picture.convert("LA")
        colour = (picture.getpixel((WIDTH_PX - 1, 0))[0],) * 3
    elif mode == "P":
        picture = picture.convert("RGB").quantize(colors=4)
        transparent_index = picture.getpixel((0, 0))
        picture.info["transparency"] = transparent_index
    return picture, colour


@pytest.mark.parametrize(
    ("mode", "image_format"), [("RGBA", "PNG"), ("RGBA", "WEBP"), ("LA", "PNG"), ("P", "PNG"), ("P", "GIF")]
)
@pytest.mark.parametrize(
    ("background", "background_rgb"),
    [("black", (0, 0, 0)), ("white", (255, 255, 255)), ("grey", (128, 128, 128))],
)
def test_transparent_areas_are_composited_onto_the_chosen_background(
    tmp_path, mode, image_format, background, background_rgb
):
    picture, colour = half_transparent(mode)
    options = {"lossless": True} if image_format == "WEBP" else {}
    if mode == "P":
        options["transparency"] = picture.info["transparency"]

    decoded = decode_bytes(tmp_path, encoded(picture, image_format, **options), background=background)

    pixels = np.asarray(decoded.picture)
    assert (pixels[:, : WIDTH_PX // 2] == background_rgb).all()
    assert np.abs(as_array(decoded.picture)[:, WIDTH_PX // 2 :] - colour).max() <= 1


def test_transparency_defaults_to_black_and_partial_alpha_blends(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[...] = (255, 0, 100, 128)  # half-transparent

    on_black = decode_bytes(tmp_path, encoded(Image.fromarray(rgba), "PNG"), "on_black")
    on_white = decode_bytes(tmp_path, encoded(Image.fromarray(rgba), "PNG"), "on_white", background="white")

    assert np.abs(as_array(on_black.picture)[0, 0] - (128, 0, 50)).max() <= 1
    assert np.abs(as_array(on_white.picture)[0, 0] - (255, 127, 177)).max() <= 1


def corner_marked(width_px: int, height_px: int) -> Image.Image:
    """Grey, with a red block in the top-left corner, so any rotation shows."""
    pixels = np.full((height_px, width_px, 3), 128, dtype=np.uint8)
    pixels[: height_px // 3, : height_px // 3] = (255, 0, 0)
    return Image.fromarray(pixels)


@pytest.mark.parametrize(
    ("orientation", "upright_size", "red_corner"),
    [
        (1, (60, 30), "top left"),
        (3, (60, 30), "bottom right"),  # upside down
        (6, (30, 60), "top right"),  # taken with the camera turned right: rotate 90 degrees clockwise
        (8, (30, 60), "bottom left"),  # turned left: rotate 90 degrees anticlockwise
    ],
)
def test_exif_orientation_is_applied_and_the_reported_size_is_upright(
    tmp_path, orientation, upright_size, red_corner
):
    path = tmp_path / "sideways.jpg"
    save_with_orientation(corner_marked(60, 30), path, orientation)

    decoded = decode_image(path)

    assert decoded.picture.size == upright_size
    assert decoded.source_size == upright_size
    width, height = upright_size
    corners = {
        "top left": (2, 2),
        "top right": (width - 3, 2),
        "bottom left": (2, height - 3),
        "bottom right": (width - 3, height - 3),
    }
    for name, (column, row) in corners.items():
        red, green, _ = decoded.picture.getpixel((column, row))
        is_red = red > 200 and green < 60
        assert is_red == (name == red_corner), f"{name} corner of orientation {orientation}"


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), colour) for colour in ("red", "lime", "blue")]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as written:
        assert written.n_frames == 3

    decoded = decode_image(path)

    assert decoded.source_format == "GIF"
    assert (np.asarray(decoded.picture) == (255, 0, 0)).all()


@pytest.mark.parametrize(
    ("name", "image_format"), [("really_a_png.jpg", "PNG"), ("no_extension", "JPEG"), ("photo.txt", "WEBP")]
)
def test_the_format_comes_from_the_content_not_the_name(tmp_path, name, image_format):
    decoded = decode_bytes(tmp_path, encoded(lfw_face_rgb(2, 24, 24), image_format), name)

    assert decoded.source_format == image_format
    assert decoded.picture.size == (24, 24)


@pytest.mark.parametrize(
    ("content", "expected_reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"a shopping list, not a picture\n", "not an image PIL can read"),
        (
            b"\x00\x00\x00\x18ftypheic" + bytes(64),
            "HEIC/HEIF photo, which PIL cannot read; export it as JPEG",
        ),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "PDF file, not a picture PIL can read"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG file, not a picture PIL can read"),
    ],
    ids=["empty", "text", "heic", "pdf", "svg"],
)
def test_files_that_are_not_readable_pictures_say_what_they_are(tmp_path, content, expected_reason):
    with pytest.raises(UnusableImage) as raised:
        decode_bytes(tmp_path, content, "IMG_0001.jpg")

    assert str(raised.value).startswith(expected_reason)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])
def test_truncated_files_of_every_common_format_are_reported_as_corrupt(tmp_path, image_format):
    content = truncated(encoded(noise(WIDTH_PX, HEIGHT_PX), image_format))

    with pytest.raises(UnusableImage, match=r"^truncated or corrupt (\w+ )?image: "):
        decode_bytes(tmp_path, content)


def test_a_missing_file_says_it_cannot_be_read(tmp_path):
    with pytest.raises(UnusableImage, match="^cannot read file"):
        decode_image(tmp_path / "gone.png")


def test_pictures_over_the_megapixel_limit_are_refused_naming_their_pixel_count(tmp_path, monkeypatch):
    monkeypatch.setattr(core.decode, "MAX_SOURCE_MEGAPIXELS", 0.05)

    with pytest.raises(UnusableImage) as raised:
        decode_bytes(tmp_path, encoded(noise(400, 300), "PNG"))

    assert str(raised.value).startswith("too large: 400x300 = 0.1 MP (limit 0.05 MP)")


def test_the_megapixel_limit_is_checked_before_any_pixel_is_decoded(tmp_path, monkeypatch):
    monkeypatch.setattr(core.decode, "MAX_SOURCE_MEGAPIXELS", 0.05)
    header_only = truncated(encoded(noise(400, 300), "PNG"))  # decoding it would fail, and PNG
    # decodes every pixel when its EXIF is read, so the limit must come before that too.

    with pytest.raises(UnusableImage, match="^too large: 400x300"):
        decode_bytes(tmp_path, header_only)


def test_a_large_jpeg_decodes_reduced_but_reports_its_original_size(tmp_path):
    path = tmp_path / "camera.jpg"
    Image.fromarray(gradient(1024, 768)).convert("RGB").save(path, quality=80)

    decoded = decode_image(path, draft_size_px=64)

    assert decoded.source_size == (1024, 768)
    assert 64 <= min(decoded.picture.size) < 768
    assert decoded.picture.size[0] * 768 == decoded.picture.size[1] * 1024  # same shape


def test_an_unknown_background_is_rejected_by_name(tmp_path):
    with pytest.raises(ValueError, match="background='pink'"):
        decode_bytes(tmp_path, encoded(noise(8, 8), "PNG"), background="pink")


def test_a_picture_smaller_than_eight_pixels_either_way_is_skipped_naming_its_size(tmp_path):
    with pytest.raises(UnusableImage, match=r"too small to learn from: 2000x5 px"):
        decode_bytes(tmp_path, encoded(Image.new("RGB", (2000, 5)), "PNG"))
