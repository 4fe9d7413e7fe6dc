"""Runs that survive: crashes, NaN, a full disk, concurrent Starts, SIGKILL, and memory over time.

Every run is the tiny 16 px model on drawn faces. The kill tests start the real command
line in a subprocess and kill it with SIGKILL, mid-run and mid-save.
"""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import core.trainer
from conftest import TINY_RUN_ARGS, tiny_config, write_blob_faces
from core.checkpoints import SAVE_DELAY_ENV, CheckpointError, CheckpointStore
from core.data import load_folder
from core.jobs import JobManager, wait_for
from core.runs import RunDir, branch_run
from core.trainer import Trainer

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT_SEC = 60


@pytest.fixture
def dataset(face_folder):
    return load_folder(face_folder, 16)


def new_trainer(tmp_path, dataset, **changes) -> Trainer:
    config = tiny_config(dataset.folder, **({"steps": 8, "sample_every_steps": 100, "checkpoint_every_steps": 2} | changes))
    return Trainer(config, dataset.images, RunDir.create(tmp_path / "runs", config, dataset))


def poison_at_calls(trainer: Trainer, bad_calls: set[int]) -> None:
    """Make the train step at these call numbers (1-based) run on NaN weights in D."""
    real_step = trainer.train_step
    calls = {"count": 0}

    def step(real):
        calls["count"] += 1
        if calls["count"] in bad_calls:
            kernel = trainer.discriminator.trainable_variables[0]
            kernel.assign(tf.fill(kernel.shape, float("nan")))
        return real_step(real)

    trainer.train_step = step


def all_checkpoints_are_finite(run: RunDir) -> bool:
    for checkpoint in CheckpointStore(run.checkpoints_dir, keep_last=100).complete():
        reader = tf.train.load_checkpoint(checkpoint.prefix)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all():
                return False
    return True


def test_a_non_finite_step_rolls_back_to_the_last_checkpoint_and_training_finishes(tmp_path, dataset):
    trainer = new_trainer(tmp_path, dataset)
    poison_at_calls(trainer, {5})  # steps 1-4 fine (checkpoints at 2 and 4), the 5th goes NaN

    assert trainer.run() == "finished"

    metrics = trainer.run_dir.read_metrics()
    assert metrics["step"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert np.isfinite(metrics["d_loss"]).all() and np.isfinite(metrics["g_loss"]).all()
    assert all_checkpoints_are_finite(trainer.run_dir)


def test_a_second_non_finite_step_stops_the_run_with_a_remedy_and_no_nan_checkpoint(tmp_path, dataset):
    trainer = new_trainer(tmp_path, dataset)
    poison_at_calls(trainer, {3, 6})

    with pytest.raises(core.trainer.NonFiniteTraining):
        trainer.run()

    status = trainer.run_dir.read_status()
    assert status["state"] == "failed"
    assert "Training diverged" in status["reason"] and "Lower the learning rates" in status["reason"]
    assert "last good checkpoint, step 4, is intact" in status["reason"]  # rolled back to 2, then saved 4
    assert all_checkpoints_are_finite(trainer.run_dir)


def test_weights_that_are_not_finite_are_never_saved(tmp_path, dataset):
    trainer = new_trainer(tmp_path, dataset)
    kernel = trainer.generator.trainable_variables[0]
    kernel.assign(tf.fill(kernel.shape, float("inf")))

    with pytest.raises(core.trainer.NonFiniteTraining):
        trainer.save_checkpoint()
    assert CheckpointStore(trainer.run_dir.checkpoints_dir, 3).complete() == []


def test_settings_that_change_the_networks_are_refused_naming_both_values(tmp_path, dataset):
    trainer = new_trainer(tmp_path, dataset, steps=2)
    trainer.run()

    with pytest.raises(ValueError, match=r"latent_dim=8; these settings ask for latent_dim=16"):
        Trainer(trainer.config.replace(latent_dim=16, steps=4), dataset.images, trainer.run_dir)


def test_a_full_disk_mid_run_fails_clearly_and_keeps_the_last_good_checkpoint(tmp_path, dataset, monkeypatch):
    trainer = new_trainer(tmp_path, dataset)
    real_write = trainer.checkpoint.write

    def write(prefix):
        if "step_000006" in prefix:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(prefix)

    monkeypatch.setattr(trainer.checkpoint, "write", write)

    with pytest.raises(Exception):
        trainer.run()

    status = trainer.run_dir.read_status()
    assert status["state"] == "failed"
    assert "No space left on device" in status["reason"] and "Free some disk space" in status["reason"]
    good, _ = CheckpointStore(trainer.run_dir.checkpoints_dir, 3).newest_good()
    assert good.step == 4
    assert "step 4, is intact" in status["reason"]


def test_an_exception_in_training_is_recorded_and_the_next_run_starts(tmp_path, face_folder, monkeypatch):
    manager = JobManager()

    def broken_sample(self, hooks, step):
        raise RuntimeError("the sampler broke")

    monkeypatch.setattr(core.trainer.Trainer, "_save_sample", broken_sample)
    job, _ = manager.start(tiny_config(face_folder, steps=4, sample_every_steps=2), runs_dir=tmp_path / "runs")
    snapshot = wait_for(job, ("failed",), JOB_TIMEOUT_SEC)

    assert snapshot.state == "failed"
    assert "RuntimeError: the sampler broke" in snapshot.error
    assert RunDir(snapshot.run_path).read_status()["reason"] == "RuntimeError: the sampler broke"

    monkeypatch.undo()
    next_job, started = manager.start(tiny_config(face_folder, steps=2), runs_dir=tmp_path / "runs")
    assert started
    assert wait_for(next_job, ("finished",), JOB_TIMEOUT_SEC).state == "finished"


def test_an_unwritable_runs_folder_gives_a_message_naming_it(tmp_path, face_folder):
    not_a_folder = tmp_path / "runs_is_a_file"
    not_a_folder.write_text("oops")
    job, _ = JobManager().start(tiny_config(face_folder, steps=2), runs_dir=not_a_folder / "runs")

    snapshot = wait_for(job, ("failed",), JOB_TIMEOUT_SEC)

    assert snapshot.state == "failed"
    assert f"Cannot create a run folder in {not_a_folder / 'runs'}" in snapshot.error
    assert "writable folder" in snapshot.error


def test_three_starts_within_a_second_give_one_job(tmp_path, face_folder):
    manager = JobManager()
    config = tiny_config(face_folder, steps=100_000, sample_every_steps=100_000, checkpoint_every_steps=100_000)
    outcomes = []
    barrier = threading.Barrier(3)

    def press_start():
        barrier.wait()
        outcomes.append(manager.start(config, runs_dir=tmp_path / "runs"))

    tabs = [threading.Thread(target=press_start) for _ in range(3)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()

    jobs = {id(job) for job, _ in outcomes}
    assert len(jobs) == 1
    assert sorted(started for _, started in outcomes) == [False, False, True]
    job = outcomes[0][0]
    job.stop()
    assert job.join(JOB_TIMEOUT_SEC)
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_memory_stays_flat_over_ten_start_stop_cycles_and_twenty_model_loads(tmp_path, face_folder):
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    manager = JobManager()
    config = tiny_config(face_folder, steps=6, sample_every_steps=3, checkpoint_every_steps=3)
    resident_mb = []
    for _ in range(10):
        job, _ = manager.start(config, runs_dir=tmp_path / "runs")
        assert wait_for(job, ("finished",), JOB_TIMEOUT_SEC).state == "finished"
        run = RunDir(job.snapshot().run_path)
        for _ in range(2):
            run.load_generator()
        resident_mb.append(process.memory_info().rss / 2**20)

    growth = (resident_mb[-1] - resident_mb[1]) / resident_mb[1]
    print(f"resident memory after each cycle (MB): {[round(value) for value in resident_mb]}")
    assert growth < 0.10, resident_mb


# The kill tests: the real command line, killed with SIGKILL.

KILL_RUN_ARGS = [*TINY_RUN_ARGS[: TINY_RUN_ARGS.index("--steps")], "--log-every", "1", "--metrics-every", "0"]
KILL_STEPS = 24


def cli(arguments: list[str], environment: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(environment or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "core.train", *arguments],
        cwd=REPOSITORY_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def logged_losses(run_path: Path) -> dict[int, tuple[float, float]]:
    with open(run_path / "metrics.csv", newline="") as handle:
        return {int(row["step"]): (float(row["d_loss"]), float(row["g_loss"])) for row in csv.DictReader(handle)}


def wait_until(condition, timeout_sec: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_sec
    while not condition():
        assert time.monotonic() < deadline, "the training process did not get there in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference: the same run, never interrupted."""
    base = tmp_path_factory.mktemp("uninterrupted")
    write_blob_faces(base / "faces", 12)
    process = cli(["--data", str(base / "faces"), "--runs-dir", str(base / "runs"), *KILL_RUN_ARGS,
                   "--steps", str(KILL_STEPS), "--sample-every", "4", "--checkpoint-every", "8"])
    assert process.wait(180) == 0, process.stderr.read()
    (run_path,) = (base / "runs").iterdir()
    return run_path


def start_killable_run(tmp_path, environment=None) -> tuple[subprocess.Popen, Path]:
    write_blob_faces(tmp_path / "faces", 12)
    process = cli(["--data", str(tmp_path / "faces"), "--runs-dir", str(tmp_path / "runs"), *KILL_RUN_ARGS,
                   "--steps", str(KILL_STEPS), "--sample-every", "4", "--checkpoint-every", "8"], environment)
    wait_until(lambda: (tmp_path / "runs").is_dir() and any((tmp_path / "runs").iterdir()))
    (run_path,) = (tmp_path / "runs").iterdir()
    return process, run_path


def resume_and_compare(run_path: Path, uninterrupted: Path) -> str:
    process = cli(["--resume", str(run_path), "--steps", str(KILL_STEPS)])
    assert process.wait(180) == 0, process.stderr.read()
    resumed, reference = logged_losses(run_path), logged_losses(uninterrupted)
    assert sorted(resumed) == list(range(1, KILL_STEPS + 1))  # no gap, no repeat
    for step in range(1, KILL_STEPS + 1):
        np.testing.assert_allclose(resumed[step], reference[step], rtol=1e-3, atol=1e-4, err_msg=f"step {step}")
    largest = max(abs(a - b) for step in reference for a, b in zip(resumed[step], reference[step]))
    print(f"largest loss difference from the uninterrupted run: {largest:.2e}")
    assert RunDir(run_path).read_status()["state"] == "finished"
    final_grid = np.asarray(tf.io.decode_png(tf.io.read_file(str(run_path / "samples" / f"step_{KILL_STEPS:06d}.png"))))
    reference_grid = np.asarray(
        tf.io.decode_png(tf.io.read_file(str(uninterrupted / "samples" / f"step_{KILL_STEPS:06d}.png")))
    )
    assert np.abs(final_grid.astype(int) - reference_grid.astype(int)).max() <= 2  # the same faces
    return process.stderr.read() if process.stderr else ""


def test_a_run_killed_mid_run_resumes_and_matches_the_uninterrupted_run(tmp_path, uninterrupted):
    process, run_path = start_killable_run(tmp_path)
    wait_until(lambda: (run_path / "metrics.csv").exists() and max(logged_losses(run_path), default=0) >= 12)

    process.send_signal(signal.SIGKILL)
    process.wait(30)

    assert CheckpointStore(run_path / "checkpoints", 3).newest_good()[0].step == 8
    resume_and_compare(run_path, uninterrupted)


def test_a_run_killed_while_saving_a_checkpoint_skips_it_and_resumes_from_the_one_before(tmp_path, uninterrupted):
    process, run_path = start_killable_run(tmp_path, {SAVE_DELAY_ENV: "5"})
    # Every save now pauses 5 s before publishing: time enough to kill it during step 8's.
    wait_until(lambda: (run_path / "checkpoints" / ".partial-step_000008").is_dir(), timeout_sec=240)

    process.send_signal(signal.SIGKILL)
    process.wait(30)

    good, skipped = CheckpointStore(run_path / "checkpoints", 3).newest_good()
    assert good.step == 0
    assert skipped == [".partial-step_000008: unfinished (the process stopped while writing it)"]
    log = resume_and_compare(run_path, uninterrupted)
    assert "skipped .partial-step_000008" in log


# Rewind and branch.


def test_a_branch_starts_from_a_kept_checkpoint_with_new_settings_and_records_its_parent(tmp_path, dataset):
    parent = new_trainer(tmp_path, dataset, steps=6, checkpoint_every_steps=2)
    parent.run()
    parent_run = parent.run_dir

    config = parent.config.replace(steps=8, learning_rate_g=1e-4, batch_size=8)
    branch = branch_run(parent_run, 4, config, dataset)
    trainer = Trainer(config, dataset.images, branch)

    assert int(trainer.step) == 4
    assert float(trainer.optimizer_g.learning_rate) == pytest.approx(1e-4)
    assert branch.read_metadata()["parent"] == {"run": parent_run.run_id, "path": str(parent_run.path), "step": 4}
    assert branch.read_metrics()["step"].tolist() == [1, 2, 3, 4]
    assert trainer.run() == "finished"
    assert branch.read_metrics()["step"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert parent_run.read_status()["step"] == 6  # the parent is untouched


def test_a_branch_cannot_change_the_networks_shape_and_says_which_value(tmp_path, dataset):
    parent = new_trainer(tmp_path, dataset, steps=2)
    parent.run()

    with pytest.raises(ValueError, match=r"width=8; a branch of it cannot use width=16"):
        branch_run(parent.run_dir, 2, parent.config.replace(width=16, steps=4), dataset)
    with pytest.raises(CheckpointError, match=r"no checkpoint of step 1 .*kept: 0, 2"):
        branch_run(parent.run_dir, 1, parent.config.replace(steps=4), dataset)


def test_the_command_line_branches_a_run(tmp_path, tiny_run):
    from core.train import main

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(["--branch", str(tiny_run.path), "--from-step", "2", "--steps", "5", "--lr-d", "1e-4",
                     "--runs-dir", str(tmp_path / "branches")])
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)

    assert code == 0
    (branch_path,) = (tmp_path / "branches").iterdir()
    branch = RunDir.open(branch_path)
    assert branch.read_config().learning_rate_d == pytest.approx(1e-4)
    assert branch.read_metadata()["parent"]["step"] == 2
    assert branch.read_status()["step"] == 5
