"""GAN losses on D's raw scores (logits): what D minimises and what G minimises.

    non_saturating  Goodfellow et al. 2014, G maximises log D(G(z)) (the DCGAN default)
    hinge           Lim & Ye 2017 / Miyato et al. 2018, used with spectral normalisation
    least_squares   Mao et al. 2017, scores pushed to 1 for real and 0 for generated
    wgan_gp         Gulrajani et al. 2017, Wasserstein critic with a gradient penalty

Label smoothing (one-sided, Salimans et al. 2016) lowers the real target of the
non-saturating and least-squares losses from 1 to 1 - smoothing. The mode-seeking term
(Mao et al. 2019) is added to G's loss: it grows when two different z give alike images.
The coverage term is added too: the optimal-transport cost between the batch's generated and
real images (Sinkhorn, Cuturi 2013; as a GAN term, Salimans et al. 2018 and Genevay et al. 2018),
so a photo that no generated image resembles costs G.
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

# The coverage term's transport plan. On random 64 x 64 costs, an entropy weight of 0.02 of the mean
# cost gives margins within 0.03% of uniform after 30 iterations and a cost 15% above the exact
# assignment's; 0.01 comes within 4% of it, but its margins were still 0.7% off.
SINKHORN_EPSILON = 0.02
SINKHORN_ITERATIONS = 30


def coverage_penalty(fake: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
    """Optimal-transport cost between the batch's generated and real images (mean squared pixel difference).

    Every real image sends an equal share of its mass to the generated images and every generated
    image receives an equal share, so a photo cannot be ignored and one image cannot serve many
    photos: unlike pulling each photo's nearest image, which drags one average face towards all
    of them. The plan is Sinkhorn's (Cuturi 2013), with the entropy weight SINKHORN_EPSILON of the
    mean cost, and is held fixed for the gradient, which is then the transport cost's own.
    Compared at full resolution: averaged to 8 x 8 pixels first, it left as many photos uncovered
    as no term at all in bench/quality.py.
    """
    fake_rows = tf.cast(tf.reshape(fake, [tf.shape(fake)[0], -1]), tf.float32)
    real_rows = tf.cast(tf.reshape(real, [tf.shape(real)[0], -1]), tf.float32)
    pixel_count = tf.cast(tf.shape(real_rows)[1], tf.float32)
    # (reals, fakes) mean squared differences; |r - f|^2 = |r|^2 + |f|^2 - 2 r.f is one matrix product.
    costs = (
        tf.reduce_sum(tf.square(real_rows), axis=1, keepdims=True)
        + tf.reduce_sum(tf.square(fake_rows), axis=1)[tf.newaxis, :]
        - 2.0 * tf.matmul(real_rows, fake_rows, transpose_b=True)
    ) / pixel_count
    costs = tf.maximum(costs, 0.0)
    plan = sinkhorn_plan(costs)  # no gradient: it stops at the costs
    return tf.reduce_sum(plan * costs)


def sinkhorn_plan(costs: tf.Tensor) -> tf.Tensor:
    """(rows, columns) transport plan with uniform margins for a cost matrix, in the log domain."""
    costs = tf.stop_gradient(costs)
    log_kernel = -costs / (SINKHORN_EPSILON * (tf.reduce_mean(costs) + 1e-12))
    rows, columns = tf.shape(costs)[0], tf.shape(costs)[1]
    log_row_mass = -tf.math.log(tf.cast(rows, costs.dtype))
    log_column_mass = -tf.math.log(tf.cast(columns, costs.dtype))
    log_u = tf.zeros([rows], costs.dtype)
    log_v = tf.zeros([columns], costs.dtype)
    for _ in range(SINKHORN_ITERATIONS):  # a fixed count: the step has no data-dependent loops
        log_u = log_row_mass - tf.reduce_logsumexp(log_kernel + log_v[tf.newaxis, :], axis=1)
        log_v = log_column_mass - tf.reduce_logsumexp(log_kernel + log_u[:, tf.newaxis], axis=0)
    return tf.exp(log_u[:, tf.newaxis] + log_kernel + log_v[tf.newaxis, :])
