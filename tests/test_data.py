"""Tests for core.data: folder scanning, decoding, fitting, caching and the tf.data pipeline.

Every test draws its own small pictures into tmp_path, so nothing depends on local files
except the last test, which checks the shipped default dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import (
    SUPPORTED_EXTENSIONS,
    DatasetError,
    LoadedDataset,
    clear_cache,
    load_folder,
    load_image,
    make_training_dataset,
    scan_folder,
    suggest_resolution,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
RESOLUTION_PX = 16
EXIF_ORIENTATION_TAG = 0x0112
ROTATED_90_CLOCKWISE = 6


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def gradient(width_px: int, height_px: int) -> np.ndarray:
    """A smooth 8-bit grayscale ramp: every pixel value from 0 to 255 appears."""
    ramp = np.linspace(0, 255, width_px * height_px).reshape(height_px, width_px)
    return np.rint(ramp).astype(np.uint8)


def write_mixed_folder(folder: Path) -> None:
    """Five usable images in different formats and shapes, plus the usual rubbish."""
    folder.mkdir(parents=True, exist_ok=True)
    random = np.random.default_rng(0)

    # Usable: RGB JPEG (wide), grayscale PNG (tall), RGBA PNG, palette GIF, 16-bit PNG.
    colour = random.integers(0, 256, size=(40, 80, 3), dtype=np.uint8)
    Image.fromarray(colour).save(folder / "wide_colour.jpg", quality=90)
    Image.fromarray(gradient(30, 50)).save(folder / "tall_gray.png")
    rgba = np.dstack([colour[:, :40], np.full((40, 40), 128, dtype=np.uint8)])
    Image.fromarray(rgba).save(folder / "half_transparent.png")
    (folder / "sub").mkdir()
    Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE).save(
        folder / "sub" / "palette.gif"
    )
    sixteen_bit = gradient(24, 24).astype(np.uint16) * 257
    Image.fromarray(sixteen_bit).save(folder / "deep_gray.png")

    # Broken or not images at all.
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "not_really.png").write_text("this is a shopping list, not a picture\n")
    full_jpeg = folder / "full.jpeg.tmp"
    Image.fromarray(random.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(
        full_jpeg, format="JPEG"
    )
    data = full_jpeg.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    full_jpeg.unlink()
    (folder / "notes.txt").write_text("camera settings\n")

    # Clutter that must be ignored without a word.
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / ".hidden").mkdir()
    Image.fromarray(gradient(8, 8)).save(folder / ".hidden" / "thumbnail.png")


def skipped_reasons(dataset: LoadedDataset) -> dict[str, str]:
    return {skipped.path.name: skipped.reason for skipped in dataset.skipped}


def test_mixed_folder_loads_every_good_image_and_skips_each_broken_file_with_a_reason(tmp_path):
    write_mixed_folder(tmp_path)

    dataset = load_folder(tmp_path, RESOLUTION_PX)

    assert dataset.count == 5
    assert [path.relative_to(tmp_path).as_posix() for path in dataset.paths] == [
        "deep_gray.png",
        "half_transparent.png",
        "sub/palette.gif",
        "tall_gray.png",
        "wide_colour.jpg",
    ]
    reasons = skipped_reasons(dataset)
    assert set(reasons) == {"empty.jpg", "not_really.png", "truncated.jpg", "notes.txt"}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["not_really.png"] == "not an image (PIL cannot identify it)"
    assert reasons["truncated.jpg"].startswith("truncated or corrupt image: ")
    assert reasons["notes.txt"].startswith("unsupported extension .txt; supported: .jpg")


def test_loaded_images_are_uint8_squares_with_three_channels_and_their_original_sizes(tmp_path):
    write_mixed_folder(tmp_path)

    dataset = load_folder(tmp_path, RESOLUTION_PX)

    assert dataset.images.shape == (5, RESOLUTION_PX, RESOLUTION_PX, 3)
    assert dataset.images.dtype == np.uint8
    assert not dataset.images.flags.writeable
    sizes = dict(zip((path.name for path in dataset.paths), dataset.source_sizes))
    assert sizes["wide_colour.jpg"] == (80, 40)
    assert sizes["tall_gray.png"] == (30, 50)
    assert len(dataset.fingerprint) == 64


def test_scan_ignores_hidden_files_and_clutter_but_reports_unsupported_extensions(tmp_path):
    write_mixed_folder(tmp_path)
    (tmp_path / "Thumbs.db").write_bytes(b"\x00")
    (tmp_path / "README.md").write_text("about these photos\n")

    candidates, skipped = scan_folder(tmp_path)

    names = {path.name for path in candidates} | {item.path.name for item in skipped}
    assert ".DS_Store" not in names
    assert "thumbnail.png" not in names
    assert "Thumbs.db" not in names
    assert "README.md" not in names
    assert [item.path.name for item in skipped] == ["notes.txt"]
    assert all(path.suffix.lower() in SUPPORTED_EXTENSIONS for path in candidates)


def test_pad_mode_keeps_the_whole_photo_with_black_borders(tmp_path):
    path = tmp_path / "wide_white.png"
    Image.new("RGB", (64, 32), "white").save(path)

    image, original_size = load_image(path, RESOLUTION_PX, "pad")

    assert original_size == (64, 32)
    assert (image[:4] == 0).all() and (image[-4:] == 0).all()
    assert (image[4:-4] == 255).all()


def test_crop_mode_fills_the_square_with_the_centre_of_the_photo(tmp_path):
    path = tmp_path / "wide_white.png"
    Image.new("RGB", (64, 32), "white").save(path)

    image, _ = load_image(path, RESOLUTION_PX, "crop")

    assert (image == 255).all()


def test_transparent_pixels_become_black(tmp_path):
    path = tmp_path / "transparent.png"
    pixels = np.zeros((20, 20, 4), dtype=np.uint8)
    pixels[..., :3] = 255
    pixels[:, 10:, 3] = 255  # right half opaque white, left half fully transparent white
    Image.fromarray(pixels).save(path)

    image, _ = load_image(path, 20, "pad")

    assert (image[:, :9] == 0).all()
    assert (image[:, 11:] == 255).all()


def test_exif_rotation_is_applied_before_fitting(tmp_path):
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = ROTATED_90_CLOCKWISE
    Image.new("RGB", (64, 32), "white").save(path, exif=exif, quality=95)

    image, original_size = load_image(path, RESOLUTION_PX, "pad")

    # Upright the photo is tall, so the black bars are at the sides, not top and bottom.
    assert original_size == (32, 64)
    assert image[:, :3].max() < 10 and image[:, -3:].max() < 10
    assert image[:, 5:-5].min() > 245


def test_large_jpeg_decodes_reduced_but_reports_its_original_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(gradient(2400, 1600)).convert("RGB").save(path, quality=80)

    image, original_size = load_image(path, 32, "crop")

    assert original_size == (2400, 1600)
    assert image.shape == (32, 32, 3)


def test_eight_bit_and_sixteen_bit_copies_of_one_picture_load_identically(tmp_path):
    picture = gradient(40, 30)
    Image.fromarray(picture).save(tmp_path / "eight_bit.png")
    Image.fromarray(picture.astype(np.uint16) * 257).save(tmp_path / "sixteen_bit.png")
    assert Image.open(tmp_path / "sixteen_bit.png").mode.startswith("I")

    eight_bit, _ = load_image(tmp_path / "eight_bit.png", RESOLUTION_PX, "pad")
    sixteen_bit, _ = load_image(tmp_path / "sixteen_bit.png", RESOLUTION_PX, "pad")

    assert eight_bit.max() > 200  # a real picture, not one clipped to white or black
    np.testing.assert_array_equal(eight_bit, sixteen_bit)


def test_first_training_batch_is_float32_with_black_at_minus_one_and_white_at_plus_one():
    black = np.zeros((RESOLUTION_PX, RESOLUTION_PX, 3), dtype=np.uint8)
    white = np.full((RESOLUTION_PX, RESOLUTION_PX, 3), 255, dtype=np.uint8)
    images = np.stack([black, white, black])
    images.flags.writeable = False  # as load_folder hands them over
    batch_size = 8  # more than the three images: batches must run across passes

    batch = next(iter(make_training_dataset(images, batch_size=batch_size, seed=0))).numpy()

    assert batch.dtype == np.float32
    assert batch.shape == (batch_size, RESOLUTION_PX, RESOLUTION_PX, 3)
    assert set(np.unique(batch).tolist()) == {-1.0, 1.0}


def test_missing_folder_raises_a_dataset_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_photos"

    with pytest.raises(DatasetError, match="no_such_photos.*does not exist"):
        load_folder(missing, RESOLUTION_PX)


def test_empty_folder_raises_a_dataset_error_naming_it(tmp_path):
    empty = tmp_path / "empty_album"
    empty.mkdir()

    with pytest.raises(DatasetError, match="empty_album"):
        load_folder(empty, RESOLUTION_PX)


def test_folder_of_only_broken_files_lists_what_was_skipped_and_why(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello\n")

    with pytest.raises(DatasetError) as raised:
        load_folder(tmp_path, RESOLUTION_PX)

    message = str(raised.value)
    assert "2 file(s) skipped" in message
    assert "empty.jpg: empty file (0 bytes)" in message
    assert "notes.txt: unsupported extension .txt" in message


def test_unknown_fit_mode_is_rejected_by_name(tmp_path):
    with pytest.raises(ValueError, match="fit_mode='stretch'"):
        load_folder(tmp_path, RESOLUTION_PX, fit_mode="stretch")


def test_suggested_resolution_for_tiny_faces_is_32():
    assert suggest_resolution([(25, 25)] * 100) == 32


def test_suggested_resolution_follows_the_median_short_side_up_to_the_preferred_maximum():
    assert suggest_resolution([(50, 70), (52, 90), (1000, 40)]) == 56
    assert suggest_resolution([(3000, 2000)] * 3) == 64
    assert suggest_resolution([(3000, 2000)] * 3, prefer_max_px=128) == 128


def test_cache_returns_the_same_dataset_until_a_file_or_option_changes(tmp_path):
    Image.fromarray(gradient(20, 20)).save(tmp_path / "a.png")
    Image.fromarray(gradient(30, 20)).save(tmp_path / "b.png")

    first = load_folder(tmp_path, RESOLUTION_PX)
    second = load_folder(tmp_path, RESOLUTION_PX)
    assert second is first

    other_resolution = load_folder(tmp_path, 20)
    assert other_resolution is not first

    changed_file = tmp_path / "b.png"
    Image.fromarray(255 - gradient(30, 20)).save(changed_file)
    modified_ns = changed_file.stat().st_mtime_ns + 1_000_000_000
    os.utime(changed_file, ns=(modified_ns, modified_ns))  # filesystems with coarse clocks
    after_change = load_folder(tmp_path, RESOLUTION_PX)

    assert after_change is not first
    assert after_change.fingerprint != first.fingerprint
    assert not np.array_equal(after_change.images, first.images)


def test_default_dataset_loads_one_hundred_faces_at_32_px_with_nothing_skipped():
    dataset = load_folder(REPOSITORY_ROOT / "GANs_dataset", 32)

    assert dataset.count == 100
    assert dataset.skipped == ()
    assert dataset.images.shape == (100, 32, 32, 3)
    assert suggest_resolution(dataset.source_sizes) == 32
