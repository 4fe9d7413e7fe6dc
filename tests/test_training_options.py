"""Tests for the training options of core.config as core.trainer applies them: every loss
trains, spectral normalisation wraps D and stays put during G's step, R1 runs every
R1_INTERVAL_STEPS steps, D takes d_steps_per_g updates, ADA steers and checkpoints its
probability, quality rows reach quality.csv before run() returns, and idle networks are
reused only by a run whose compiled step would be the same.

Every run is a tiny 16 px DCGAN on drawn faces, a few steps long. Most tests run the
step's tf.functions eagerly: compiling the step costs seconds per configuration on a
loaded 2-core CPU, and the Python that runs is the same. The last test compiles the step
once with the loss, spectral normalisation, R1 and ADA options on, so the graph holds them.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_SETTINGS, tiny_config
from core.augment import ADA_IMAGES_TO_FULL_STRENGTH
from core.config import LOSSES
from core.data import load_folder
from core.quality import QUALITY_SAMPLE_COUNT
from core.runs import RunDir
from core.trainer import R1_INTERVAL_STEPS, Trainer, TrainingHooks

RESOLUTION_PX = TINY_SETTINGS["resolution_px"]
BATCH_SIZE = TINY_SETTINGS["batch_size"]
ADA_TARGET = 0.01  # D's real scores are mostly positive from the first steps, so p rises


@pytest.fixture
def dataset(face_folder):
    return load_folder(face_folder, RESOLUTION_PX)


@pytest.fixture
def eager_steps():
    """Run every tf.function as plain Python for the test's duration."""
    previous = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(previous)


def new_trainer(tmp_path, dataset, **changes) -> Trainer:
    config = tiny_config(
        dataset.folder, **({"steps": 3, "sample_every_steps": 100, "checkpoint_every_steps": 100} | changes)
    )
    run = RunDir.create(tmp_path / "runs", config, dataset)
    return Trainer(config, dataset.images, run)


class Recorder(TrainingHooks):
    def __init__(self) -> None:
        self.records = []
        self.quality_rows = []

    def on_record(self, record) -> None:
        self.records.append(record)

    def on_quality(self, row) -> None:
        self.quality_rows.append(row)


def trained(trainer: Trainer) -> Recorder:
    """Run the trainer to its last step; returns what the hooks saw."""
    hooks = Recorder()
    assert trainer.run(hooks) == "finished"
    return hooks


def losses_are_finite(records) -> bool:
    return all(np.isfinite([record.d_loss, record.g_loss, record.d_real, record.d_fake]).all() for record in records)


def values_of(variables) -> list[np.ndarray]:
    return [np.array(variable.numpy()) for variable in variables]


def augment_probability(trainer: Trainer) -> float:
    return float(trainer.checkpoint.augment_probability)


def count_r1_steps(trainer: Trainer) -> list[int]:
    """Wrap trainer.r1_step; the list fills with the step counter at each call."""
    calls = []
    r1_step = trainer.r1_step

    def counted(real):
        calls.append(int(trainer.step))
        return r1_step(real)

    trainer.r1_step = counted
    return calls


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_with_finite_losses_and_a_fixed_policy_augments_every_image(
    tmp_path, dataset, eager_steps, loss
):
    # Label smoothing is on: the non-saturating and least-squares losses use it, the others ignore it.
    trainer = new_trainer(tmp_path, dataset, loss=loss, label_smoothing=0.1)
    r1_calls = count_r1_steps(trainer)

    hooks = trained(trainer)

    assert [record.step for record in hooks.records] == [1, 2, 3]
    assert losses_are_finite(hooks.records)
    assert {record.augment_probability for record in hooks.records} == {1.0}
    assert r1_calls == []  # r1_gamma is 0


def test_spectral_norm_wraps_every_d_layer_with_weights_and_trains(tmp_path, dataset, eager_steps):
    # That G's half of a step leaves D's power-iteration vectors alone: tests/test_trainer.py.
    trainer = new_trainer(tmp_path, dataset, spectral_norm=True)
    layer_kinds = [type(layer).__name__ for layer in trainer.discriminator.layers]
    assert "Conv2D" not in layer_kinds and "Dense" not in layer_kinds
    assert layer_kinds.count("SpectralNormalization") == len(
        [layer for layer in trainer.discriminator.layers if layer.weights]
    )
    assert losses_are_finite(trained(trainer).records)


def test_spectral_norm_is_part_of_the_architecture_a_run_is_resumed_with(tmp_path, dataset):
    config = tiny_config(dataset.folder, steps=3)
    run = RunDir.create(tmp_path / "runs", config, dataset)

    with pytest.raises(ValueError, match="spectral_norm"):
        Trainer(config.replace(spectral_norm=True, steps=5), dataset.images, run)


def test_r1_runs_every_fourth_step_as_an_extra_d_update_and_training_stays_finite(tmp_path, dataset, eager_steps):
    steps = 2 * R1_INTERVAL_STEPS
    trainer = new_trainer(tmp_path, dataset, r1_gamma=1.0, steps=steps)
    r1_calls = count_r1_steps(trainer)

    hooks = trained(trainer)

    assert r1_calls == [R1_INTERVAL_STEPS, 2 * R1_INTERVAL_STEPS]
    assert int(trainer.optimizer_d.iterations) == steps + len(r1_calls)
    assert losses_are_finite(hooks.records)
    assert bool(trainer.weights_are_finite())


def test_d_steps_per_g_applies_that_many_d_updates_per_step(tmp_path, dataset, eager_steps):
    trainer = new_trainer(tmp_path, dataset, d_steps_per_g=2, steps=3)

    hooks = trained(trainer)

    assert int(trainer.optimizer_d.iterations) == 2 * 3
    assert int(trainer.optimizer_g.iterations) == 3
    assert losses_are_finite(hooks.records)


def test_simultaneous_updates_step_d_and_g_once_each_and_keep_extra_d_updates(tmp_path, dataset, eager_steps):
    one_each = new_trainer(tmp_path, dataset, simultaneous_updates=True, steps=3)
    two_d = new_trainer(tmp_path, dataset, simultaneous_updates=True, d_steps_per_g=2, steps=3)

    for trainer, d_updates in ((one_each, 3), (two_d, 6)):
        hooks = trained(trainer)
        assert int(trainer.optimizer_d.iterations) == d_updates
        assert int(trainer.optimizer_g.iterations) == 3
        assert losses_are_finite(hooks.records)


def test_ada_starts_with_no_augmentation_steers_it_each_step_and_resumes_where_it_was(
    tmp_path, dataset, eager_steps
):
    trainer = new_trainer(tmp_path, dataset, ada_target=ADA_TARGET, steps=6)
    assert augment_probability(trainer) == 0.0

    hooks = trained(trainer)

    probabilities = [record.augment_probability for record in hooks.records]
    assert probabilities[-1] > 0.0
    step_size = BATCH_SIZE / ADA_IMAGES_TO_FULL_STRENGTH  # one D update per step moves p at most this much
    assert np.all(np.abs(np.diff([0.0, *probabilities])) <= step_size + 1e-7)
    assert all(0.0 <= probability <= 1.0 for probability in probabilities)
    saved = augment_probability(trainer)
    assert saved == pytest.approx(probabilities[-1])
    trainer.close()

    resumed = Trainer(trainer.config.replace(steps=8), dataset.images, RunDir.open(trainer.run_dir.path))

    assert int(resumed.step) == 6
    assert augment_probability(resumed) == saved  # a fresh ADA run would start at 0


def test_quality_rows_for_each_interval_are_in_quality_csv_when_run_returns(tmp_path, dataset, eager_steps):
    trainer = new_trainer(tmp_path, dataset, metrics_every_steps=2, steps=4)

    hooks = trained(trainer)

    rows = trainer.run_dir.read_quality()
    assert [row.step for row in rows] == [2, 4]
    assert rows == hooks.quality_rows
    for row in rows:
        numbers = [value for name, value in row.as_row().items() if name != "swd_levels"]
        assert np.all(np.isfinite(numbers)), row


def test_the_quality_sample_is_the_same_fixed_seed_images_every_time(tmp_path, dataset, eager_steps):
    trainer = new_trainer(tmp_path, dataset)

    sample = trainer.quality_sample()

    assert sample.shape == (QUALITY_SAMPLE_COUNT, RESOLUTION_PX, RESOLUTION_PX, 3) and sample.dtype == np.uint8
    assert np.array_equal(sample, trainer.quality_sample())
    assert len({picture.tobytes() for picture in sample}) > QUALITY_SAMPLE_COUNT // 2  # different seeds, faces


def test_a_trainer_differing_only_in_learning_rate_reuses_the_idle_networks(tmp_path, dataset):
    first = new_trainer(tmp_path, dataset)
    first.close()

    second = new_trainer(tmp_path, dataset, learning_rate_g=1e-3, learning_rate_d=5e-4)

    assert second.generator is first.generator and second.discriminator is first.discriminator
    assert float(second.optimizer_g.learning_rate) == pytest.approx(1e-3)
    assert float(second.optimizer_d.learning_rate) == pytest.approx(5e-4)
    assert int(second.step) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"loss": "hinge"},
        {"augment": ()},
        {"ada_target": 0.6},
        {"r1_gamma": 1.0},
        {"spectral_norm": True},
        {"label_smoothing": 0.1},
        {"d_steps_per_g": 2},
        {"mode_seeking": 1.0},
        {"coverage_weight": 1.0},
        {"simultaneous_updates": True},
        {"minibatch_std": False},
    ],
)
def test_a_trainer_with_another_training_option_builds_its_own_networks(tmp_path, dataset, change):
    first = new_trainer(tmp_path, dataset)
    first.close()

    other = new_trainer(tmp_path, dataset, **change)

    assert other.generator is not first.generator


def test_the_compiled_step_trains_with_the_new_d_options_on_at_once(tmp_path, dataset):
    # Augmentation in the graph is already compiled by tests/test_trainer.py (it is on by default);
    # leaving it out here, and D updates at one per step, halves this test's compile time.
    steps = R1_INTERVAL_STEPS
    trainer = new_trainer(
        tmp_path, dataset, steps=steps, augment=(), loss="wgan_gp", spectral_norm=True, r1_gamma=1.0,
        ada_target=ADA_TARGET, minibatch_std=False, mode_seeking=0.0,
    )  # fmt: skip
    r1_calls = count_r1_steps(trainer)

    hooks = trained(trainer)

    assert losses_are_finite(hooks.records)
    assert r1_calls == [R1_INTERVAL_STEPS]
    assert int(trainer.optimizer_d.iterations) == steps + 1
    assert hooks.records[-1].augment_probability > 0.0
    assert bool(trainer.weights_are_finite())


def test_minibatch_std_mode_seeking_and_coverage_train_in_the_compiled_step(tmp_path, dataset):
    trainer = new_trainer(
        tmp_path, dataset, steps=3, augment=(), minibatch_std=True, mode_seeking=1.0, coverage_weight=1.0
    )

    hooks = trained(trainer)

    assert losses_are_finite(hooks.records)
    assert len(hooks.records) == 3
    assert "minibatch_std" in [layer.name for layer in trainer.discriminator.layers]
    assert bool(trainer.weights_are_finite())
