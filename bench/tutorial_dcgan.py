"""The yardstick for bench/speed.py: a DCGAN training step as the TensorFlow tutorial writes it.

One tf.function, no XLA: z from tf.random.normal, G once, D on the real and the generated
batch, two GradientTapes, two Adam optimizers, binary cross-entropy on logits. The data
comes as the tutorial feeds it, a float32 array through from_tensor_slices, shuffle and
batch. The networks are the project's own (core.models) for the same config, so the two
sides of the comparison differ only in how a step is run, not in what is trained.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from core.config import TrainConfig
from core.imaging import uint8_to_model_range
from core.models import build_discriminator, build_generator


class TutorialDCGAN:
    """G, D, their optimizers and the tutorial's step, ready to time."""

    def __init__(self, config: TrainConfig, images: np.ndarray) -> None:
        self.config = config
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        self.optimizer_g = keras.optimizers.Adam(config.learning_rate_g, beta_1=config.beta1)
        self.optimizer_d = keras.optimizers.Adam(config.learning_rate_d, beta_1=config.beta1)
        self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)

        pixels = uint8_to_model_range(tf.constant(images)).numpy()
        dataset = tf.data.Dataset.from_tensor_slices(pixels).shuffle(len(pixels)).repeat()
        self.batches = iter(dataset.batch(config.batch_size, drop_remainder=True))
        self.train_step = tf.function(self._train_step)

    def _train_step(self, real: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        noise = tf.random.normal([self.config.batch_size, self.config.latent_dim])
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            fake = self.generator(noise, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            g_loss = self.cross_entropy(tf.ones_like(fake_logits), fake_logits)
            d_loss = self.cross_entropy(tf.ones_like(real_logits), real_logits) + self.cross_entropy(
                tf.zeros_like(fake_logits), fake_logits
            )
        g_variables = self.generator.trainable_variables
        d_variables = self.discriminator.trainable_variables
        self.optimizer_g.apply_gradients(zip(generator_tape.gradient(g_loss, g_variables), g_variables))
        self.optimizer_d.apply_gradients(zip(discriminator_tape.gradient(d_loss, d_variables), d_variables))
        return d_loss, g_loss

    def images_per_sec(self, seconds: float) -> float:
        """Train for about `seconds` of wall time; real images consumed per second."""
        started, steps = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            d_loss, _ = self.train_step(next(self.batches))
            steps += 1
        float(d_loss)  # wait for the last step to finish before the clock stops
        return steps * self.config.batch_size / (time.perf_counter() - started)
