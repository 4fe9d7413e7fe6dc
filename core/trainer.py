"""The DCGAN training step and loop. No threads and no UI: callers pass hooks.

One step is one D update on a real batch and a batch from G, then one G update against
the updated D, with the non-saturating loss of Goodfellow et al. Each update names the
variables it changes, so neither network's weights move during the other's update.

A run can be killed at any moment and resumed: checkpoints (``core.checkpoints``) hold
both networks, both optimizers, the averaged G, the step, the noise generator and the
fixed grid noise, and the batch of step s depends only on (seed, s). A step whose
losses or weights are not finite is undone by rolling back to the last checkpoint; a
second one stops the run with a suggested remedy. A checkpoint is never written from
non-finite weights.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from core.checkpoints import CheckpointError, CheckpointStore
from core.config import ARCHITECTURE_FIELDS, TrainConfig
from core.data import make_training_dataset
from core.augment import adjusted_probability, augment
from core.imaging import make_grid, model_range_to_uint8
from core.losses import (
    WGAN_GP_WEIGHT, discriminator_loss, generator_loss, gradient_penalty, mode_seeking_penalty, r1_penalty,
)
from core.latent import generate_images, seeds_to_z
from core.models import build_discriminator, build_generator
from core.quality import QualityWorker, quality_seeds
from core.runs import RunDir, RunError, atomic_write_bytes

logger = logging.getLogger(__name__)

_PAUSE_POLL_SEC = 0.05
_EMA_WARMUP_STEPS = 10  # the average starts short and lengthens, so early samples are not stale
MAX_ROLLBACKS = 1  # a second non-finite step in one session stops the run
R1_INTERVAL_STEPS = 4


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
)
_idle_networks: dict[tuple, "_Networks"] = {}  # at most one set, handed from a finished Trainer to the next
_idle_networks_lock = threading.Lock()


class _Networks:
    """G, D, the averaged G, both optimizers, the counters and the compiled step.

    Kept from one run to the next when the shape is the same (NETWORK_SHAPE_FIELDS),
    because TensorFlow never frees an XLA-compiled step (tensorflow/tensorflow#64170):
    building a fresh set for every run grew the process by about 25 MB per run.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        self.ema_generator = build_generator(config)
        self.optimizer_g = keras.optimizers.Adam(config.learning_rate_g, beta_1=config.beta1)
        self.optimizer_d = keras.optimizers.Adam(config.learning_rate_d, beta_1=config.beta1)
        self.optimizer_g.build(self.generator.trainable_variables)
        self.optimizer_d.build(self.discriminator.trainable_variables)

        # Everything a resume needs lives in one checkpoint, the fixed grid noise included.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.noise = tf.random.Generator.from_seed(config.seed)
        self.fixed_z = tf.Variable(
            seeds_to_z(range(config.grid_count), config.latent_dim), trainable=False, name="fixed_z"
        )
        self.augment_probability = tf.Variable(0.0, trainable=False, name="augment_probability")
        self.checkpoint = tf.train.Checkpoint(
            augment_probability=self.augment_probability,
            generator=self.generator,
            discriminator=self.discriminator,
            ema_generator=self.ema_generator,
            optimizer_g=self.optimizer_g,
            optimizer_d=self.optimizer_d,
            step=self.step,
            noise=self.noise,
            fixed_z=self.fixed_z,
        )

        # XLA fuses the whole step: measured 1.3-1.5x faster on a 2-core CPU at 32 px.
        # The step has no tensor-dependent Python control flow, so AutoGraph is off: its
        # source rewriting of these methods failed intermittently in a background thread.
        self.train_step = tf.function(self._train_step, jit_compile=True, autograph=False)
        self.r1_step = tf.function(self._r1_step, jit_compile=True, autograph=False)
        self.weights_are_finite = tf.function(self._weights_are_finite, autograph=False)
        self.discriminator_step = tf.function(self._discriminator_step, autograph=False)
        self.generator_step = tf.function(self._generator_step, autograph=False)

    def reset(self, config: TrainConfig) -> None:
        """Fresh weights drawn from config.seed, empty optimizer state, step 0: a new run."""
        self.config = config
        keras.utils.set_random_seed(config.seed)
        fresh_generator = build_generator(config)
        fresh_discriminator = build_discriminator(config)
        self.generator.set_weights(fresh_generator.get_weights())
        self.ema_generator.set_weights(fresh_generator.get_weights())
        self.discriminator.set_weights(fresh_discriminator.get_weights())
        for variable in self.optimizer_g.variables + self.optimizer_d.variables:
            variable.assign(tf.zeros_like(variable))
        self.optimizer_g.learning_rate.assign(config.learning_rate_g)
        self.optimizer_d.learning_rate.assign(config.learning_rate_d)
        self.step.assign(0)
        self.noise.reset_from_seed(config.seed)
        self.fixed_z.assign(seeds_to_z(range(config.grid_count), config.latent_dim))
        # A fixed policy augments every image; ADA starts from none and adds as D overfits.
        self.augment_probability.assign(0.0 if config.ada_target > 0 else 1.0)

    # The step.

    def _discriminator_step(self, real: tf.Tensor) -> dict[str, tf.Tensor]:
        """Teach D to score real images high and G's images low. Only D's weights change."""
        config = self.config
        z = self.noise.normal([tf.shape(real)[0], config.latent_dim])
        seeds = tf.cast(self.noise.make_seeds(3), tf.int32)
        # stateless_call runs G in training mode without updating its batch-norm statistics,
        # so this update leaves every G variable as it was.
        fake, _ = self.generator.stateless_call(
            self.generator.trainable_variables, self.generator.non_trainable_variables, z, training=True
        )
        # D sees real and generated images through the same kind of augmentation.
        real_seen = augment(real, config.augment, self.augment_probability, seeds[:, 0])
        fake_seen = augment(fake, config.augment, self.augment_probability, seeds[:, 1])
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real_seen, training=True)
            fake_logits = self.discriminator(fake_seen, training=True)
            d_loss = discriminator_loss(config.loss, real_logits, fake_logits, config.label_smoothing)
            if config.loss == "wgan_gp":
                d_loss += WGAN_GP_WEIGHT * gradient_penalty(self.discriminator, real_seen, fake_seen, seeds[:, 2])

        variables = self.discriminator.trainable_variables
        self.optimizer_d.apply_gradients(zip(tape.gradient(d_loss, variables), variables))

        if config.ada_target > 0:
            real_sign_mean = tf.reduce_mean(tf.sign(real_logits))
            self.augment_probability.assign(
                adjusted_probability(self.augment_probability, real_sign_mean, config.ada_target, config.batch_size)
            )
        return {
            "d_loss": d_loss,
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits)),
        }

    def _r1_step(self, real: tf.Tensor) -> tf.Tensor:
        """A separate D update on the R1 penalty alone, every R1_INTERVAL_STEPS steps and weighted up
        to match (lazy regularisation, Karras et al. 2020): R1 in every step halved the speed."""
        config = self.config
        seeds = tf.cast(self.noise.make_seeds(1), tf.int32)
        real_seen = augment(real, config.augment, self.augment_probability, seeds[:, 0])
        with tf.GradientTape() as tape:
            penalty = r1_penalty(self.discriminator, real_seen)
            weighted = 0.5 * config.r1_gamma * R1_INTERVAL_STEPS * penalty
        variables = self.discriminator.trainable_variables
        self.optimizer_d.apply_gradients(zip(tape.gradient(weighted, variables), variables))
        return penalty

    def _generator_step(self, batch_size: tf.Tensor) -> dict[str, tf.Tensor]:
        """Teach G to make D score its images high. Only G's weights change."""
        config = self.config
        z = self.noise.normal([batch_size, config.latent_dim])
        seeds = tf.cast(self.noise.make_seeds(1), tf.int32)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            # training=False: D has no batch norm, and spectral normalisation must not
            # update D's weights during G's step.
            fake_logits = self.discriminator(
                augment(fake, config.augment, self.augment_probability, seeds[:, 0]), training=False
            )
            g_loss = generator_loss(config.loss, fake_logits)
            if config.mode_seeking > 0 and config.batch_size >= 2:  # a pair is needed
                g_loss += config.mode_seeking * mode_seeking_penalty(fake, z)
        variables = self.generator.trainable_variables
        self.optimizer_g.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return {"g_loss": g_loss}

    def _update_ema(self) -> None:
        step = tf.cast(self.step, tf.float32)
        decay = tf.minimum(self.config.ema_decay, (1.0 + step) / (_EMA_WARMUP_STEPS + step))
        for average, weight in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * weight)
        # Batch-norm statistics are already running averages; copy them as they are.
        for average, weight in zip(self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables):
            average.assign(weight)

    def _train_step(self, real: tf.Tensor) -> dict[str, tf.Tensor]:
        for _ in range(self.config.d_steps_per_g):  # each D update sees the same real batch, new z
            results = self._discriminator_step(real)
        results.update(self._generator_step(tf.shape(real)[0]))
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


class Trainer:
    """Trains one run: G, D, the averaged G and both optimizers, restored from its newest checkpoint."""

    def __init__(self, config: TrainConfig, images: np.ndarray, run: RunDir) -> None:
        self.config = config
        self.images = images
        self.run_dir = run

        key = tuple(getattr(config, name) for name in NETWORK_SHAPE_FIELDS)
        with _idle_networks_lock:
            networks = _idle_networks.pop(key, None)
        if networks is None:
            networks = _Networks(config)
        networks.reset(config)
        self._networks, self._networks_key = networks, key
        # The parts a caller (or a test) reaches for, under their usual names.
        self.generator, self.discriminator = networks.generator, networks.discriminator
        self.ema_generator = networks.ema_generator
        self.optimizer_g, self.optimizer_d = networks.optimizer_g, networks.optimizer_d
        self.step, self.noise, self.fixed_z = networks.step, networks.noise, networks.fixed_z
        self.checkpoint = networks.checkpoint
        self.train_step, self.weights_are_finite = networks.train_step, networks.weights_are_finite
        self.r1_step = networks.r1_step
        self.discriminator_step, self.generator_step = networks.discriminator_step, networks.generator_step

        self.checkpoints = CheckpointStore(run.checkpoints_dir, keep_last=config.keep_checkpoints)
        self.resume_notes: list[str] = []  # checkpoints skipped on resume, in words
        self._check_architecture_matches_run()
        latest, skipped = self.checkpoints.newest_good()
        self.resume_notes = [f"skipped {note}" for note in skipped]
        for note in self.resume_notes:
            logger.warning("%s: %s", run.run_id, note)
        if latest is not None:
            self._restore(latest.prefix)
            logger.info("resumed %s at step %d", run.run_id, int(self.step))
            if int(self.step) >= config.steps:
                raise ValueError(
                    f"steps={config.steps} must be more than the {int(self.step)} steps run "
                    f"'{run.run_id}' has already done"
                )
            # A longer resume is recorded, so config.json always states the run's target.
            run.update_config(config)


    def close(self) -> None:
        """Hand the networks to the next Trainer of the same shape; this one must not train again."""
        with _idle_networks_lock:
            _idle_networks.clear()  # one idle set at most: memory stays bounded
            _idle_networks[self._networks_key] = self._networks

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
            raise NonFiniteTraining(f"weights are not finite at step {int(self.step)}; not saving them")
        self.checkpoints.save(int(self.step), self.checkpoint.write)
        self.export_generator()

    def _restore(self, prefix: str) -> None:
        self.checkpoint.read(prefix).expect_partial()
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
                run.write_status("failed", int(self.step), config.steps, message)
            except OSError:
                logger.exception("could not record the failure in %s", run.status_path)
            raise

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
        start_step = int(self.step)
        run.truncate_metrics_after(start_step)
        run.truncate_quality_after(start_step)
        run.write_status("running", start_step, config.steps, "; ".join(self.resume_notes))
        if start_step == 0 and not self.checkpoints.complete():
            self.checkpoints.save(0, self.checkpoint.write)  # so a first bad step can roll back

        quality = None
        if config.metrics_every_steps:
            quality = QualityWorker(self.images, lambda row: self._record_quality(hooks, row))
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
                quality.submit(step, self.quality_sample())

        if step > start_step and step % config.checkpoint_every_steps != 0 and step != config.steps:
            # Stopped between checkpoints: keep the work done since the last one.
            self._save_sample(hooks, step)
            self.save_checkpoint()
        if not run.generator_path.exists():
            self.export_generator()
        if quality is not None:
            quality.close()  # the last scores are on disk before the run says it ended
        run.write_status(state, step, config.steps, "stopped by the user" if state == "stopped" else "")
        return state

    def quality_sample(self) -> np.ndarray:
        """QUALITY_SAMPLE_COUNT images from fixed seeds by the sampling G, uint8, for the metrics."""
        z = seeds_to_z(quality_seeds(), self.config.latent_dim)
        return generate_images(self.sampling_generator, z)

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
