"""Small, fast versions of bench/speed.py: its three sides run and agree on what they train,
and the trainer's compiled step is traced once however a run goes.

The bench's real numbers (seconds per side, both resolutions) are in the README; here each
side runs a tiny 16 px model for about a second.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import speed
from bench.tutorial_dcgan import TutorialDCGAN
from conftest import tiny_config
from core.data import load_folder
from core.runs import RunDir
from core.trainer import Trainer, TrainingHooks


@pytest.fixture
def dataset(face_folder):
    return load_folder(face_folder, 16)


def parameter_count(model) -> int:
    return sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)


def test_the_tutorial_baseline_trains_the_trainers_networks_and_its_losses_move(dataset):
    config = tiny_config(dataset.folder, **speed.PLAIN_TRICKS)
    tutorial = TutorialDCGAN(config, dataset.images)
    trainer = Trainer(config, dataset.images, RunDir.create(dataset.folder.parent / "runs", config, dataset))
    try:
        assert parameter_count(tutorial.generator) == parameter_count(trainer.generator)
        assert parameter_count(tutorial.discriminator) == parameter_count(trainer.discriminator)
    finally:
        trainer.close()

    weights_before = [variable.numpy().copy() for variable in tutorial.generator.trainable_variables]
    losses = [tutorial.train_step(next(tutorial.batches)) for _ in range(3)]
    assert all(math.isfinite(float(value)) for pair in losses for value in pair)
    moved = [not np.array_equal(old, new.numpy()) for old, new in zip(weights_before, tutorial.generator.trainable_variables)]
    assert all(moved)
    assert tutorial.images_per_sec(0.2) > 0


def test_the_bench_times_the_trainer_alone_and_in_a_job_with_a_poller(dataset):
    config = tiny_config(dataset.folder, steps=1_000_000, sample_every_steps=3, checkpoint_every_steps=5,
                         metrics_every_steps=5, log_every_steps=2, **speed.PLAIN_TRICKS)
    alone = speed.trainer_alone(config, dataset, seconds=0.5)
    quality_rows = {"scored": 0, "asked": 0}
    in_job = speed.trainer_in_job(config, seconds=1.5, quality_rows=quality_rows)
    assert 0 < alone < 1e6 and 0 < in_job < 1e6
    # The last sample handed over is always scored; one overtaken while waiting is not.
    assert 1 <= quality_rows["scored"] <= quality_rows["asked"]


class CountSteps(TrainingHooks):
    def __init__(self, steps: int) -> None:
        self.steps, self.calls = steps, 0

    def should_stop(self) -> bool:
        self.calls += 1
        return self.calls > self.steps


def test_the_compiled_step_is_traced_once_through_samples_checkpoints_quality_and_a_resume(dataset):
    config = tiny_config(dataset.folder, steps=20, sample_every_steps=3, checkpoint_every_steps=8,
                         metrics_every_steps=10)
    run = RunDir.create(dataset.folder.parent / "runs", config, dataset)
    trainer = Trainer(config, dataset.images, run)
    trainer.run(CountSteps(9))  # stops between checkpoints
    trainer.close()
    resumed = Trainer(config, dataset.images, run)  # reuses the networks and their compiled step
    assert resumed.train_step is trainer.train_step
    assert resumed.run() == "finished"
    resumed.close()

    # One trace for all 20 steps: a retrace would compile the step again, seconds each time.
    assert resumed.train_step.experimental_get_tracing_count() == 1
