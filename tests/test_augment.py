"""Tests for core.augment: each operation changes images the way DiffAugment does (colour
shifts, a zero-filled translation, a cut-out square of half the side), the probability
decides per image, seeds make it repeatable, gradients flow through it, and the ADA
controller moves the probability towards its target within [0, 1].

The images are random pixels kept away from 0, so a zero marks a pixel the operation filled.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from core.augment import (
    ADA_IMAGES_TO_FULL_STRENGTH,
    CUTOUT_FRACTION,
    TRANSLATION_FRACTION,
    adjusted_probability,
    augment,
)
from core.config import AUGMENTATIONS

SIDE_PX = 16
BATCH = 32
SEED = tf.constant([3, 7], dtype=tf.int32)


def images(count: int = BATCH, seed: int = 0) -> tf.Tensor:
    """Random images in [0.1, 1] (inside the model range [-1, 1]), never exactly 0."""
    pixels = np.random.default_rng(seed).uniform(0.1, 1.0, (count, SIDE_PX, SIDE_PX, 3))
    return tf.constant(pixels, dtype=tf.float32)


def changed_images(before: tf.Tensor, after: tf.Tensor) -> np.ndarray:
    """(N,) bool: which images differ anywhere."""
    return np.any(before.numpy() != after.numpy(), axis=(1, 2, 3))


def shifted(picture: np.ndarray, offset_y: int, offset_x: int) -> np.ndarray:
    """picture moved down offset_y and right offset_x; the exposed border is 0."""
    moved = np.zeros_like(picture)
    height, width = picture.shape[:2]
    moved[max(offset_y, 0) : height + min(offset_y, 0), max(offset_x, 0) : width + min(offset_x, 0)] = picture[
        max(-offset_y, 0) : height - max(offset_y, 0), max(-offset_x, 0) : width - max(offset_x, 0)
    ]
    return moved


@pytest.mark.parametrize("policy", [AUGMENTATIONS, ("color",), ("translation",), ("cutout",)])
def test_with_probability_zero_every_image_comes_back_exactly_as_it_was(policy):
    original = images()

    assert np.array_equal(augment(original, policy, 0.0, SEED).numpy(), original.numpy())


def test_an_empty_policy_changes_nothing_even_with_probability_one():
    original = images()

    assert np.array_equal(augment(original, (), 1.0, SEED).numpy(), original.numpy())


@pytest.mark.parametrize("operation", ["color", "cutout"])
def test_with_probability_one_colour_and_cutout_change_every_image(operation):
    original = images()

    augmented = augment(original, (operation,), 1.0, SEED)

    assert augmented.shape == original.shape
    assert changed_images(original, augmented).all()


def test_translation_shifts_each_image_by_at_most_an_eighth_and_fills_the_gap_with_zero():
    original = images()
    largest_shift_px = round(SIDE_PX * TRANSLATION_FRACTION)  # 2 px at 16 px

    augmented = augment(original, ("translation",), 1.0, SEED).numpy()

    assert augmented.shape == original.shape
    offsets = []
    for before, after in zip(original.numpy(), augmented):
        matches = [
            (offset_y, offset_x)
            for offset_y in range(-largest_shift_px, largest_shift_px + 1)
            for offset_x in range(-largest_shift_px, largest_shift_px + 1)
            if np.array_equal(after, shifted(before, offset_y, offset_x))
        ]
        assert len(matches) == 1, "each image is one zero-filled shift of itself"
        offsets.append(matches[0])
    assert sum(offset != (0, 0) for offset in offsets) > BATCH // 2  # most images do move
    assert len(set(offsets)) > 5  # and each image draws its own shift


def test_cutout_zeroes_one_square_half_the_side_and_leaves_every_other_pixel_alone():
    original = images()
    side_px = round(SIDE_PX * CUTOUT_FRACTION)  # 8 px at 16 px

    augmented = augment(original, ("cutout",), 1.0, SEED).numpy()

    erased = np.all(augmented == 0, axis=-1)
    whole_squares = 0
    for before, after, mask in zip(original.numpy(), augmented, erased):
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # The erased pixels are one rectangle: the square, clipped where it leaves the image.
        assert mask.sum() == len(rows) * len(columns)
        assert mask[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1].all()
        assert len(rows) <= side_px and len(columns) <= side_px
        for kept, span in ((rows, SIDE_PX), (columns, SIDE_PX)):
            if kept.min() > 0 and kept.max() < span - 1:  # not clipped on this axis
                assert len(kept) == side_px
        whole_squares += mask.sum() == side_px * side_px
        assert np.array_equal(after[~mask], before[~mask])
    assert whole_squares > 0


def test_each_image_is_augmented_whole_or_not_at_all_with_the_given_probability():
    original = images(count=64)
    fully = augment(original, ("color",), 1.0, SEED).numpy()

    half = augment(original, ("color",), 0.5, SEED).numpy()

    untouched = np.all(half == original.numpy(), axis=(1, 2, 3))
    augmented = np.all(half == fully, axis=(1, 2, 3))
    assert np.all(untouched ^ augmented)
    assert 16 <= augmented.sum() <= 48


def test_the_same_seed_gives_the_same_augmentation_and_another_seed_a_different_one():
    original = images()

    first = augment(original, AUGMENTATIONS, 1.0, SEED).numpy()
    again = augment(original, AUGMENTATIONS, 1.0, SEED).numpy()
    other = augment(original, AUGMENTATIONS, 1.0, tf.constant([3, 8], dtype=tf.int32)).numpy()

    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("policy", [AUGMENTATIONS, ("color",), ("translation",), ("cutout",)])
def test_gradients_flow_through_the_augmentation_to_the_input_images(policy):
    original = images(count=8)
    weights = tf.constant(np.random.default_rng(1).normal(size=original.shape), dtype=tf.float32)

    with tf.GradientTape() as tape:
        tape.watch(original)
        score = tf.reduce_sum(augment(original, policy, 1.0, SEED) * weights)
    gradient = tape.gradient(score, original)

    assert gradient is not None
    assert np.all(np.isfinite(gradient.numpy()))
    assert np.any(gradient.numpy() != 0)


def test_cutout_passes_no_gradient_to_the_pixels_it_erased():
    original = images(count=8)
    with tf.GradientTape() as tape:
        tape.watch(original)
        augmented = augment(original, ("cutout",), 1.0, SEED)
        score = tf.reduce_sum(augmented)
    gradient = tape.gradient(score, original).numpy()

    erased = augmented.numpy() == 0
    assert np.all(gradient[erased] == 0)
    assert np.all(gradient[~erased] == 1)


BATCH_SIZE = 64
ADA_STEP = BATCH_SIZE / ADA_IMAGES_TO_FULL_STRENGTH


@pytest.mark.parametrize(
    ("probability", "real_sign_mean", "expected"),
    [
        (0.5, 0.9, 0.5 + ADA_STEP),  # D too sure of the real images: augment more
        (0.5, 0.3, 0.5 - ADA_STEP),  # D unsure: augment less
        (0.5, 0.6, 0.5),  # on target: stay
        (1.0, 1.0, 1.0),  # never above 1
        (0.0, -1.0, 0.0),  # never below 0
        (0.999, 1.0, 1.0),
        (0.001, 0.0, 0.0),
    ],
)
def test_the_ada_controller_moves_the_probability_towards_the_target_within_zero_and_one(
    probability, real_sign_mean, expected
):
    adjusted = adjusted_probability(tf.constant(probability), tf.constant(real_sign_mean), 0.6, BATCH_SIZE)

    assert float(adjusted) == pytest.approx(expected, abs=1e-6)
