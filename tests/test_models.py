"""Tests for core.models: G and D shapes at several resolutions, G's output range, D's logits."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import TrainConfig
from core.architecture import channels_per_level, estimate_step_memory_bytes
from core.models import build_discriminator, build_generator

RESOLUTIONS_PX = (32, 48, 64, 96)
BATCH_SIZE = 5


def tiny_config(resolution_px: int) -> TrainConfig:
    return TrainConfig(resolution_px=resolution_px, width=8, latent_dim=8)


@pytest.mark.parametrize("resolution_px", RESOLUTIONS_PX)
def test_generator_output_matches_discriminator_input_at_the_configured_resolution(resolution_px):
    config = tiny_config(resolution_px)

    generator = build_generator(config)
    discriminator = build_discriminator(config)

    assert generator.input_shape == (None, config.latent_dim)
    assert generator.output_shape == (None, resolution_px, resolution_px, 3)
    assert discriminator.input_shape == generator.output_shape
    assert discriminator.output_shape == (None, 1)


@pytest.mark.parametrize("resolution_px", RESOLUTIONS_PX)
def test_generator_images_lie_in_minus_one_to_one_and_discriminator_gives_one_logit_each(resolution_px):
    config = tiny_config(resolution_px)
    generator = build_generator(config)
    discriminator = build_discriminator(config)
    # At initialisation G is close to linear in z (ReLU, inference-mode batch norm) and its
    # weights are small, so a huge z is what drives the output out to where tanh bounds it.
    z = 1e6 * np.random.default_rng(0).standard_normal((BATCH_SIZE, config.latent_dim)).astype(np.float32)

    images = np.asarray(generator(z, training=False))
    logits = np.asarray(discriminator(images, training=False))

    assert images.shape == (BATCH_SIZE, resolution_px, resolution_px, 3)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert np.abs(images).max() > 0.99
    assert logits.shape == (BATCH_SIZE, 1)
    assert np.isfinite(logits).all()


def test_channels_double_per_level_from_the_last_hidden_layer_and_stop_at_the_cap():
    assert channels_per_level(tiny_config(96)) == [64, 32, 16, 8]
    assert channels_per_level(TrainConfig(resolution_px=256, width=64)) == [512, 512, 512, 256, 128, 64]


def test_discriminator_has_no_batch_norm_so_each_score_depends_on_its_image_alone():
    # Minibatch std (on by default) deliberately shares one number across a group; without it
    # nothing else mixes images.
    config = tiny_config(32).replace(minibatch_std=False)
    discriminator = build_discriminator(config)
    images = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)

    alone = np.asarray(discriminator(images[:1], training=True))
    in_batch = np.asarray(discriminator(images, training=True))

    assert not any("batch_normalization" in layer.name for layer in discriminator.layers)
    np.testing.assert_allclose(alone[0], in_batch[0], rtol=1e-5, atol=1e-6)


def test_the_memory_estimate_grows_with_batch_and_resolution_and_flags_the_extreme_case():
    base = estimate_step_memory_bytes(TrainConfig(resolution_px=64, batch_size=64))

    assert estimate_step_memory_bytes(TrainConfig(resolution_px=64, batch_size=128)) == 2 * base
    assert estimate_step_memory_bytes(TrainConfig(resolution_px=128, batch_size=64)) > 3 * base
    assert estimate_step_memory_bytes(TrainConfig(resolution_px=32, batch_size=64)) < 0.5e9
    assert estimate_step_memory_bytes(TrainConfig(resolution_px=256, batch_size=256)) > 10e9


def test_minibatch_std_gives_d_a_channel_that_is_zero_for_identical_images_and_not_otherwise():
    from core.models import MinibatchStdDev

    layer = MinibatchStdDev()
    same = np.tile(np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype(np.float32), (8, 1, 1, 1))
    varied = np.random.default_rng(1).normal(size=(8, 4, 4, 3)).astype(np.float32)

    spread_of_same = np.asarray(layer(same))[..., -1]
    spread_of_varied = np.asarray(layer(varied))[..., -1]

    assert np.asarray(layer(same)).shape == (8, 4, 4, 4)
    np.testing.assert_allclose(np.asarray(layer(varied))[..., :3], varied)  # features pass through
    assert spread_of_same.max() < 1e-3
    assert spread_of_varied.min() > 0.5  # unit-normal features spread by about 0.9


@pytest.mark.parametrize("batch_size", [8, 6, 1])
def test_discriminator_with_minibatch_std_scores_batches_that_do_not_divide_into_groups(batch_size):
    config = TrainConfig(resolution_px=16, width=8, latent_dim=8, minibatch_std=True)
    discriminator = build_discriminator(config)

    scores = np.asarray(discriminator(np.zeros((batch_size, 16, 16, 3), dtype=np.float32)))

    assert scores.shape == (batch_size, 1)
    assert np.isfinite(scores).all()
    assert "minibatch_std" in [layer.name for layer in discriminator.layers]
