"""Tests for core.precision and mixed-precision training: layers compute in float16 or bfloat16,
weights, pictures and losses stay float32, float16 losses are scaled, and a checkpoint resumes
in any precision.

Every run is the tiny 16 px model for a few steps; CPUs emulate both half formats, slowly.
"""

from __future__ import annotations

import logging
import math

import keras
import pytest

from conftest import tiny_config
from core.data import load_folder
from core.precision import PRECISIONS, needs_loss_scaling, slowness_warning, use_precision
from core.runs import RunDir
from core.trainer import Trainer, TrainingHooks


@pytest.fixture
def dataset(face_folder):
    return load_folder(face_folder, 16)


@pytest.fixture(autouse=True)
def float32_afterwards():
    yield
    use_precision("float32")  # the policy is process-wide: later tests must get float32 networks


class Record(TrainingHooks):
    def __init__(self) -> None:
        self.records = []

    def on_record(self, record) -> None:
        self.records.append(record)


def train(dataset, run_folder, steps: int):
    config = tiny_config(dataset.folder, steps=steps, sample_every_steps=2, checkpoint_every_steps=2)
    run = RunDir.open(run_folder) if run_folder.exists() and (run_folder / "config.json").exists() else None
    if run is None:
        run = RunDir.create(run_folder.parent, config, dataset)
    trainer = Trainer(config, dataset.images, run)
    hooks = Record()
    try:
        assert trainer.run(hooks) == "finished"
    finally:
        trainer.close()
    return trainer, run, hooks.records


def test_an_unknown_precision_is_refused_by_its_flag_name():
    with pytest.raises(ValueError, match=r"--precision 'float8'.*float32, mixed_float16, mixed_bfloat16"):
        use_precision("float8")


@pytest.mark.parametrize("precision, compute_dtype", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_trains_in_half_with_float32_weights_and_outputs(dataset, tmp_path, precision, compute_dtype):
    use_precision(precision)
    trainer, run, records = train(dataset, tmp_path / "runs" / "x", steps=4)

    hidden = trainer.generator.get_layer("up_8px")
    assert hidden.compute_dtype == compute_dtype and hidden.kernel.dtype == "float32"
    assert trainer.generator.output.dtype == "float32" and trainer.discriminator.output.dtype == "float32"
    assert isinstance(trainer.optimizer_g, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    assert [record.step for record in records] == [1, 2, 3, 4]
    assert all(math.isfinite(value) for record in records for value in (record.d_loss, record.g_loss))
    assert run.generator_path.exists()


def test_a_float16_checkpoint_resumes_in_float32_and_a_float32_one_in_float16(dataset, tmp_path):
    use_precision("mixed_float16")
    assert needs_loss_scaling()
    _, run, _ = train(dataset, tmp_path / "runs" / "a", steps=2)

    use_precision("float32")
    assert not needs_loss_scaling()
    trainer, _, records = train(dataset, run.path, steps=4)
    assert [record.step for record in records] == [3, 4]
    assert not isinstance(trainer.optimizer_g, keras.optimizers.LossScaleOptimizer)

    use_precision("mixed_float16")
    trainer, _, records = train(dataset, run.path, steps=6)
    assert [record.step for record in records] == [5, 6]
    assert all(math.isfinite(record.g_loss) for record in records)


def test_half_precision_on_this_cpu_comes_with_a_warning_and_float32_without(caplog):
    assert slowness_warning("float32") == ""
    with caplog.at_level(logging.WARNING, logger="core.precision"):
        use_precision("mixed_float16")
    assert "--precision mixed_float16 without a GPU" in caplog.text
    assert set(PRECISIONS) == {"float32", "mixed_float16", "mixed_bfloat16"}


def test_a_background_job_trains_in_the_precision_of_the_thread_that_started_it(face_folder, tmp_path, monkeypatch):
    from core.jobs import TrainingJob
    from core.precision import current_precision

    precisions_built_in = []
    real_init = Trainer.__init__

    def recording_init(self, *args, **kwargs):
        precisions_built_in.append(current_precision())
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", recording_init)
    use_precision("mixed_bfloat16")  # Keras keeps this per thread; the job trains in another
    job = TrainingJob(tiny_config(face_folder, steps=2), runs_dir=tmp_path / "runs")
    job.start()
    assert job.join(120)

    assert job.snapshot().state == "finished", job.snapshot().error
    assert precisions_built_in == ["mixed_bfloat16"]

