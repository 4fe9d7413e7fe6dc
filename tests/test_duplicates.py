"""Tests for core.duplicates: byte-identical files and near copies are found, each pointing
at the first photo of its group, and distinct faces are never mistaken for copies.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import load_folder
from core.duplicates import Duplicate, find_duplicates
from core.framing import fit_to_square
from pictures import LFW_FACE_COUNT, lfw_face, noise

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
RESOLUTION_PX = 32


def square_of(picture: Image.Image, resolution_px: int = RESOLUTION_PX) -> np.ndarray:
    return fit_to_square(picture.convert("RGB"), resolution_px, "pad").pixels


def near_copy(picture: Image.Image) -> Image.Image:
    """What a re-export does: resized to three quarters and re-saved as a JPEG at quality 70."""
    smaller = picture.convert("RGB").resize((picture.width * 3 // 4, picture.height * 3 // 4))
    buffer = io.BytesIO()
    smaller.save(buffer, format="JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_files_with_the_same_bytes_are_exact_duplicates_of_the_first_one():
    squares = np.stack([square_of(noise(32, 32, seed)) for seed in range(4)])

    duplicates = find_duplicates(["hash-a", "hash-b", "hash-a", "hash-a"], squares)

    assert duplicates == [Duplicate(2, 0, "exact"), Duplicate(3, 0, "exact")]


def test_a_resized_and_recompressed_copy_is_a_near_duplicate_of_its_original():
    original = lfw_face(18, 64)
    squares = np.stack([square_of(original), square_of(lfw_face(91, 64)), square_of(near_copy(original))])

    duplicates = find_duplicates(["original", "other face", "copy"], squares)

    assert duplicates == [Duplicate(2, 0, "near")]


def test_a_brighter_copy_with_more_contrast_is_still_a_near_duplicate():
    original = square_of(lfw_face(3, 64))
    brighter = np.clip(original.astype(np.float64) * 1.2 + 15, 0, 255).astype(np.uint8)

    duplicates = find_duplicates(["original", "brighter"], np.stack([original, brighter]))

    assert duplicates == [Duplicate(1, 0, "near")]


def test_exact_copies_of_a_near_copy_point_at_the_first_of_their_own_bytes():
    original = lfw_face(5, 64)
    squares = np.stack([square_of(original), square_of(near_copy(original)), square_of(near_copy(original))])

    duplicates = find_duplicates(["a", "b", "b"], squares)

    assert duplicates == [Duplicate(1, 0, "near"), Duplicate(2, 1, "exact")]


@pytest.mark.parametrize("resolution_px", [16, 32])
def test_one_hundred_distinct_lfw_faces_contain_no_duplicates(resolution_px):
    squares = np.stack([square_of(lfw_face(index), resolution_px) for index in range(LFW_FACE_COUNT)])

    assert find_duplicates([f"face {index}" for index in range(LFW_FACE_COUNT)], squares) == []


def test_flat_pictures_are_not_near_duplicates_of_each_other():
    shape = (RESOLUTION_PX, RESOLUTION_PX, 3)
    squares = np.stack([np.full(shape, value, dtype=np.uint8) for value in (0, 90, 255)])

    assert find_duplicates(["black", "grey", "white"], squares) == []


def test_the_default_dataset_has_no_near_duplicates_at_32_px():
    dataset = load_folder(REPOSITORY_ROOT / "GANs_dataset", RESOLUTION_PX)

    assert dataset.count == 100
    assert dataset.found_duplicates == ()
    hashes = [record.content_sha256 for record in dataset.records]
    assert find_duplicates(hashes, dataset.all_images) == []
