"""DCGAN generator and discriminator, built for a TrainConfig's resolution.

Radford et al. (2015) style: strided (transposed) convolutions, batch norm and ReLU in G,
LeakyReLU(0.2) in D, tanh output, weights drawn from N(0, 0.02). Depth follows from the
resolution: G starts from an s x s map (s in 4..7) and doubles k times; D mirrors it.

Every layer is named after the size it produces: Keras' automatic names are per thread,
so a model built in the training thread could otherwise get two layers of the same name.

D has no batch norm on purpose: the gradient penalties for small datasets (R1, WGAN-GP)
need each image's score to depend on that image alone. The optional minibatch standard
deviation layer is the one exception, and only across a group of MINIBATCH_GROUP images.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from core.architecture import IMAGE_CHANNELS, channels_per_level
from core.config import TrainConfig, resolution_levels

LEAKY_SLOPE = 0.2
BATCH_NORM_MOMENTUM = 0.9  # faster than Keras' 0.99, so short runs get usable inference stats
MINIBATCH_GROUP = 4  # images whose spread D sees together, as in StyleGAN


@keras.saving.register_keras_serializable(package="dcgan_studio")
class MinibatchStdDev(layers.Layer):
    """Appends one feature map: the mean standard deviation over a group of images (Karras et al. 2018).

    A collapsed G produces groups with almost no spread, which D then spots at once. A batch
    not divisible by MINIBATCH_GROUP is treated as one group.
    """

    def call(self, features):
        input_dtype = features.dtype
        features = keras.ops.cast(features, "float32")  # 1e-8 is 0 in float16, and sqrt(0) has no gradient
        batch = keras.ops.shape(features)[0]
        height, width, channels = features.shape[1], features.shape[2], features.shape[3]
        group = keras.ops.where(batch % MINIBATCH_GROUP == 0, MINIBATCH_GROUP, batch)  # batch may be symbolic
        grouped = keras.ops.reshape(features, (group, -1, height, width, channels))
        spread = keras.ops.sqrt(keras.ops.var(grouped, axis=0) + 1e-8)  # (batch / group, h, w, c)
        per_group = keras.ops.mean(spread, axis=(1, 2, 3), keepdims=True)  # (batch / group, 1, 1, 1)
        per_image = keras.ops.tile(per_group, (group, height, width, 1))
        return keras.ops.cast(keras.ops.concatenate([features, per_image], axis=-1), input_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


def _init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def build_generator(config: TrainConfig, synchronized_batch_norm: bool = False) -> keras.Model:
    """z (latent_dim) -> image (R, R, 3) in [-1, 1].

    synchronized_batch_norm: batch statistics over the global batch of all replicas of a
    tf.distribute strategy, so G normalises as on one device. Off on one device, where
    Keras' synchronised moments (E[x^2] - E[x]^2) would round differently from the usual ones.
    The weights are the same either way, so checkpoints fit both.
    """
    start_px, doublings = resolution_levels(config.resolution_px)
    channels = channels_per_level(config)

    z = keras.Input(shape=(config.latent_dim,), name="z")
    x = layers.Dense(start_px * start_px * channels[0], use_bias=False, kernel_initializer=_init(), name="project")(z)
    x = layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, synchronized=synchronized_batch_norm, name="project_norm"
    )(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((start_px, start_px, channels[0]), name="to_map")(x)
    # (s, s, channels[0])

    size_px = start_px
    for level_channels in channels[1:]:
        size_px *= 2
        x = layers.Conv2DTranspose(
            level_channels, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_init(),
            name=f"up_{size_px}px",
        )(x)
        x = layers.BatchNormalization(
            momentum=BATCH_NORM_MOMENTUM, synchronized=synchronized_batch_norm, name=f"up_{size_px}px_norm"
        )(x)
        x = layers.ReLU(name=f"up_{size_px}px_relu")(x)
        assert x.shape[1:] == (size_px, size_px, level_channels), x.shape

    # float32 whatever the precision (core.precision): pictures and losses need its range.
    image = layers.Conv2DTranspose(
        IMAGE_CHANNELS, 4, strides=2, padding="same", activation="tanh", kernel_initializer=_init(),
        dtype="float32", name=f"to_rgb_{config.resolution_px}px",
    )(x)
    expected = (config.resolution_px, config.resolution_px, IMAGE_CHANNELS)
    assert image.shape[1:] == expected, (image.shape, expected)
    return keras.Model(z, image, name=f"generator_{config.resolution_px}px")


def spread_out_weights(model: keras.Model, seed: int = 0) -> keras.Model:
    """Redraw an untrained model's weights larger, in place, for tests and benchmarks.

    Fresh DCGAN weights (std 0.02) shrink every picture to flat grey; these make pictures
    differ clearly from one z to the next, and give batch norm running statistics unlike
    a batch's own, so a test can tell inference mode from training mode.
    """
    random = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("moving_variance"):
            value = random.uniform(0.5, 2.0, shape)
        elif variable.path.endswith("moving_mean"):
            value = random.normal(0.0, 0.5, shape)
        elif variable.path.endswith("gamma"):
            value = random.uniform(0.5, 1.5, shape)
        elif len(shape) > 1:  # a kernel: about unit gain per layer
            value = random.normal(0.0, 1.5 / np.sqrt(np.prod(shape[:-1])), shape)
        else:
            value = random.normal(0.0, 0.1, shape)
        variable.assign(value.astype(np.float32))
    return model


def _maybe_normalised(layer: layers.Layer, config: TrainConfig) -> layers.Layer:
    """The layer itself, or wrapped in spectral normalisation (Miyato et al. 2018) when asked."""
    if not config.spectral_norm:
        return layer
    return layers.SpectralNormalization(
        layer, power_iterations=1, dtype=layer.dtype_policy, name=f"{layer.name}_spectral"
    )


def build_discriminator(config: TrainConfig) -> keras.Model:
    """image (R, R, 3) -> one real/fake logit (unbounded; the losses apply the sigmoid)."""
    start_px, doublings = resolution_levels(config.resolution_px)
    channels = list(reversed(channels_per_level(config)))

    image = keras.Input(shape=(config.resolution_px, config.resolution_px, IMAGE_CHANNELS), name="image")
    x = image
    size_px = config.resolution_px
    for level_channels in channels:
        size_px //= 2
        convolution = layers.Conv2D(
            level_channels, 4, strides=2, padding="same", kernel_initializer=_init(), name=f"down_{size_px}px"
        )
        x = _maybe_normalised(convolution, config)(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"down_{size_px}px_leaky")(x)
        assert x.shape[1:] == (size_px, size_px, level_channels), x.shape

    assert size_px == start_px and len(channels) == doublings
    if config.minibatch_std:
        x = MinibatchStdDev(name="minibatch_std")(x)
    x = layers.Flatten(name="flatten")(x)
    logit_layer = layers.Dense(1, kernel_initializer=_init(), dtype="float32", name="logit")  # as to_rgb in G
    logit = _maybe_normalised(logit_layer, config)(x)
    return keras.Model(image, logit, name=f"discriminator_{config.resolution_px}px")
