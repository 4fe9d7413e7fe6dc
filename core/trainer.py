"""The DCGAN training step and loop. No threads and no UI: callers pass hooks.

One step is one D update on a real batch and a batch from G, then one G update on the same
generated batch against the updated D, with the non-saturating loss of Goodfellow et al.
Each update names the variables it changes, so neither network's weights move during the
other's update. With simultaneous_updates both updates are taken at the same weights, as in
the TensorFlow tutorial.

A run can be killed at any moment and resumed: checkpoints (``core.checkpoints``) hold
both networks, both optimizers, the averaged G, the step, the noise generator and the
fixed grid noise, and the batch of step s depends only on (seed, s). A step whose
losses or weights are not finite is undone by rolling back to the last checkpoint; a
second one stops the run with a suggested remedy. A checkpoint is never written from
non-finite weights.

Given a tf.distribute strategy (``core.distribute``), the same step runs on every replica:
z and the random seeds are drawn once for the global batch, each replica trains on its
share, gradients of per-replica means scaled by 1/replicas are summed, and G's batch norm
is synchronised, so a run on R replicas computes what a run on one device would. Only the
chief writes the run folder; other workers train into a scratch copy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.checkpoints import CheckpointError, CheckpointStore
from core.config import ARCHITECTURE_FIELDS, TrainConfig
from core.data import make_training_dataset
from core.distribute import BatchShare, check_global_batch, strategy_is_chief
from core.augment import adjusted_probability, augment
from core.imaging import make_grid, model_range_to_uint8
from core.losses import (
    WGAN_GP_WEIGHT, claim_side_px, claimed_photo_penalty, discriminator_loss, generator_loss, gradient_penalty,
    mode_seeking_penalty, r1_penalty,
)
from core.latent import seeds_to_z
from core.models import MINIBATCH_GROUP, build_discriminator, build_generator
from core.precision import current_precision, needs_loss_scaling
from core.quality import draw_quality_sample
from core.quality_worker import QualityWorker
from core.runs import RunDir, RunError, atomic_write_bytes

logger = logging.getLogger(__name__)

_PAUSE_POLL_SEC = 0.05
_EMA_WARMUP_STEPS = 10  # the average starts short and lengthens, so early samples are not stale
MAX_ROLLBACKS = 1  # a second non-finite step in one session stops the run
R1_INTERVAL_STEPS = 4
SCRATCH_PREFIX = "dcgan-studio-worker-"  # a non-chief worker's temporary copy of the run


class NonFiniteTraining(RuntimeError):
    """Losses or weights became NaN or infinite again after a rollback."""


@dataclass(frozen=True)
class StepRecord:
    """What one logged step reports: losses, D's mean verdicts, and speed."""

    step: int
    total_steps: int
    d_loss: float
    g_loss: float
    d_real: float  # mean D(x): D's probability that real images are real
    d_fake: float  # mean D(G(z)): D's probability that generated images are real
    augment_probability: float  # share of images D sees augmented (changes only under ADA)
    images_per_sec: float  # real images consumed per second over the last log interval
    elapsed_sec: float  # training time so far, pauses excluded

    def as_row(self) -> dict[str, float]:
        return asdict(self)


class TrainingHooks:
    """How a caller watches and steers the loop. Override what you need."""

    def should_stop(self) -> bool:
        return False

    def stop_reason(self) -> str:
        """Why should_stop said so, for status.json once the run has stopped."""
        return "stopped by the user"

    def is_paused(self) -> bool:
        return False

    def on_record(self, record: StepRecord) -> None:
        pass

    def on_sample(self, step: int, grid: np.ndarray) -> None:
        pass

    def on_quality(self, row) -> None:
        """Called from the quality worker thread with each core.quality.QualityRow."""


# Settings baked into the compiled step: a Trainer reuses an idle set only if all match.
NETWORK_SHAPE_FIELDS = (
    "resolution_px", "latent_dim", "width", "spectral_norm", "minibatch_std", "batch_size", "ema_decay", "beta1",
    "grid_size", "augment", "ada_target", "loss", "r1_gamma", "label_smoothing", "d_steps_per_g", "mode_seeking",
    "coverage_weight", "simultaneous_updates",
)
# At most one set per strategy (None: one device), handed from a finished Trainer to the next.
_idle_networks: dict[tuple, "_Networks"] = {}
_idle_networks_lock = threading.Lock()


class _Networks:
    """G, D, the averaged G, both optimizers, the counters and the compiled step.

    Kept from one run to the next when the shape is the same (NETWORK_SHAPE_FIELDS),
    because TensorFlow never frees what XLA compiled for a step (tensorflow/tensorflow#64170):
    building a fresh set for every run grew the process by about 25 MB per run.
    Under a strategy (None: one device) the variables are the strategy's, replicated.
    """

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None, photo_count: int = 0) -> None:
        self.config = config
        self.strategy = strategy
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.generator = build_generator(config, synchronized_batch_norm=strategy is not None)
            self.discriminator = build_discriminator(config)
            # Only ever run in inference mode, so its batch norm needs no synchronising.
            self.ema_generator = build_generator(config)
            self.optimizer_g = _adam(config.learning_rate_g, config.beta1)
            self.optimizer_d = _adam(config.learning_rate_d, config.beta1)
            self.optimizer_g.build(self.generator.trainable_variables)
            self.optimizer_d.build(self.discriminator.trainable_variables)

            # Everything a resume needs lives in one checkpoint, the fixed grid noise included.
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.fixed_z = tf.Variable(
                seeds_to_z(range(config.grid_count), config.latent_dim), trainable=False, name="fixed_z"
            )
            self.augment_probability = tf.Variable(0.0, trainable=False, name="augment_probability")
            # The coverage term's photos in [-1, 1], at the side they are claimed at (float32: a
            # multi-worker start broadcasts every variable, and its collectives have no uint8),
            # and their bounties.
            side = claim_side_px(config.resolution_px)
            self.photos = tf.Variable(tf.zeros([photo_count, side, side, 3]), trainable=False, name="photos")
            self.photo_bounties = tf.Variable(tf.zeros([photo_count]), trainable=False, name="photo_bounties")
        # The noise stays outside any strategy and is drawn only outside the replicas: a generator
        # made in a strategy's scope gives each replica its own stream, and its checkpoint would not
        # continue the same stream on one device. Drawn in one place, z is the one-device z.
        self.noise = tf.random.Generator.from_seed(config.seed)
        parts = dict(
            augment_probability=self.augment_probability,
            generator=self.generator,
            discriminator=self.discriminator,
            ema_generator=self.ema_generator,
            # The Adam state only, without a float16 loss scale, so checkpoints fit every precision.
            optimizer_g=_adam_of(self.optimizer_g),
            optimizer_d=_adam_of(self.optimizer_d),
            step=self.step,
            noise=self.noise,
            fixed_z=self.fixed_z,
        )
        self.checkpoint = tf.train.Checkpoint(**parts, photo_bounties=self.photo_bounties)
        # For a checkpoint whose photos were since added or removed: its bounties no longer fit.
        self.checkpoint_without_bounties = tf.train.Checkpoint(**parts)

        # The step has no tensor-dependent Python control flow, so AutoGraph is off: its
        # source rewriting of these methods failed intermittently in a background thread.
        self.weights_are_finite = tf.function(self._weights_are_finite, autograph=False)
        if strategy is None:
            self._discriminator_half = functools.partial(self._one_device_step, self._discriminator_update)
            self._joint_half = functools.partial(self._one_device_step, self._joint_update)
            self._alternating_half = functools.partial(self._one_device_step, self._alternating_update)
            self.r1_step = tf.function(self._r1_step, autograph=False)
        else:
            self._discriminator_half = functools.partial(self._replicated_step, self._discriminator_update)
            self._joint_half = functools.partial(self._replicated_step, self._joint_update)
            self._alternating_half = functools.partial(self._replicated_step, self._alternating_update)
            self.r1_step = tf.function(self._replicated_r1_step, autograph=False)
        # A TensorFlow graph, not XLA. On the 2-core AMD EPYC CPU of bench/speed.py's table
        # (oneDNN kernels) the graph step trained 473 images/s at 32 px and 83 at 64 px (width
        # 64, batch 64), the XLA-compiled one 358 and 58; on the machine of earlier measurements
        # XLA had been 1.3-1.5x faster at 32 px. Under a strategy XLA cannot run at all: a
        # jit-compiled function cannot reach the replicas' copies of a variable on other devices
        # ("Trying to access resource ... located in device CPU:1", TF 2.21).
        # TODO: time both compilations on the user's machine and keep the faster one.
        self.train_step = tf.function(self._train_step, autograph=False)
        # Random draws alone are XLA-compiled, on every path, so that a run draws the same
        # numbers on one device or many, and as runs of the earlier XLA-compiled step did
        # (see distribute.xla_compiled).
        self._compiled_draw_noise = tf.function(self._draw_noise, jit_compile=True, autograph=False)
        self.discriminator_step = tf.function(self._discriminator_half, autograph=False)
        self.alternating_step = tf.function(self._alternating_half, autograph=False)

    def reset(self, config: TrainConfig, images: np.ndarray | None = None) -> None:
        """Fresh weights drawn from config.seed, empty optimizer state, step 0: a new run."""
        self.config = config
        if images is not None and config.coverage_weight > 0:
            self.photos.assign(photos_at_side(images, self.photos.shape[1]) / 127.5 - 1.0)
        self.photo_bounties.assign(tf.zeros_like(self.photo_bounties))
        keras.utils.set_random_seed(config.seed)
        fresh_generator = build_generator(config)
        fresh_discriminator = build_discriminator(config)
        self.generator.set_weights(fresh_generator.get_weights())
        self.ema_generator.set_weights(fresh_generator.get_weights())
        self.discriminator.set_weights(fresh_discriminator.get_weights())
        for optimizer in (self.optimizer_g, self.optimizer_d):
            for variable in _adam_of(optimizer).variables:
                variable.assign(tf.zeros_like(variable))
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer.dynamic_scale.assign(optimizer.initial_scale)
                optimizer.step_counter.assign(0)
        self.optimizer_g.learning_rate.assign(config.learning_rate_g)
        self.optimizer_d.learning_rate.assign(config.learning_rate_d)
        self.step.assign(0)
        self.noise.reset_from_seed(config.seed)
        self.fixed_z.assign(seeds_to_z(range(config.grid_count), config.latent_dim))
        # A fixed policy augments every image; ADA starts from none and adds as D overfits.
        self.augment_probability.assign(0.0 if config.ada_target > 0 else 1.0)

    # The step. Each half draws its z and seeds, then updates; on one device the update sees the
    # whole batch, under a strategy each replica runs it on its share (``share``).

    def _one_device_step(self, update, real: tf.Tensor) -> dict[str, tf.Tensor]:
        """A D update or a joint update on one device, with its own z and seeds."""
        z, seeds = self._compiled_draw_noise(self.config.batch_size, 3)
        results = update(real, z, seeds)
        self._steer_augmentation(results)
        return results

    def _discriminator_update(
        self, real: tf.Tensor, z: tf.Tensor, seeds: tf.Tensor, share: BatchShare | None = None
    ) -> dict[str, tf.Tensor]:
        """Teach D to score real images high and G's images low. Only D's weights change.

        real and z are the whole batch's; under a strategy this replica takes its share of both.
        """
        # stateless_call runs G in training mode without updating its batch-norm statistics,
        # so this update leaves every G variable as it was.
        fake, _ = self.generator.stateless_call(
            self.generator.trainable_variables, self.generator.non_trainable_variables,
            z if share is None else share.take(z), training=True,
        )  # fmt: skip
        with tf.GradientTape() as tape:
            gradient_loss, _, results = self._discriminator_objective(real, fake, seeds, share)
        variables = self.discriminator.trainable_variables
        self.optimizer_d.apply_gradients(zip(tape.gradient(gradient_loss, variables), variables))
        return results

    def _discriminator_objective(
        self, real: tf.Tensor, fake: tf.Tensor, seeds: tf.Tensor, share: BatchShare | None
    ) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        """D's scores and loss on this replica's images: (what it differentiates, the fake logits, results).

        real is the whole batch's, fake this replica's share.
        """
        config = self.config
        own_real = real if share is None else share.take(real)
        # D sees real and generated images through the same kind of augmentation.
        real_seen = augment(own_real, config.augment, self.augment_probability, seeds[:, 0], share)
        fake_seen = augment(fake, config.augment, self.augment_probability, seeds[:, 1], share)
        real_logits = self.discriminator(real_seen, training=True)
        fake_logits = self.discriminator(fake_seen, training=True)
        d_loss = discriminator_loss(config.loss, real_logits, fake_logits, config.label_smoothing)
        if config.loss == "wgan_gp":
            d_loss += WGAN_GP_WEIGHT * gradient_penalty(self.discriminator, real_seen, fake_seen, seeds[:, 2], share)
        gradient_loss = d_loss if share is None else share.scaled(d_loss)
        gradient_loss = self.optimizer_d.scale_loss(gradient_loss)  # unchanged unless float16 (core.precision)

        results = {
            "d_loss": d_loss,
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits)),
        }
        if config.ada_target > 0:
            results["real_sign_mean"] = tf.reduce_mean(tf.sign(real_logits))
        return gradient_loss, fake_logits, results

    def _steer_augmentation(self, results: dict[str, tf.Tensor]) -> None:
        """ADA: move the augmentation probability by how sure D was of the real batch."""
        if self.config.ada_target > 0:
            self.augment_probability.assign(
                adjusted_probability(
                    self.augment_probability, results.pop("real_sign_mean"), self.config.ada_target,
                    self.config.batch_size,
                )
            )

    def _r1_step(self, real: tf.Tensor) -> tf.Tensor:
        _, seeds = self._compiled_draw_noise(0, 1)
        return self._r1_update(real, seeds)

    def _r1_update(self, real: tf.Tensor, seeds: tf.Tensor, share: BatchShare | None = None) -> tf.Tensor:
        """A separate D update on the R1 penalty alone, every R1_INTERVAL_STEPS steps and weighted up
        to match (lazy regularisation, Karras et al. 2020): R1 in every step halved the speed."""
        config = self.config
        real_seen = augment(real, config.augment, self.augment_probability, seeds[:, 0], share)
        with tf.GradientTape() as tape:
            penalty = r1_penalty(self.discriminator, real_seen)
            weighted = 0.5 * config.r1_gamma * R1_INTERVAL_STEPS * penalty
            gradient_loss = weighted if share is None else share.scaled(weighted)
            gradient_loss = self.optimizer_d.scale_loss(gradient_loss)
        variables = self.discriminator.trainable_variables
        self.optimizer_d.apply_gradients(zip(tape.gradient(gradient_loss, variables), variables))
        return penalty

    def _generator_objective(
        self, fake: tf.Tensor, fake_logits: tf.Tensor, z: tf.Tensor, share: BatchShare | None
    ) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        """G's loss for the batch, what this replica differentiates (loss-scaled) for it, and the results.

        The results hold g_loss and, with the coverage term on, the photos' new bounties, which the
        step assigns once outside the replicas.
        """
        config = self.config
        g_loss = generator_loss(config.loss, fake_logits)
        gradient_loss = g_loss if share is None else share.scaled(g_loss)
        pairs_images = config.mode_seeking > 0 and config.batch_size >= 2  # a pair is needed
        if pairs_images or config.coverage_weight > 0:
            # Both terms pair rows that may sit on different replicas, so each replica scores the
            # whole batch; gathered once for the two.
            whole_batch = fake if share is None else share.whole(fake)
        if pairs_images:
            penalty = config.mode_seeking * mode_seeking_penalty(whole_batch, z)
            g_loss += penalty
            # whole() lets this replica's gradient into its own rows only: counted once in full.
            gradient_loss = g_loss if share is None else gradient_loss + penalty
        results = {}
        if config.coverage_weight > 0:
            penalty, results["photo_bounties"] = claimed_photo_penalty(
                whole_batch, self.photos, self.photo_bounties
            )
            penalty = config.coverage_weight * penalty
            g_loss += penalty
            gradient_loss = g_loss if share is None else gradient_loss + penalty
        results["g_loss"] = g_loss
        return g_loss, self.optimizer_g.scale_loss(gradient_loss), results

    def _joint_update(
        self, real: tf.Tensor, z: tf.Tensor, seeds: tf.Tensor, share: BatchShare | None = None
    ) -> dict[str, tf.Tensor]:
        """Both updates from one forward pass, as the TensorFlow DCGAN tutorial does.

        D and G each take a step from the same batch and the same weights (simultaneous, not
        alternating, updates), which saves a D pass over the generated batch.
        real and z are the whole batch's, as in _discriminator_update.
        """
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake = self.generator(z if share is None else share.take(z), training=True)
            d_gradient_loss, fake_logits, results = self._discriminator_objective(real, fake, seeds, share)
            _, g_gradient_loss, g_results = self._generator_objective(fake, fake_logits, z, share)

        # Both gradients first: D's update must not change the scores G's gradient is taken at.
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables
        d_gradients = d_tape.gradient(d_gradient_loss, d_variables)
        g_gradients = g_tape.gradient(g_gradient_loss, g_variables)
        self.optimizer_d.apply_gradients(zip(d_gradients, d_variables))
        self.optimizer_g.apply_gradients(zip(g_gradients, g_variables))
        return {**results, **g_results}

    def _alternating_update(
        self, real: tf.Tensor, z: tf.Tensor, seeds: tf.Tensor, share: BatchShare | None = None
    ) -> dict[str, tf.Tensor]:
        """D's update, then G's against the updated D, both on the images of one G forward pass.

        G's images are made once, as in the PyTorch DCGAN example: D learns from them, and G's
        gradient then runs through the updated D back into the same forward pass. Making them
        again for G, with new z, cost a G pass: 8% of the step at 64 px (bench/speed.py).
        G's update sees its images through the augmentation D saw them through.
        """
        config = self.config
        with tf.GradientTape() as g_tape:
            fake = self.generator(z if share is None else share.take(z), training=True)
            with g_tape.stop_recording():  # D's update is not part of G's gradient
                with tf.GradientTape() as d_tape:
                    d_gradient_loss, _, results = self._discriminator_objective(
                        real, tf.stop_gradient(fake), seeds, share
                    )
                d_variables = self.discriminator.trainable_variables
                self.optimizer_d.apply_gradients(zip(d_tape.gradient(d_gradient_loss, d_variables), d_variables))
            fake_logits = self.discriminator(
                augment(fake, config.augment, self.augment_probability, seeds[:, 1], share), training=False
            )
            _, g_gradient_loss, g_results = self._generator_objective(fake, fake_logits, z, share)
        g_variables = self.generator.trainable_variables
        self.optimizer_g.apply_gradients(zip(g_tape.gradient(g_gradient_loss, g_variables), g_variables))
        return {**results, **g_results}

    # The same halves on the replicas of a strategy, called where the step runs outside them.

    def _replica_share(self) -> BatchShare:
        replicas = self.strategy.num_replicas_in_sync
        group = MINIBATCH_GROUP if self.config.minibatch_std and replicas > 1 else 1
        return BatchShare(self.config.batch_size, group)

    def _mean_over_replicas(self, per_replica):
        # Every replica holds as many images, so the mean of their means is the global batch's mean.
        return tf.nest.map_structure(
            lambda value: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None), per_replica
        )

    def _draw_noise(self, batch_size: int, seed_count: int) -> tuple[tf.Tensor, tf.Tensor]:
        """The global batch's z (none for batch_size 0) and seed_count seeds, in the one-device order."""
        z = self.noise.normal([batch_size, self.config.latent_dim]) if batch_size else tf.zeros([0])
        return z, tf.cast(self.noise.make_seeds(seed_count), tf.int32)

    def _replicated_step(self, update, real: tf.Tensor) -> dict[str, tf.Tensor]:
        """A D update or a joint update on the replicas: z and seeds drawn once, as on one device."""
        # Every replica is handed the whole global batch and takes its rows: a batch of small
        # pictures costs little to copy, and the batch of step s stays the one-device batch
        # however many workers there are.
        z, seeds = self._compiled_draw_noise(self.config.batch_size, 3)

        def on_replica(real, z, seeds):
            return update(real, z, seeds, self._replica_share())

        results = self._mean_over_replicas(self.strategy.run(on_replica, args=(real, z, seeds)))
        self._steer_augmentation(results)
        return results

    def _replicated_r1_step(self, real: tf.Tensor) -> tf.Tensor:
        _, seeds = self._compiled_draw_noise(0, 1)

        def update(real, seeds):
            share = self._replica_share()
            return self._r1_update(share.take(real), seeds, share)

        return self._mean_over_replicas(self.strategy.run(update, args=(real, seeds)))

    def _update_ema(self) -> None:
        step = tf.cast(self.step, tf.float32)
        decay = tf.minimum(self.config.ema_decay, (1.0 + step) / (_EMA_WARMUP_STEPS + step))
        for average, weight in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * weight)
        # Batch-norm statistics are already running averages; copy them as they are.
        for average, weight in zip(self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables):
            average.assign(weight)

    def _train_step(self, real: tf.Tensor) -> dict[str, tf.Tensor]:
        # Under a strategy this runs outside the replicas, so the average and the counters
        # are updated once, from the replicas' common weights.
        joint = self.config.simultaneous_updates
        # Each D update sees the same real batch, new z; the last one comes with G's update.
        for _ in range(self.config.d_steps_per_g - 1):
            self._discriminator_half(real)
        results = self._joint_half(real) if joint else self._alternating_half(real)
        if "photo_bounties" in results:
            self.photo_bounties.assign(results.pop("photo_bounties"))
        results["augment_probability"] = tf.identity(self.augment_probability)
        self._update_ema()
        self.step.assign_add(1)
        # Checked inside the compiled step, where it costs one pass over the weights.
        results["finite"] = tf.logical_and(
            tf.reduce_all(tf.math.is_finite(tf.stack([results["d_loss"], results["g_loss"]]))),
            self._weights_are_finite(),
        )
        return results

    def _weights_are_finite(self) -> tf.Tensor:
        variables = self.generator.trainable_variables + self.discriminator.trainable_variables
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(variable)) for variable in variables])


def photos_at_side(images: np.ndarray, side_px: int) -> np.ndarray:
    """float32 (n, side, side, 3) pixel values of uint8 photos averaged down to side_px, as the coverage term compares them."""
    pool = images.shape[1] // side_px
    blocks = images.reshape(len(images), side_px, pool, side_px, pool, 3).astype(np.float32)
    return blocks.mean(axis=(2, 4))


def _adam(learning_rate: float, beta1: float) -> keras.optimizers.Optimizer:
    """Adam, wrapped in dynamic loss scaling when layers compute in float16."""
    adam = keras.optimizers.Adam(learning_rate, beta_1=beta1)
    return keras.optimizers.LossScaleOptimizer(adam) if needs_loss_scaling() else adam


def _adam_of(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    return optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer


class Trainer:
    """Trains one run: G, D, the averaged G and both optimizers, restored from its newest checkpoint.

    strategy: a tf.distribute strategy to train under (``core.distribute.make_strategy``), or
    None for one device. It is how to run, not what to train, so config.json never records it.
    """

    def __init__(
        self,
        config: TrainConfig,
        images: np.ndarray,
        run: RunDir,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        self.config = config
        self.images = images
        self.strategy = strategy
        self.is_chief = strategy_is_chief(strategy)
        if strategy is not None:
            replicas = strategy.num_replicas_in_sync
            check_global_batch(config.batch_size, replicas, config.minibatch_std, MINIBATCH_GROUP)
        # TensorFlow's multi-worker pattern: every worker saves (a save may need them all), and
        # all but the chief save into a scratch copy, so only the chief's run folder changes.
        self._scratch_folder = None if self.is_chief else Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        self.run_dir = run if self.is_chief else _scratch_copy(run, self._scratch_folder)
        run = self.run_dir

        # Replicated networks belong to their strategy, and layers keep the precision they were
        # built in, so both are part of the key.
        # With the coverage term on, the photos live in the networks' set too.
        photo_count = len(images) if config.coverage_weight > 0 else 0
        key = (*(getattr(config, name) for name in NETWORK_SHAPE_FIELDS), photo_count, current_precision(), strategy)
        with _idle_networks_lock:
            networks = _idle_networks.pop(key, None)
        if networks is None:
            networks = _Networks(config, strategy, photo_count)
        networks.reset(config, images)
        self._networks, self._networks_key = networks, key
        # The parts a caller (or a test) reaches for, under their usual names.
        self.generator, self.discriminator = networks.generator, networks.discriminator
        self.ema_generator = networks.ema_generator
        self.optimizer_g, self.optimizer_d = networks.optimizer_g, networks.optimizer_d
        self.step, self.noise, self.fixed_z = networks.step, networks.noise, networks.fixed_z
        self.photo_bounties = networks.photo_bounties  # the coverage term's, one per photo (none with it off)
        self.checkpoint = networks.checkpoint
        self.train_step, self.weights_are_finite = networks.train_step, networks.weights_are_finite
        self.r1_step = networks.r1_step
        self.discriminator_step, self.alternating_step = networks.discriminator_step, networks.alternating_step

        self.checkpoints = CheckpointStore(run.checkpoints_dir, keep_last=config.keep_checkpoints)
        self.resume_notes: list[str] = []  # checkpoints skipped on resume, in words
        self._check_architecture_matches_run()
        latest, skipped = self.checkpoints.newest_good()
        self.resume_notes = [f"skipped {note}" for note in skipped]
        for note in self.resume_notes:
            logger.warning("%s: %s", run.run_id, note)
        if latest is not None:
            self._restore(latest.prefix)
            logger.info("resumed %s at step %d", run.run_id, self.current_step)
            if self.current_step >= config.steps:
                raise ValueError(
                    f"steps={config.steps} must be more than the {self.current_step} steps run "
                    f"'{run.run_id}' has already done"
                )
            # A longer resume is recorded, so config.json always states the run's target.
            run.update_config(config)

    def close(self) -> None:
        """Hand the networks to the next Trainer of the same shape; this one must not train again."""
        self._remove_scratch()
        with _idle_networks_lock:
            # One idle set per strategy at most: memory stays bounded.
            for key in [key for key in _idle_networks if key[-1] is self.strategy]:
                del _idle_networks[key]
            _idle_networks[self._networks_key] = self._networks

    def _remove_scratch(self) -> None:
        if self._scratch_folder is not None:
            shutil.rmtree(self._scratch_folder, ignore_errors=True)

    @property
    def current_step(self) -> int:
        """Steps trained so far (int() of the counter fails on a strategy's replicated variable)."""
        return int(self.step.numpy())

    # Outputs.

    @property
    def sampling_generator(self) -> keras.Model:
        """The averaged G when averaging is on (smoother faces), else G itself."""
        return self.ema_generator if self.config.ema_decay > 0 else self.generator

    def sample_grid(self) -> np.ndarray:
        """The fixed-noise grid as one uint8 picture; the same z every time, so grids compare."""
        faces = model_range_to_uint8(self.sampling_generator(self.fixed_z, training=False))
        return make_grid(faces, self.config.grid_size)

    def save_checkpoint(self) -> None:
        """Write and verify a checkpoint, then export the sampling generator next to it.

        Raises NonFiniteTraining instead of saving weights that are not finite.
        """
        if not bool(self.weights_are_finite()):
            raise NonFiniteTraining(f"weights are not finite at step {self.current_step}; not saving them")
        self.checkpoints.save(self.current_step, self.checkpoint.write)
        self.export_generator()

    def _restore(self, prefix: str) -> None:
        stored_shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
        stored_bounties = stored_shapes.get("photo_bounties/.ATTRIBUTES/VARIABLE_VALUE")
        if stored_bounties is None or stored_bounties == self.photo_bounties.shape.as_list():
            self.checkpoint.read(prefix).expect_partial()
        else:
            # Photos were added or removed since: their bounties start again, level (they settle within
            # a few dozen steps); everything else resumes as it was.
            logger.info(
                "%s: %d photos now, %d at the checkpoint; their bounties start again", self.run_dir.run_id,
                self.photo_bounties.shape[0], stored_bounties[0] if stored_bounties else 0,
            )
            self._networks.checkpoint_without_bounties.read(prefix).expect_partial()
        # The optimizers' learning rates are variables in the checkpoint; a branch may change them.
        self.optimizer_g.learning_rate.assign(self.config.learning_rate_g)
        self.optimizer_d.learning_rate.assign(self.config.learning_rate_d)

    def _check_architecture_matches_run(self) -> None:
        """A run's networks are shaped by its own config.json; other shapes are refused by name."""
        try:
            stored = self.run_dir.read_config()
        except RunError:
            return  # no readable config.json: RunDir.open refuses such a folder before it gets here
        for name in ARCHITECTURE_FIELDS:
            if getattr(stored, name) != getattr(self.config, name):
                raise ValueError(
                    f"run '{self.run_dir.run_id}' was trained with {name}={getattr(stored, name)}; these settings "
                    f"ask for {name}={getattr(self.config, name)}. Use the run's own value or start a new run."
                )

    def export_generator(self) -> None:
        # Keras insists on the .keras suffix, so the temporary name keeps it before the rename.
        temporary = self.run_dir.path / ".generator.tmp.keras"
        self.sampling_generator.save(temporary)
        atomic_write_bytes(self.run_dir.generator_path, temporary.read_bytes())
        temporary.unlink()

    # The loop.

    def run(self, hooks: TrainingHooks | None = None) -> str:
        """Train until config.steps or a stop; returns the final state, 'finished' or 'stopped'.

        An exception is written to status.json as 'failed' and raised again.
        """
        hooks = hooks or TrainingHooks()
        config, run = self.config, self.run_dir
        try:
            return self._loop(hooks)
        except Exception as error:
            message = self._explain(error)
            logger.exception("training of %s failed: %s", run.run_id, message)
            try:
                run.write_status("failed", self.current_step, config.steps, message)
            except OSError:
                logger.exception("could not record the failure in %s", run.status_path)
            raise
        finally:
            self._remove_scratch()  # a worker's copy served only this session

    def _explain(self, error: Exception) -> str:
        """A failure in words a user can act on."""
        good, _ = self.checkpoints.newest_good()
        kept = f"The last good checkpoint, step {good.step}, is intact." if good else "No checkpoint was written yet."
        if isinstance(error, (OSError, CheckpointError)):
            return (
                f"Cannot write to {self.run_dir.path}: {error}. Free some disk space or choose a writable runs "
                f"folder (DCGAN_STUDIO_RUNS_DIR), then continue the run. {kept}"
            )
        if isinstance(error, NonFiniteTraining):
            return (
                f"Training diverged: {error}. Lower the learning rates (now G {self.config.learning_rate_g:g}, "
                f"D {self.config.learning_rate_d:g}); halving both usually helps. {kept}"
            )
        return f"{type(error).__name__}: {error}"

    def _loop(self, hooks: TrainingHooks) -> str:
        config, run = self.config, self.run_dir
        start_step = self.current_step
        run.truncate_metrics_after(start_step)
        run.truncate_quality_after(start_step)
        run.write_status("running", start_step, config.steps, "; ".join(self.resume_notes))
        if start_step == 0 and not self.checkpoints.complete():
            self.checkpoints.save(0, self.checkpoint.write)  # so a first bad step can roll back

        quality = None
        if config.metrics_every_steps and self.is_chief:  # the chief's run is the one that is scored
            quality = QualityWorker(self.images, lambda row: self._record_quality(hooks, row), config)
        try:
            return self._steps(hooks, start_step, quality)
        finally:
            if quality is not None:
                quality.close()

    def _steps(self, hooks: TrainingHooks, start_step: int, quality: QualityWorker | None) -> str:
        config, run = self.config, self.run_dir
        batches = iter(make_training_dataset(self.images, config.batch_size, config.seed, start_step))
        rollbacks = 0
        previous_elapsed = self._elapsed_from_metrics()
        train_started = time.perf_counter()
        paused_sec = 0.0
        interval_started, interval_steps = time.perf_counter(), 0
        step = start_step
        state = "finished"

        while step < config.steps:
            if hooks.should_stop():
                state = "stopped"
                break
            if hooks.is_paused():
                paused_sec += self._wait_while_paused(hooks, step)
                interval_started, interval_steps = time.perf_counter(), 0
                continue

            real = next(batches)
            results = self.train_step(real)
            if config.r1_gamma > 0 and (step + 1) % R1_INTERVAL_STEPS == 0:
                self.r1_step(real)
            if not bool(results["finite"]):
                rollbacks += 1
                if rollbacks > MAX_ROLLBACKS:
                    raise NonFiniteTraining(f"losses or weights became NaN or infinite at step {step + 1} again")
                step = self._roll_back(step + 1)
                batches = iter(make_training_dataset(self.images, config.batch_size, config.seed, step))
                interval_started, interval_steps = time.perf_counter(), 0
                continue
            step += 1
            interval_steps += 1

            if step % config.log_every_steps == 0 or step == config.steps:
                now = time.perf_counter()
                record = StepRecord(
                    step=step,
                    total_steps=config.steps,
                    d_loss=float(results["d_loss"]),
                    g_loss=float(results["g_loss"]),
                    d_real=float(results["d_real"]),
                    d_fake=float(results["d_fake"]),
                    augment_probability=float(results["augment_probability"]),
                    images_per_sec=interval_steps * config.batch_size / max(now - interval_started, 1e-9),
                    elapsed_sec=previous_elapsed + now - train_started - paused_sec,
                )
                run.append_metrics([record.as_row()])
                hooks.on_record(record)
                logger.info(
                    "step %6d/%d  D loss %.3f  G loss %.3f  D(x) %.3f  D(G(z)) %.3f  %.1f img/s",
                    step, config.steps, record.d_loss, record.g_loss, record.d_real, record.d_fake,
                    record.images_per_sec,
                )
                interval_started, interval_steps = time.perf_counter(), 0

            if step % config.sample_every_steps == 0 or step == config.steps:
                self._save_sample(hooks, step)
                # Other processes (a dashboard watching a CLI run) read progress from here.
                run.write_status("running", step, config.steps)
            if step % config.checkpoint_every_steps == 0 or step == config.steps:
                self.save_checkpoint()
            if quality is not None and (step % config.metrics_every_steps == 0 or step == config.steps):
                quality.submit(step, self.sampling_generator.get_weights())

        if step > start_step and step % config.checkpoint_every_steps != 0 and step != config.steps:
            # Stopped between checkpoints: keep the work done since the last one. The checkpoint
            # first: when the dashboard's process is ending (SIGTERM), drawing the grid has failed
            # inside Keras, and the steps must not be lost with it.
            self.save_checkpoint()
            self._save_sample(hooks, step)
        if not run.generator_path.exists():
            self.export_generator()
        if quality is not None:
            quality.close()  # the last scores are on disk before the run says it ended
        run.write_status(state, step, config.steps, hooks.stop_reason() if state == "stopped" else "")
        return state

    def quality_sample(self) -> np.ndarray:
        """QUALITY_SAMPLE_COUNT images from fixed seeds by the sampling G, uint8, for the metrics."""
        return draw_quality_sample(self.sampling_generator, self.config.latent_dim)

    def _record_quality(self, hooks: TrainingHooks, row) -> None:
        self.run_dir.append_quality(row.as_row())
        hooks.on_quality(row)
        logger.info(
            "quality at step %d: SWD %.3f (photos %.3f)  MS-SSIM %.3f (photos %.3f)  near copies %.0f%%",
            row.step, row.swd, row.swd_baseline, row.diversity, row.diversity_training, 100 * row.near_copy_fraction,
        )

    def _roll_back(self, bad_step: int) -> int:
        """Restore the newest good checkpoint after a non-finite step; returns its step."""
        good, _ = self.checkpoints.newest_good()
        if good is None:
            raise NonFiniteTraining(f"losses or weights became NaN or infinite at step {bad_step}")
        self._restore(good.prefix)
        self.run_dir.truncate_metrics_after(good.step)
        self.run_dir.truncate_quality_after(good.step)
        note = f"step {bad_step} was not finite; rolled back to the checkpoint of step {good.step}"
        logger.warning("%s: %s", self.run_dir.run_id, note)
        self.run_dir.write_status("running", good.step, self.config.steps, note)
        return good.step

    def _save_sample(self, hooks: TrainingHooks, step: int) -> None:
        grid = self.sample_grid()
        self.run_dir.write_sample(step, grid)
        hooks.on_sample(step, grid)

    def _wait_while_paused(self, hooks: TrainingHooks, step: int) -> float:
        """Block until resumed or stopped; returns the seconds spent paused."""
        paused_at = time.perf_counter()
        self.run_dir.write_status("paused", step, self.config.steps, "paused by the user")
        while hooks.is_paused() and not hooks.should_stop():
            time.sleep(_PAUSE_POLL_SEC)
        if not hooks.should_stop():
            self.run_dir.write_status("running", step, self.config.steps)
        return time.perf_counter() - paused_at

    def _elapsed_from_metrics(self) -> float:
        elapsed = self.run_dir.read_metrics()["elapsed_sec"]
        return float(elapsed[-1]) if len(elapsed) else 0.0


def _scratch_copy(run: RunDir, folder: Path) -> RunDir:
    """A copy of a run for a worker that is not the chief: what resuming needs, not the pictures."""
    copy = folder / run.run_id
    shutil.copytree(run.path, copy, ignore=lambda _, names: [name for name in names if name == "samples"])
    (copy / "samples").mkdir(exist_ok=True)
    return RunDir(copy)
