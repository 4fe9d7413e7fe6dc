"""Tests for core.losses: each loss gives its textbook value on small hand-picked logits,
label smoothing moves only the real term, G's losses fall as D rates its images higher,
the gradient penalties measure D's gradient (checked on linear Ds, whose gradient is
their weight vector), the coverage term's bounties share the photos out equally, and an
unknown loss is refused by name.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from core.config import LOSSES
from core.losses import (
    CLAIM_MARGIN, claim_side_px, claimed_photo_penalty, discriminator_loss, generator_loss, gradient_penalty,
    mode_seeking_penalty, r1_penalty,
)

IMAGE_SHAPE = (4, 8, 8, 3)
SEED = tf.constant([5, 9], dtype=tf.int32)


def logits(*values: float) -> tf.Tensor:
    return tf.constant(values, dtype=tf.float32)[:, tf.newaxis]


def linear_discriminator(weights: np.ndarray):
    """D(x) = <weights, x> per image: its gradient with respect to x is weights everywhere."""
    weight_tensor = tf.constant(weights, dtype=tf.float32)

    def discriminator(images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return tf.reduce_sum(images * weight_tensor, axis=[1, 2, 3])[:, tf.newaxis]

    return discriminator


def random_images(seed: int) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, IMAGE_SHAPE), dtype=tf.float32)


def unit_weights(seed: int = 0) -> np.ndarray:
    weights = np.random.default_rng(seed).normal(size=IMAGE_SHAPE[1:])
    return weights / np.linalg.norm(weights)


@pytest.mark.parametrize(
    ("loss", "real", "fake", "expected"),
    [
        ("non_saturating", (0.0, 0.0), (0.0, 0.0), 2 * math.log(2)),  # D undecided
        ("non_saturating", (20.0,), (-20.0,), 0.0),  # D right and sure
        ("non_saturating", (1.0,), (-1.0,), 2 * math.log(1 + math.exp(-1))),
        ("hinge", (2.0, 2.0), (-2.0, -2.0), 0.0),  # past both margins
        ("hinge", (0.0,), (0.0,), 2.0),
        ("hinge", (0.5, 3.0), (0.25, -4.0), 0.25 + 0.625),  # mean of relu(1 - r) + mean of relu(1 + f)
        ("least_squares", (1.0,), (0.0,), 0.0),  # real at 1, generated at 0
        ("least_squares", (0.0,), (1.0,), 1.0),
        ("least_squares", (3.0,), (-1.0,), 0.5 * (4.0 + 1.0)),
        ("wgan_gp", (1.0, 3.0), (0.5, -0.5), 0.0 - 2.0),  # mean fake - mean real
    ],
)
def test_the_discriminator_loss_has_its_textbook_value(loss, real, fake, expected):
    assert float(discriminator_loss(loss, logits(*real), logits(*fake))) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("loss", "fake", "expected"),
    [
        ("non_saturating", (0.0,), math.log(2)),
        ("non_saturating", (20.0, 20.0), 0.0),
        ("hinge", (1.0, 3.0), -2.0),
        ("wgan_gp", (1.0, 3.0), -2.0),
        ("least_squares", (1.0,), 0.0),
        ("least_squares", (0.0, 2.0), 0.5),
    ],
)
def test_the_generator_loss_has_its_textbook_value(loss, fake, expected):
    assert float(generator_loss(loss, logits(*fake))) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_generator_loss_falls_as_d_rates_generated_images_higher(loss):
    values = [float(generator_loss(loss, logits(fake))) for fake in (-2.0, -1.0, 0.0, 0.5, 1.0)]

    assert all(earlier > later for earlier, later in zip(values, values[1:]))


@pytest.mark.parametrize("loss", LOSSES)
def test_every_discriminator_loss_rises_as_d_rates_generated_images_higher(loss):
    real = logits(0.5)
    values = [float(discriminator_loss(loss, real, logits(fake))) for fake in (0.0, 0.25, 0.5, 1.0)]

    assert all(earlier < later for earlier, later in zip(values, values[1:]))


def test_label_smoothing_of_the_non_saturating_loss_lowers_the_real_target_only():
    real = logits(2.0)
    smoothing = 0.1

    for fake in (logits(-1.0), logits(3.0)):
        plain = float(discriminator_loss("non_saturating", real, fake))
        smoothed = float(discriminator_loss("non_saturating", real, fake, label_smoothing=smoothing))
        # Real term: cross-entropy with target 0.9 instead of 1; the fake term is untouched.
        real_difference = smoothing * (math.log(1 + math.exp(2.0)) - math.log(1 + math.exp(-2.0)))
        assert smoothed - plain == pytest.approx(real_difference, abs=1e-5)


def test_label_smoothing_of_least_squares_moves_the_real_target_to_one_minus_smoothing():
    assert float(discriminator_loss("least_squares", logits(0.9), logits(0.0), label_smoothing=0.1)) == pytest.approx(
        0.0, abs=1e-6
    )
    assert float(discriminator_loss("least_squares", logits(0.9), logits(0.5), label_smoothing=0.1)) == pytest.approx(
        0.5 * 0.25, abs=1e-6
    )


@pytest.mark.parametrize("loss", ["hinge", "wgan_gp"])
def test_label_smoothing_leaves_the_margin_and_wasserstein_losses_alone(loss):
    real, fake = logits(0.3, -0.2), logits(0.1, 0.4)

    assert float(discriminator_loss(loss, real, fake, label_smoothing=0.2)) == pytest.approx(
        float(discriminator_loss(loss, real, fake))
    )


def test_the_gradient_penalty_is_zero_for_a_d_whose_gradient_has_norm_one_everywhere():
    penalty = gradient_penalty(linear_discriminator(unit_weights()), random_images(1), random_images(2), SEED)

    assert float(penalty) == pytest.approx(0.0, abs=1e-6)


def test_the_gradient_penalty_is_the_squared_distance_of_the_gradient_norm_from_one():
    penalty = gradient_penalty(linear_discriminator(3.0 * unit_weights()), random_images(1), random_images(2), SEED)

    assert float(penalty) == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)


def test_the_r1_penalty_of_a_linear_d_is_its_squared_weight_norm():
    weights = 2.5 * unit_weights(seed=3)

    penalty = r1_penalty(linear_discriminator(weights), random_images(4))

    assert float(penalty) == pytest.approx(float(np.sum(weights**2)), rel=1e-5)


def test_the_r1_penalty_is_zero_for_a_d_that_ignores_its_input():
    def constant(images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return tf.zeros([tf.shape(images)[0], 1]) + 0.0 * images[:, :1, 0, 0]

    assert float(r1_penalty(constant, random_images(5))) == 0.0


@pytest.mark.parametrize("loss", LOSSES)
def test_every_configurable_loss_is_known_to_both_networks(loss):
    real, fake = logits(0.2), logits(-0.3)

    assert np.isfinite(float(discriminator_loss(loss, real, fake)))
    assert np.isfinite(float(generator_loss(loss, fake)))


def test_an_unknown_loss_is_refused_naming_it():
    with pytest.raises(ValueError, match="wasserstein"):
        discriminator_loss("wasserstein", logits(0.0), logits(0.0))
    with pytest.raises(ValueError, match="wasserstein"):
        generator_loss("wasserstein", logits(0.0))


def test_the_mode_seeking_penalty_is_the_inverse_ratio_of_image_to_z_distance():
    z = tf.constant([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # pairs (0, 2) and (1, 3): |dz| = 2
    varied = tf.reshape(tf.constant([0.0, 0.0, 1.0, 1.0]), [4, 1, 1, 1])  # |dimage| = 1
    collapsed = tf.zeros([4, 1, 1, 1])

    assert float(mode_seeking_penalty(varied, z)) == pytest.approx(2.0, rel=1e-3)  # 1 / (1 / 2)
    assert float(mode_seeking_penalty(collapsed, z)) > 1e4  # the same face for different z costs most


def test_the_mode_seeking_gradient_pushes_paired_images_apart():
    z = tf.random.stateless_normal([8, 4], seed=[0, 1])
    images = tf.Variable(tf.random.stateless_normal([8, 2, 2, 3], seed=[0, 2]) * 0.01)

    with tf.GradientTape() as tape:
        penalty = mode_seeking_penalty(images, z)
    stepped = images - 0.1 * tape.gradient(penalty, images)

    assert float(mode_seeking_penalty(stepped, z)) < float(penalty)


def claim_counts_over_steps(fakes: tf.Tensor, photos: tf.Tensor, steps: int) -> np.ndarray:
    """How often each photo is claimed by the same fixed images over many steps of bounty updates."""
    bounties = tf.zeros([photos.shape[0]])
    counts = np.zeros(photos.shape[0])
    for _ in range(steps):
        costs = tf.reduce_mean(tf.square(fakes[:, tf.newaxis] - photos[tf.newaxis]), axis=[2, 3, 4])
        claims = tf.argmin(costs - bounties[tf.newaxis, :], axis=1).numpy()
        counts += np.bincount(claims, minlength=photos.shape[0])
        _, bounties = claimed_photo_penalty(fakes, photos, bounties)
    return counts / counts.sum()


def test_photos_claimed_by_their_own_copies_cost_nothing_and_keep_their_bounties():
    photos = tf.random.stateless_uniform([4, 8, 8, 3], seed=[0, 3], minval=-1.0, maxval=1.0)
    bounties = tf.zeros([4])

    penalty, new_bounties = claimed_photo_penalty(photos[::-1], photos, bounties)

    assert float(penalty) == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_allclose(new_bounties.numpy(), 0.0, atol=1e-7)


def test_an_unclaimed_photos_bounty_rises_an_overclaimed_ones_falls_and_they_sum_to_zero():
    photos = tf.random.stateless_uniform([4, 8, 8, 3], seed=[1, 3], minval=-1.0, maxval=1.0)
    fakes = tf.concat([photos[:3], photos[:1]], axis=0)  # photo 0 twice, photo 3 never

    _, bounties = claimed_photo_penalty(fakes, photos, tf.zeros([4]))

    assert float(bounties[3]) > 0.0 and float(bounties[0]) < 0.0
    assert float(bounties[1]) == pytest.approx(0.0, abs=1e-7) and float(bounties[2]) == pytest.approx(0.0, abs=1e-7)
    assert float(tf.reduce_sum(bounties)) == pytest.approx(0.0, abs=1e-6)


def test_over_the_steps_every_photo_is_claimed_equally_though_all_images_resemble_one():
    photos = tf.constant([1.0, 0.0, -0.5, -1.0])[:, tf.newaxis, tf.newaxis, tf.newaxis] * tf.ones([4, 4, 4, 3])
    fakes = tf.constant([0.95, 0.9, 0.85, 0.8])[:, tf.newaxis, tf.newaxis, tf.newaxis] * tf.ones([4, 4, 4, 3])
    # Without bounties every image claims photo 0 (the nearest to all of them).
    assert claim_counts_over_steps(fakes, photos, 1).tolist() == [1.0, 0.0, 0.0, 0.0]

    shares = claim_counts_over_steps(fakes, photos, 3000)

    np.testing.assert_allclose(shares, 0.25, atol=0.05)


def test_the_claim_gradient_pulls_each_image_towards_the_photo_it_claims():
    photos = tf.constant([1.0, -1.0])[:, tf.newaxis, tf.newaxis, tf.newaxis] * tf.ones([2, 4, 4, 3])
    fakes = tf.Variable(tf.constant([0.5, -0.2])[:, tf.newaxis, tf.newaxis, tf.newaxis] * tf.ones([2, 4, 4, 3]))

    with tf.GradientTape() as tape:
        penalty, _ = claimed_photo_penalty(fakes, photos, tf.zeros([2]))
    gradient = tape.gradient(penalty, fakes).numpy()

    # mean over 2 images of the mean over 48 pixels of (fake - photo)^2: d/dfake = 2 (fake - photo) / 96
    np.testing.assert_allclose(gradient[0], 2 * (0.5 - 1.0) / 96, rtol=1e-5)
    np.testing.assert_allclose(gradient[1], 2 * (-0.2 + 1.0) / 96, rtol=1e-5)


def test_an_image_nearer_another_photo_than_its_claim_also_pays_the_difference_until_it_crosses_over():
    photos = tf.constant([1.0, -1.0])[:, tf.newaxis, tf.newaxis, tf.newaxis] * tf.ones([2, 4, 4, 3])
    bounties = tf.constant([0.0, 0.5])  # photo 1 is short of claims: 1.21 - 0.5 beats 0.81
    fake = tf.Variable(tf.fill([1, 4, 4, 3], 0.1))  # nearer photo 0 (cost 0.81) than photo 1 (1.21)

    with tf.GradientTape() as tape:
        penalty, _ = claimed_photo_penalty(fake, photos, bounties)
    gradient = tape.gradient(penalty, fake).numpy()

    # Its distance to photo 1 plus the difference to CLAIM_MARGIN times its distance to photo 0.
    assert float(penalty) == pytest.approx(1.21 + (1.21 - CLAIM_MARGIN * 0.81), rel=1e-5)
    expected = (2 * 2 * (0.1 + 1.0) - 2 * CLAIM_MARGIN * (0.1 - 1.0)) / 48  # d/dfake, 48 pixel values
    np.testing.assert_allclose(gradient, expected, rtol=1e-5)

    for _ in range(200):
        with tf.GradientTape() as tape:
            penalty, _ = claimed_photo_penalty(fake, photos, bounties)
        fake.assign_sub(2.0 * tape.gradient(penalty, fake))
    to_claim = float(tf.reduce_mean(tf.square(fake - photos[1])))
    to_other = float(tf.reduce_mean(tf.square(fake - photos[0])))
    assert to_claim < CLAIM_MARGIN * to_other  # it now resembles the photo it claims, by the margin


def test_large_images_claim_photos_at_most_64_px_on_a_side_averaged_down():
    assert [claim_side_px(side) for side in (16, 32, 48, 64, 80, 128, 160, 256)] == [16, 32, 48, 64, 40, 64, 40, 64]
    fakes = tf.random.stateless_uniform([3, 128, 128, 3], seed=[2, 3], minval=-1.0, maxval=1.0)
    photos = tf.random.stateless_uniform([5, 64, 64, 3], seed=[4, 3], minval=-1.0, maxval=1.0)
    averaged = tf.nn.avg_pool2d(fakes, 2, 2, "VALID")

    at_full_size, _ = claimed_photo_penalty(fakes, photos, tf.zeros([5]))
    averaged_first, _ = claimed_photo_penalty(averaged, photos, tf.zeros([5]))

    assert float(at_full_size) == pytest.approx(float(averaged_first), rel=1e-5)
