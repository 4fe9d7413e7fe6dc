"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for training on few photos.

D sees every image, real or generated, through the same random colour shift,
translation and cutout, so it cannot memorise the few real photos; because the
operations are differentiable, G still learns through them. Each image is augmented
with probability p: 1 for the fixed policy, or steered ADA-style (Karras et al. 2020)
by how confidently D tells real images apart, r = mean(sign(D(x))), towards a target.

Under a tf.distribute strategy each replica augments its share of the global batch, with
every random number drawn for the whole batch (``core.distribute.per_image_uniform``), so an
image is augmented the same way however many replicas there are.
"""

from __future__ import annotations

import tensorflow as tf

from core.distribute import BatchShare, per_image_uniform, xla_compiled

TRANSLATION_FRACTION = 0.125  # shift by up to 1/8 of the image each way, as in DiffAugment
CUTOUT_FRACTION = 0.5  # erase a square half the image's side
ADA_IMAGES_TO_FULL_STRENGTH = 20_000  # p moves 0 -> 1 over this many real images at the most
# (ADA uses 500k for datasets of thousands; a few hundred photos need it to react far sooner)


def augment(
    images: tf.Tensor,
    policy: tuple[str, ...],
    probability: tf.Tensor,
    seed: tf.Tensor,
    share: BatchShare | None = None,
) -> tf.Tensor:
    """Apply the policy's operations ('color', 'translation', 'cutout') to images in [-1, 1].

    Each image is augmented with the given probability, as a whole; seed is a [2] int
    tensor for the stateless random ops, so the same seed gives the same augmentation.
    share: on one replica of several, which rows of the global batch these images are.
    """
    if not policy:
        return images
    # XLA turns a seed into other random numbers than TensorFlow's kernels do; the augmentation
    # is compiled on its own so that every path draws the same (see distribute.xla_compiled).
    return xla_compiled(_augment)(images, policy, tf.convert_to_tensor(probability), seed, share)


def _augment(images, policy, probability, seed, share: BatchShare | None) -> tf.Tensor:
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    augmented = images
    if "color" in policy:
        augmented = _colour(augmented, seeds[0], share)
    if "translation" in policy:
        augmented = _translation(augmented, seeds[1], share)
    if "cutout" in policy:
        augmented = _cutout(augmented, seeds[2], share)
    chosen = per_image_uniform([batch, 1, 1, 1], seeds[3], share) < probability
    return tf.where(chosen, augmented, images)


def _colour(images: tf.Tensor, seed: tf.Tensor, share: BatchShare | None) -> tf.Tensor:
    """Random brightness, saturation and contrast per image."""
    batch = tf.shape(images)[0]
    brightness_seed, saturation_seed, contrast_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    images = images + (per_image_uniform([batch, 1, 1, 1], brightness_seed, share) - 0.5)
    mean_channel = tf.reduce_mean(images, axis=3, keepdims=True)
    saturation = per_image_uniform([batch, 1, 1, 1], saturation_seed, share) * 2.0
    images = (images - mean_channel) * saturation + mean_channel
    mean_all = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean_all) * (per_image_uniform([batch, 1, 1, 1], contrast_seed, share) + 0.5) + mean_all


def _translation(images: tf.Tensor, seed: tf.Tensor, share: BatchShare | None) -> tf.Tensor:
    """Shift each image by up to TRANSLATION_FRACTION of its size; the gap is filled with zeros."""
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    shift_y = tf.cast(tf.cast(height, tf.float32) * TRANSLATION_FRACTION + 0.5, tf.int32)
    shift_x = tf.cast(tf.cast(width, tf.float32) * TRANSLATION_FRACTION + 0.5, tf.int32)
    y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    offset_y = per_image_uniform([batch, 1, 1], y_seed, share, -shift_y, shift_y + 1, dtype=tf.int32)
    offset_x = per_image_uniform([batch, 1, 1], x_seed, share, -shift_x, shift_x + 1, dtype=tf.int32)

    # Gather each output pixel from its shifted source; sources outside the image read zero.
    rows = tf.range(height)[tf.newaxis, :, tf.newaxis] - offset_y
    columns = tf.range(width)[tf.newaxis, tf.newaxis, :] - offset_x
    inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
    rows = tf.clip_by_value(rows, 0, height - 1)
    columns = tf.clip_by_value(columns, 0, width - 1)
    batch_index = tf.broadcast_to(tf.range(batch)[:, tf.newaxis, tf.newaxis], tf.shape(rows + columns))
    indices = tf.stack([batch_index, tf.broadcast_to(rows, tf.shape(batch_index)),
                        tf.broadcast_to(columns, tf.shape(batch_index))], axis=-1)
    shifted = tf.gather_nd(images, indices)
    return tf.where(inside[..., tf.newaxis], shifted, tf.zeros_like(shifted))


def _cutout(images: tf.Tensor, seed: tf.Tensor, share: BatchShare | None) -> tf.Tensor:
    """Erase one square of CUTOUT_FRACTION of the side, at a random place, in each image."""
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    size_y = tf.cast(tf.cast(height, tf.float32) * CUTOUT_FRACTION + 0.5, tf.int32)
    size_x = tf.cast(tf.cast(width, tf.float32) * CUTOUT_FRACTION + 0.5, tf.int32)
    y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    centre_y = per_image_uniform([batch, 1, 1], y_seed, share, 0, height + (1 - size_y % 2), dtype=tf.int32)
    centre_x = per_image_uniform([batch, 1, 1], x_seed, share, 0, width + (1 - size_x % 2), dtype=tf.int32)
    rows = tf.range(height)[tf.newaxis, :, tf.newaxis]
    columns = tf.range(width)[tf.newaxis, tf.newaxis, :]
    # The square spans [centre - size // 2, centre - size // 2 + size): exactly size pixels a side.
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    inside = (rows >= top) & (rows < top + size_y) & (columns >= left) & (columns < left + size_x)
    return images * tf.cast(~inside, images.dtype)[..., tf.newaxis]


def adjusted_probability(probability: tf.Tensor, real_sign_mean: tf.Tensor, target: float, batch_size: int) -> tf.Tensor:
    """ADA's controller, every step: raise p when D is too sure of real images (r > target)."""
    step = batch_size / ADA_IMAGES_TO_FULL_STRENGTH
    return tf.clip_by_value(probability + tf.sign(real_sign_mean - target) * step, 0.0, 1.0)
