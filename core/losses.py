"""GAN losses on D's raw scores (logits): what D minimises and what G minimises.

    non_saturating  Goodfellow et al. 2014, G maximises log D(G(z)) (the DCGAN default)
    hinge           Lim & Ye 2017 / Miyato et al. 2018, used with spectral normalisation
    least_squares   Mao et al. 2017, scores pushed to 1 for real and 0 for generated
    wgan_gp         Gulrajani et al. 2017, Wasserstein critic with a gradient penalty

Label smoothing (one-sided, Salimans et al. 2016) lowers the real target of the
non-saturating and least-squares losses from 1 to 1 - smoothing. The mode-seeking term
(Mao et al. 2019) is added to G's loss: it grows when two different z give alike images.
The coverage term is added too: each generated image claims a training photo, by semi-discrete
optimal transport with bounties kept from step to step (Genevay et al. 2016), and G pays its
distance to that photo, so a photo that no generated image resembles costs G; a face that is
nearer to another photo than to its own pays the difference too.
"""

from __future__ import annotations

import tensorflow as tf

from core.config import LOSSES
from core.distribute import BatchShare, per_image_uniform

WGAN_GP_WEIGHT = 10.0  # the penalty weight of the WGAN-GP paper


def discriminator_loss(loss: str, real_logits: tf.Tensor, fake_logits: tf.Tensor, label_smoothing: float = 0.0) -> tf.Tensor:
    real_target = 1.0 - label_smoothing
    if loss == "non_saturating":
        # softplus(-x) = -log sigmoid(x); with a smoothed target the real term is a cross-entropy.
        real_term = real_target * tf.nn.softplus(-real_logits) + (1.0 - real_target) * tf.nn.softplus(real_logits)
        return tf.reduce_mean(real_term) + tf.reduce_mean(tf.nn.softplus(fake_logits))
    if loss == "hinge":
        return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
    if loss == "least_squares":
        return 0.5 * (tf.reduce_mean(tf.square(real_logits - real_target)) + tf.reduce_mean(tf.square(fake_logits)))
    if loss == "wgan_gp":
        return tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)
    raise ValueError(f"loss={loss!r} must be one of {LOSSES}")


def generator_loss(loss: str, fake_logits: tf.Tensor) -> tf.Tensor:
    if loss == "non_saturating":
        return tf.reduce_mean(tf.nn.softplus(-fake_logits))
    if loss in ("hinge", "wgan_gp"):
        return -tf.reduce_mean(fake_logits)
    if loss == "least_squares":
        return 0.5 * tf.reduce_mean(tf.square(fake_logits - 1.0))
    raise ValueError(f"loss={loss!r} must be one of {LOSSES}")


def gradient_penalty(
    discriminator, real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor, share: BatchShare | None = None
) -> tf.Tensor:
    """WGAN-GP: (||grad D(x_hat)|| - 1)^2 on random points between real and generated images.

    share: on one replica of several, which rows of the global batch these are (for the draws).
    """
    mix = per_image_uniform([tf.shape(real)[0], 1, 1, 1], seed, share)
    between = mix * real + (1.0 - mix) * fake
    with tf.GradientTape() as tape:
        tape.watch(between)
        scores = discriminator(between, training=True)
    gradients = tape.gradient(scores, between)
    norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def r1_penalty(discriminator, real: tf.Tensor) -> tf.Tensor:
    """R1 (Mescheder et al. 2018): the squared gradient of D on real images, to be scaled by gamma/2."""
    with tf.GradientTape() as tape:
        tape.watch(real)
        total_score = tf.reduce_sum(discriminator(real, training=True))
    gradients = tape.gradient(total_score, real)
    return tf.reduce_mean(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]))


MODE_SEEKING_EPSILON = 1e-5  # keeps 1 / ratio finite when two images are identical


def mode_seeking_penalty(images: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """MSGAN's term for G: 1 / (image distance / z distance) over pairs (i, i + batch/2).

    A G that maps different z to the same face has a small ratio, so a large penalty.
    Needs a batch of at least 2.
    """
    half = tf.shape(images)[0] // 2
    image_distance = tf.reduce_mean(tf.abs(images[:half] - images[half : 2 * half]))
    z_distance = tf.reduce_mean(tf.abs(z[:half] - z[half : 2 * half]))
    ratio = image_distance / (z_distance + MODE_SEEKING_EPSILON)
    return 1.0 / (ratio + MODE_SEEKING_EPSILON)


def mean_squared_differences(first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
    """(first, second) matrix of the mean squared pixel difference of every pair of images."""
    first_rows = tf.cast(tf.reshape(first, [tf.shape(first)[0], -1]), tf.float32)
    second_rows = tf.cast(tf.reshape(second, [tf.shape(second)[0], -1]), tf.float32)
    pixel_count = tf.cast(tf.shape(first_rows)[1], tf.float32)
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b is one matrix product.
    costs = (
        tf.reduce_sum(tf.square(first_rows), axis=1, keepdims=True)
        + tf.reduce_sum(tf.square(second_rows), axis=1)[tf.newaxis, :]
        - 2.0 * tf.matmul(first_rows, second_rows, transpose_b=True)
    ) / pixel_count
    return tf.maximum(costs, 0.0)


# How fast the photos' bounties move: the bounty of a photo that no generated image claims rises by
# this share of the mean cost per step (and that of one claimed more than its share falls).
BOUNTY_RATE = 0.01
# A face's squared distance to the photo it claims should be at most this share of its distance to any other.
CLAIM_MARGIN = 0.9
CLAIM_MAX_SIDE_PX = 64  # larger images are averaged down to at most this side before claiming


def claim_side_px(resolution_px: int) -> int:
    """The side at which generated images claim photos: the resolution halved until at most CLAIM_MAX_SIDE_PX."""
    side = resolution_px
    while side > CLAIM_MAX_SIDE_PX and side % 2 == 0:
        side //= 2
    return side


def claimed_photo_penalty(
    fake: tf.Tensor, photos: tf.Tensor, bounties: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The generated images' mean squared difference to the photos they claim, and the photos' new bounties.

    fake: generated images in [-1, 1]; photos: every training photo, in [-1, 1], at claim_side_px;
    bounties: one per photo, kept from step to step (zeros at the start).
    Semi-discrete optimal transport (Genevay et al. 2016): image i claims the photo j with the
    lowest cost(i, j) - bounty(j). A photo claimed less often than its share (1 / photos) gets a
    higher bounty, one claimed more often a lower one, so over the steps every photo is claimed
    equally often and no photo is left without faces near it. Because the bounties carry over, a
    face keeps claiming the same photo from one batch to the next; pairing the faces with the
    batch's photos instead pulled each face towards a different photo every step, into a blur.
    """
    pool = fake.shape[1] // photos.shape[1]  # static sizes: the pooling window is a number
    fake = tf.cast(fake, tf.float32)
    if pool > 1:
        fake = tf.nn.avg_pool2d(fake, pool, pool, "VALID")
    costs = mean_squared_differences(fake, photos)
    fixed_costs = tf.stop_gradient(costs)
    claims = tf.argmin(fixed_costs - bounties[tf.newaxis, :], axis=1, output_type=tf.int32)
    claimed_costs = tf.gather(costs, claims, axis=1, batch_dims=1)
    # A face nearer to another photo than to its claim resembles that one instead; it also pays
    # the difference, which moves it just across to its own photo's side.
    is_claim = tf.one_hot(claims, tf.shape(photos)[0], on_value=True, off_value=False)
    above_every_cost = tf.stop_gradient(tf.reduce_max(costs)) + 1.0
    nearest_other_costs = tf.reduce_min(tf.where(is_claim, above_every_cost, costs), axis=1)
    misplaced = tf.nn.relu(claimed_costs - CLAIM_MARGIN * nearest_other_costs)
    penalty = tf.reduce_mean(claimed_costs) + tf.reduce_mean(misplaced)

    photo_count = tf.cast(tf.shape(photos)[0], tf.float32)
    image_count = tf.cast(tf.shape(fake)[0], tf.float32)
    claim_counts = tf.reduce_sum(tf.one_hot(claims, tf.shape(photos)[0]), axis=0)
    shortfall = 1.0 - photo_count * claim_counts / image_count  # 1: unclaimed, 0: its share, < 0: above
    new_bounties = bounties + BOUNTY_RATE * tf.reduce_mean(fixed_costs) * shortfall
    return penalty, new_bounties
