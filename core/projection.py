"""Finding a photo in latent space: the z whose picture G draws closest to a photo.

``project`` starts from the best of a few seeds, then runs Adam on z (G fixed, in
inference mode) to lower the pixel distance to the photo, plus the same distance on
pictures shrunk DOWNSAMPLE_FACTOR times (it rewards the right overall layout before
fine detail), plus a weak prior that keeps ||z|| near sqrt(latent_dim), where G was trained.

``ProjectionTask`` runs it in a background thread that never touches the UI: it
publishes progress under a lock and stops within one step when asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.imaging import model_range_to_uint8, uint8_to_model_range
from core.latent import generate_images, seeds_to_z

logger = logging.getLogger(__name__)

START_CANDIDATES = 32  # seeds tried before optimising; the closest picture is the start
LEARNING_RATE = 0.05
ADAM_BETAS = (0.9, 0.999)
DOWNSAMPLE_FACTOR = 4
DOWNSAMPLED_WEIGHT = 1.0
NORM_PRIOR_WEIGHT = 0.01  # weak: a photo G cannot draw should still pull z where it must
PROJECTION_STATES = ("running", "finished", "stopped", "failed")


@dataclass(frozen=True)
class Projection:
    """The result: the z found, G's picture of it and the loss at every step."""

    z: np.ndarray  # (latent_dim,) float32, the lowest-loss z seen
    reconstruction: np.ndarray  # (R, R, 3) uint8
    losses: tuple[float, ...]  # one per step, before that step's update


def pixel_distance(pictures: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean squared difference in [0, 1] units of each uint8 picture from the target."""
    difference = pictures.astype(np.float32) / 255 - target.astype(np.float32) / 255
    return np.mean(difference.reshape(len(pictures), -1) ** 2, axis=1)


def project(
    generator,
    target_uint8: np.ndarray,
    steps: int,
    on_progress: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
) -> Projection:
    """Optimise z so that G(z) reconstructs target_uint8 (R, R, 3), at G's resolution.

    on_progress(step, loss) is called after each step (step counts from 1); the loop
    ends early when should_stop() returns True. Seeds seed .. seed + START_CANDIDATES - 1
    are the candidate starts.
    """
    import keras
    import tensorflow as tf

    latent_dim = int(generator.input_shape[-1])
    resolution_px = int(generator.output_shape[1])
    target_uint8 = np.asarray(target_uint8)
    if target_uint8.dtype != np.uint8 or target_uint8.shape != (resolution_px, resolution_px, 3):
        raise ValueError(
            f"target must be a ({resolution_px}, {resolution_px}, 3) uint8 picture, "
            f"got {target_uint8.shape} {target_uint8.dtype}"
        )
    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")

    # Start from the candidate seed whose picture is closest.
    candidates = seeds_to_z(range(seed, seed + START_CANDIDATES), latent_dim)
    start_distances = pixel_distance(generate_images(generator, candidates), target_uint8)
    z = candidates[int(np.argmin(start_distances))].copy()

    target = uint8_to_model_range(target_uint8[np.newaxis])
    use_small = resolution_px >= 2 * DOWNSAMPLE_FACTOR

    def shrink(pictures):
        return tf.nn.avg_pool2d(pictures, DOWNSAMPLE_FACTOR, DOWNSAMPLE_FACTOR, "VALID")

    target_small = shrink(target) if use_small else None

    z_variable = tf.Variable(z, trainable=True, name="projected_z")
    optimizer = keras.optimizers.Adam(learning_rate=LEARNING_RATE, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1])
    optimizer.build([z_variable])

    @tf.function
    def adam_step():
        """Loss at the current z, that z, then one Adam update of it."""
        with tf.GradientTape() as tape:
            picture = generator(z_variable[tf.newaxis], training=False)
            loss = tf.reduce_mean(tf.square(picture - target))
            if use_small:
                loss += DOWNSAMPLED_WEIGHT * tf.reduce_mean(tf.square(shrink(picture) - target_small))
            norm_ratio = tf.reduce_sum(tf.square(z_variable)) / latent_dim
            loss += NORM_PRIOR_WEIGHT * tf.square(norm_ratio - 1.0)
        z_before = tf.identity(z_variable)
        optimizer.apply_gradients([(tape.gradient(loss, z_variable), z_variable)])
        return loss, z_before

    losses: list[float] = []
    best_z, best_loss = z.copy(), np.inf
    for step in range(1, steps + 1):
        if should_stop is not None and should_stop():
            break
        loss, z_before = adam_step()
        loss = float(loss)
        losses.append(loss)
        if loss < best_loss:
            best_z, best_loss = z_before.numpy(), loss
        if on_progress is not None:
            on_progress(step, loss)

    reconstruction = model_range_to_uint8(generator(best_z[np.newaxis], training=False))[0]
    return Projection(z=best_z, reconstruction=reconstruction, losses=tuple(losses))


@dataclass(frozen=True)
class ProjectionSnapshot:
    state: str  # one of PROJECTION_STATES
    step: int
    total_steps: int
    last_loss: float | None
    result: Projection | None
    error: str = ""

    @property
    def is_running(self) -> bool:
        return self.state == "running"


class ProjectionTask:
    """One projection in a daemon thread; snapshot() and stop() from any thread."""

    def __init__(self, generator, target_uint8: np.ndarray, steps: int, seed: int = 0) -> None:
        self.target = np.asarray(target_uint8)
        self._arguments = (generator, self.target, steps)
        self._seed = seed
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._state, self._step, self._last_loss = "running", 0, None
        self._total_steps = steps
        self._result: Projection | None = None
        self._error = ""
        self._thread = threading.Thread(target=self._work, name="dcgan-projection", daemon=True)

    def start(self) -> "ProjectionTask":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_requested.set()

    def join(self, timeout_sec: float | None = None) -> bool:
        self._thread.join(timeout_sec)
        return not self._thread.is_alive()

    def snapshot(self) -> ProjectionSnapshot:
        with self._lock:
            return ProjectionSnapshot(
                self._state, self._step, self._total_steps, self._last_loss, self._result, self._error
            )

    def _on_progress(self, step: int, loss: float) -> None:
        with self._lock:
            self._step, self._last_loss = step, loss

    def _work(self) -> None:
        try:
            result = project(
                *self._arguments, on_progress=self._on_progress, should_stop=self._stop_requested.is_set,
                seed=self._seed,
            )
        except Exception as error:  # shown on the page; the app stays usable
            logger.exception("projection failed")
            with self._lock:
                self._state, self._error = "failed", f"{type(error).__name__}: {error}"
            return
        with self._lock:
            self._result = result
            self._state = "stopped" if self._stop_requested.is_set() else "finished"
