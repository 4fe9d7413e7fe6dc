"""Tests for core.losses: each loss gives its textbook value on small hand-picked logits,
label smoothing moves only the real term, G's losses fall as D rates its images higher,
the gradient penalties measure D's gradient (checked on linear Ds, whose gradient is
their weight vector), and an unknown loss is refused by name.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from core.config import LOSSES
from core.losses import (
    coverage_penalty, discriminator_loss, generator_loss, gradient_penalty, mode_seeking_penalty, r1_penalty,
    sinkhorn_plan,
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


def test_the_coverage_penalty_is_zero_for_the_photos_themselves_in_any_order_and_grows_when_one_is_left_out():
    photos = tf.random.stateless_uniform([4, 8, 8, 3], seed=[0, 3], minval=-1.0, maxval=1.0)
    fakes_missing_one = tf.concat([photos[:3], photos[:1]], axis=0)  # no image near photo 3

    assert float(coverage_penalty(photos, photos)) == pytest.approx(0.0, abs=1e-4)
    assert float(coverage_penalty(photos[::-1], photos)) == pytest.approx(0.0, abs=1e-4)
    # Photo 3 must take a whole image's share of mass from one of the others: about a quarter of
    # the mean squared distance from photo 3 to them.
    to_photo_3 = tf.reduce_mean(tf.square(photos[3:] - photos[:3]), axis=[1, 2, 3])
    assert float(coverage_penalty(fakes_missing_one, photos)) >= 0.9 * float(tf.reduce_min(to_photo_3)) / 4


def test_the_coverage_gradient_sends_a_surplus_image_to_the_photo_nobody_resembles():
    photos = tf.constant([[[[1.0]]], [[[-1.0]]]]) * tf.ones([2, 4, 4, 3])
    fakes = tf.Variable(tf.constant([[[[0.9]]], [[[0.8]]]]) * tf.ones([2, 4, 4, 3]))  # both near photo 0

    with tf.GradientTape() as tape:
        penalty = coverage_penalty(fakes, photos)
    gradient = tape.gradient(penalty, fakes).numpy()
    stepped = fakes - 0.5 * gradient

    # The cheapest plan pairs 0.9 with +1 and 0.8 with -1: 0.8 is pushed down, though +1 is nearer.
    assert np.all(gradient[0] < 0.0) and np.all(gradient[1] > 0.0)
    assert float(coverage_penalty(stepped, photos)) < float(penalty)


def test_the_sinkhorn_plan_has_uniform_margins_and_finds_the_one_cheap_pairing():
    pairing = tf.one_hot([2, 0, 3, 1], 4)
    plan = sinkhorn_plan(1.0 - pairing).numpy()

    np.testing.assert_allclose(plan.sum(axis=1), 0.25, rtol=1e-3)
    np.testing.assert_allclose(plan.sum(axis=0), 0.25, rtol=1e-3)
    assert np.all(plan.argmax(axis=1) == [2, 0, 3, 1]) and plan.max(axis=1).min() > 0.24
