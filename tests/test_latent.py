"""Tests for core.latent: seeds to z, lerp and slerp, interpolation paths, and generating images."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import TrainConfig
from core.latent import generate_images, interpolate, lerp, seed_to_z, seeds_to_z, slerp

LATENT_DIM = 512
TINY_LATENT_DIM = 8


def tiny_generator():
    """A 16 px G whose pictures differ clearly from one z to the next.

    Freshly initialised DCGAN weights (std 0.02) shrink every picture to flat grey, so the
    weights are redrawn larger and batch norm gets running statistics unlike a batch's own.
    """
    from core.models import build_generator

    generator = build_generator(TrainConfig(resolution_px=16, width=8, latent_dim=TINY_LATENT_DIM))
    random = np.random.default_rng(0)
    for variable in generator.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("moving_variance"):
            value = random.uniform(0.5, 2.0, shape)
        elif variable.path.endswith("moving_mean"):
            value = random.normal(0.0, 0.5, shape)
        elif variable.path.endswith("gamma"):
            value = random.uniform(0.5, 1.5, shape)
        elif len(shape) > 1:  # a kernel
            value = random.normal(0.0, 1.5 / np.sqrt(np.prod(shape[:-1])), shape)
        else:
            value = random.normal(0.0, 0.1, shape)
        variable.assign(value.astype(np.float32))
    return generator


def test_a_seed_always_gives_the_same_standard_normal_z():
    first = seed_to_z(7, LATENT_DIM)
    again = seed_to_z(7, LATENT_DIM)

    assert first.shape == (LATENT_DIM,)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert abs(first.mean()) < 0.2 and 0.8 < first.std() < 1.2


def test_different_seeds_give_different_z():
    assert not np.allclose(seed_to_z(0, LATENT_DIM), seed_to_z(1, LATENT_DIM))


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed=-1"):
        seed_to_z(-1, LATENT_DIM)


def test_each_row_of_seeds_to_z_is_the_z_of_that_seed():
    seeds = [3, 0, 42, 3]

    batch = seeds_to_z(seeds, LATENT_DIM)

    assert batch.shape == (len(seeds), LATENT_DIM)
    assert batch.dtype == np.float32
    for row, seed in zip(batch, seeds):
        np.testing.assert_array_equal(row, seed_to_z(seed, LATENT_DIM))


def test_slerp_and_lerp_start_and_end_exactly_at_their_endpoints():
    start, end = seed_to_z(1, LATENT_DIM), seed_to_z(2, LATENT_DIM)

    for blend in (slerp, lerp):
        np.testing.assert_allclose(blend(start, end, 0.0), start, atol=1e-5)
        np.testing.assert_allclose(blend(start, end, 1.0), end, atol=1e-5)


def test_slerp_keeps_the_norm_of_gaussian_z_near_the_square_root_of_the_dimension():
    # Seeds whose own z lie near the typical norm; seed 1 happens to sit 8% inside it.
    start, end = seed_to_z(2, LATENT_DIM), seed_to_z(3, LATENT_DIM)
    expected_norm = np.sqrt(LATENT_DIM)

    norms = [np.linalg.norm(slerp(start, end, fraction)) for fraction in np.linspace(0, 1, 11)]
    midpoint_of_lerp = np.linalg.norm(lerp(start, end, 0.5))

    assert all(abs(norm - expected_norm) < 0.05 * expected_norm for norm in norms)
    # The straight line cuts inside the sphere: the reason slerp exists.
    assert midpoint_of_lerp < 0.8 * expected_norm


def test_slerp_of_identical_or_opposite_endpoints_gives_finite_values():
    z = seed_to_z(5, LATENT_DIM)

    same = slerp(z, z, 0.3)
    opposite = slerp(z, -z, 0.3)

    np.testing.assert_allclose(same, z, atol=1e-5)
    assert np.isfinite(opposite).all()
    np.testing.assert_allclose(opposite, lerp(z, -z, 0.3), atol=1e-5)


def test_interpolate_returns_frames_from_start_to_end_inclusive():
    start, end = seed_to_z(1, LATENT_DIM), seed_to_z(2, LATENT_DIM)

    path = interpolate(start, end, frames=5, method="lerp")

    assert path.shape == (5, LATENT_DIM)
    np.testing.assert_allclose(path[0], start, atol=1e-6)
    np.testing.assert_allclose(path[2], (start + end) / 2, atol=1e-5)
    np.testing.assert_allclose(path[-1], end, atol=1e-6)


def test_interpolate_rejects_an_unknown_method_by_name():
    z = seed_to_z(0, LATENT_DIM)

    with pytest.raises(ValueError, match="method='cubic'"):
        interpolate(z, z, frames=4, method="cubic")


@pytest.mark.parametrize("frames", [1, 0])
def test_interpolate_needs_at_least_two_frames(frames):
    z = seed_to_z(0, LATENT_DIM)

    with pytest.raises(ValueError, match=f"frames={frames} must be at least 2"):
        interpolate(z, z, frames=frames)


def test_a_z_gives_the_same_picture_alone_or_in_a_batch_with_other_z():
    generator = tiny_generator()
    z = seeds_to_z([11, 1, 2, 3, 4, 5], TINY_LATENT_DIM)

    alone = generate_images(generator, z[:1])
    in_batch = generate_images(generator, z)
    split_into_small_batches = generate_images(generator, z, batch_size=4)

    assert alone.shape == (1, 16, 16, 3) and alone.dtype == np.uint8
    assert in_batch.shape == (6, 16, 16, 3)
    # Different z really do give different pictures, so equality below means something.
    assert np.abs(in_batch[0].astype(int) - in_batch[1].astype(int)).mean() > 5
    # Kernels for other batch sizes may round differently: allow one level in 255.
    assert np.abs(alone[0].astype(int) - in_batch[0].astype(int)).max() <= 1
    assert np.abs(split_into_small_batches.astype(int) - in_batch.astype(int)).max() <= 1
