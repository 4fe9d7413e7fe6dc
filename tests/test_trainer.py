"""Tests for core.trainer: each half of the step changes only its own network, and the loop
writes metrics, samples, checkpoints and status, stops on request and resumes where it left off.

Every run is a tiny 16 px DCGAN on drawn faces, a few steps long.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import TINY_SETTINGS, tiny_config
from core.checkpoints import CheckpointStore
from core.data import load_folder
from core.runs import RunDir
from core.trainer import StepRecord, Trainer, TrainingHooks, photos_at_side

RESOLUTION_PX = TINY_SETTINGS["resolution_px"]
BATCH_SIZE = TINY_SETTINGS["batch_size"]


@pytest.fixture
def dataset(face_folder):
    return load_folder(face_folder, RESOLUTION_PX)


def newest_checkpoint_step(run: RunDir) -> int:
    good, _ = CheckpointStore(run.checkpoints_dir, keep_last=3).newest_good()
    return good.step


def new_trainer(tmp_path, dataset, **changes) -> Trainer:
    config = tiny_config(
        dataset.folder, **({"steps": 4, "sample_every_steps": 100, "checkpoint_every_steps": 100} | changes)
    )
    run = RunDir.create(tmp_path / "runs", config, dataset)
    return Trainer(config, dataset.images, run)


def values_of(variables) -> list[np.ndarray]:
    return [np.array(variable.numpy()) for variable in variables]


def all_equal(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    return all(np.array_equal(old, new) for old, new in zip(before, after, strict=True))


def real_batch(dataset) -> tf.Tensor:
    return tf.cast(dataset.images[:BATCH_SIZE], tf.float32) / 127.5 - 1.0


class StopAfterSteps(TrainingHooks):
    """Asks the loop to stop once it has logged `steps` steps; keeps what it was shown."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.records: list[StepRecord] = []
        self.sample_steps: list[int] = []

    def should_stop(self) -> bool:
        return len(self.records) >= self.steps

    def on_record(self, record: StepRecord) -> None:
        self.records.append(record)

    def on_sample(self, step: int, grid: np.ndarray) -> None:
        self.sample_steps.append(step)


def test_discriminator_step_changes_d_and_leaves_every_g_variable_as_it_was(tmp_path, dataset):
    trainer = new_trainer(tmp_path, dataset)
    generator_before = values_of(trainer.generator.variables)
    discriminator_before = values_of(trainer.discriminator.variables)
    assert trainer.generator.non_trainable_variables  # batch-norm statistics are checked too

    results = trainer.discriminator_step(real_batch(dataset))

    assert all_equal(generator_before, values_of(trainer.generator.variables))
    assert not all_equal(discriminator_before, values_of(trainer.discriminator.variables))
    assert int(trainer.optimizer_g.iterations) == 0
    assert 0.0 < float(results["d_real"]) < 1.0 and 0.0 < float(results["d_fake"]) < 1.0
    assert np.isfinite(float(results["d_loss"]))


@pytest.mark.parametrize("spectral_norm", [False, True])  # with it, D's power-iteration vectors are checked too
def test_the_alternating_step_updates_d_as_the_d_step_does_then_g_without_touching_d_again(
    tmp_path, dataset, spectral_norm
):
    trainer = new_trainer(tmp_path, dataset, spectral_norm=spectral_norm)
    generator_before = values_of(trainer.generator.trainable_variables)
    discriminator_before = values_of(trainer.discriminator.variables)
    noise_state = trainer.noise.state.numpy()
    d_optimizer_before = values_of(trainer.optimizer_d.variables)  # its learning rate is one of them

    trainer.discriminator_step(real_batch(dataset))
    d_after_d_step = values_of(trainer.discriminator.variables)
    assert all_equal(generator_before, values_of(trainer.generator.trainable_variables))
    # The same start again: weights, D's optimizer and the noise (so the same z and augmentation).
    for variable, value in zip(trainer.discriminator.variables, discriminator_before, strict=True):
        variable.assign(value)
    for variable, value in zip(trainer.optimizer_d.variables, d_optimizer_before, strict=True):
        variable.assign(value)
    trainer.noise.reset(noise_state)

    results = trainer.alternating_step(real_batch(dataset))

    # D moved exactly as in the D step; G's half, through D with training=False, left D there.
    for after_alternating, expected in zip(values_of(trainer.discriminator.variables), d_after_d_step, strict=True):
        np.testing.assert_allclose(after_alternating, expected, rtol=1e-6, atol=1e-7)
    assert not all_equal(generator_before, values_of(trainer.generator.trainable_variables))
    assert int(trainer.optimizer_g.iterations) == 1
    assert np.isfinite(float(results["g_loss"])) and np.isfinite(float(results["d_loss"]))


def test_a_full_run_writes_metrics_samples_a_checkpoint_the_generator_and_finished(tmp_path, dataset):
    trainer = new_trainer(
        tmp_path, dataset, steps=6, log_every_steps=2, sample_every_steps=3, checkpoint_every_steps=3
    )
    run = trainer.run_dir

    state = trainer.run()

    assert state == "finished"
    assert int(trainer.step) == 6
    metrics = run.read_metrics()
    assert metrics["step"].tolist() == [2.0, 4.0, 6.0]
    assert np.isfinite(metrics["d_loss"]).all() and np.isfinite(metrics["g_loss"]).all()
    assert (metrics["images_per_sec"] > 0).all()
    assert np.all(np.diff(metrics["elapsed_sec"]) > 0)
    assert [step for step, _ in run.list_samples()] == [3, 6]
    grid = np.asarray(Image.open(run.latest_sample()[1]))
    assert grid.shape == (2 * RESOLUTION_PX + 3 * 2, 2 * RESOLUTION_PX + 3 * 2, 3)
    assert newest_checkpoint_step(run) == 6
    assert run.generator_path.stat().st_size > 0
    status = run.read_status()
    assert (status["state"], status["step"], status["total_steps"]) == ("finished", 6, 6)


def test_a_hook_asking_to_stop_after_two_steps_ends_the_run_stopped_at_step_two(tmp_path, dataset):
    trainer = new_trainer(tmp_path, dataset, steps=50)
    hooks = StopAfterSteps(2)

    state = trainer.run(hooks)

    assert state == "stopped"
    assert int(trainer.step) == 2
    assert [record.step for record in hooks.records] == [1, 2]
    status = trainer.run_dir.read_status()
    assert (status["state"], status["step"], status["total_steps"]) == ("stopped", 2, 50)
    assert status["reason"] == "stopped by the user"
    # Stopped between checkpoints, the work done is still kept.
    assert hooks.sample_steps == [2]
    assert newest_checkpoint_step(trainer.run_dir) == 2
    assert trainer.run_dir.generator_path.exists()


def test_a_new_trainer_on_the_same_run_resumes_from_the_saved_step_not_from_zero(tmp_path, dataset):
    first = new_trainer(tmp_path, dataset, steps=3)
    assert first.run() == "finished"
    weights_at_step_three = values_of(first.generator.variables)
    fixed_z = first.fixed_z.numpy()

    resumed = Trainer(first.config.replace(steps=5), dataset.images, first.run_dir)

    assert int(resumed.step) == 3
    assert all_equal(weights_at_step_three, values_of(resumed.generator.variables))
    np.testing.assert_array_equal(resumed.fixed_z.numpy(), fixed_z)
    assert int(resumed.optimizer_g.iterations) == 3 and int(resumed.optimizer_d.iterations) == 3

    assert resumed.run() == "finished"

    metrics = first.run_dir.read_metrics()
    assert metrics["step"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.all(np.diff(metrics["elapsed_sec"]) > 0)  # the clock continues, too
    status = first.run_dir.read_status()
    assert (status["state"], status["step"], status["total_steps"]) == ("finished", 5, 5)


def test_resuming_drops_metrics_logged_after_the_last_checkpoint(tmp_path, dataset):
    first = new_trainer(tmp_path, dataset, steps=4, checkpoint_every_steps=2)
    assert first.run() == "finished"
    # Pretend the process died after logging step 4 but before its checkpoint was published.
    checkpoints_dir = first.run_dir.checkpoints_dir
    (checkpoints_dir / "step_000004").rename(checkpoints_dir / ".partial-step_000004")

    resumed = Trainer(first.config, dataset.images, first.run_dir)
    assert int(resumed.step) == 2
    assert first.run_dir.read_metrics()["step"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert resumed.run() == "finished"

    assert first.run_dir.read_metrics()["step"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_the_photos_bounties_resume_with_the_run_and_start_level_when_photos_were_removed(tmp_path, dataset):
    first = new_trainer(tmp_path, dataset, steps=3)
    assert first.config.coverage_weight > 0  # on by default
    assert first.run() == "finished"
    bounties = first.photo_bounties.numpy()
    assert bounties.shape == (dataset.count,) and np.any(bounties != 0.0)
    weights = values_of(first.generator.variables)
    first.close()

    resumed = Trainer(first.config.replace(steps=4), dataset.images, first.run_dir)
    np.testing.assert_array_equal(resumed.photo_bounties.numpy(), bounties)
    resumed.close()

    fewer_photos = Trainer(first.config.replace(steps=4), dataset.images[:-1], first.run_dir)

    assert fewer_photos.photo_bounties.numpy().tolist() == [0.0] * (dataset.count - 1)
    assert int(fewer_photos.step) == 3 and all_equal(weights, values_of(fewer_photos.generator.variables))
    assert fewer_photos.run() == "finished"


def test_photos_larger_than_the_claim_side_are_averaged_down_block_by_block():
    photos = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)

    averaged = photos_at_side(photos, 2)

    assert averaged.shape == (2, 2, 2, 3) and averaged.dtype == np.float32
    np.testing.assert_allclose(averaged[1, 0, 1], photos[1, 0:2, 2:4].reshape(-1, 3).mean(axis=0))
    np.testing.assert_array_equal(photos_at_side(photos, 4), photos)


def test_a_stop_between_checkpoints_keeps_its_steps_even_when_the_last_grid_cannot_be_drawn(tmp_path, dataset):
    trainer = new_trainer(tmp_path, dataset, steps=10)

    def failing_grid():
        raise AttributeError("'list' object has no attribute 'ndim'")  # what Keras raised as a process ended

    trainer.sample_grid = failing_grid
    with pytest.raises(AttributeError):
        trainer.run(StopAfterSteps(3))

    assert newest_checkpoint_step(trainer.run_dir) == 3
