"""Tests for core.jobs: a background training job paused, resumed and stopped from the test
thread, the one-job-at-a-time rule of JobManager, failures reported in the snapshot, and ETA.

Every job trains a tiny 16 px DCGAN on drawn faces in tmp_path.
"""

from __future__ import annotations

import os
import time

import pytest

from conftest import tiny_config
from core.config import TrainConfig
from core.jobs import JobManager, TrainingJob, wait_for

JOB_TIMEOUT_SEC = 30.0
PAUSE_WATCH_SEC = 0.5


def long_config(data_dir, steps: int = 100_000) -> TrainConfig:
    """Long enough to still be running whenever a test looks; a stop ends it within a step."""
    return tiny_config(data_dir, steps=steps, sample_every_steps=100_000, checkpoint_every_steps=100_000)


def wait_until_step_passes(job: TrainingJob, step: int, timeout_sec: float = JOB_TIMEOUT_SEC) -> int:
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        snapshot = job.snapshot()
        if snapshot.step > step or not snapshot.is_active:
            return snapshot.step
        time.sleep(0.02)
    return job.snapshot().step


@pytest.fixture
def manager():
    """A JobManager whose job, if any, is stopped and joined after the test."""
    manager = JobManager()
    yield manager
    job = manager.current
    if job is not None:
        job.stop()
        assert job.join(JOB_TIMEOUT_SEC), "the training thread outlived the test"


def test_a_job_runs_pauses_without_advancing_resumes_and_stops(manager, face_folder, tmp_path):
    job, started = manager.start(long_config(face_folder), runs_dir=tmp_path / "runs")
    assert started

    running = wait_for(job, ("running",), JOB_TIMEOUT_SEC)
    assert running.state == "running", running.error
    assert wait_until_step_passes(job, 0) > 0

    job.pause()
    assert wait_for(job, ("paused",), JOB_TIMEOUT_SEC).state == "paused"
    paused_step = job.snapshot().step
    time.sleep(PAUSE_WATCH_SEC)
    assert job.snapshot().step == paused_step
    assert job.snapshot().state == "paused"

    job.resume()
    assert wait_until_step_passes(job, paused_step) > paused_step
    assert job.snapshot().state == "running"

    job.stop()
    assert job.join(JOB_TIMEOUT_SEC)
    snapshot = job.snapshot()
    assert snapshot.state == "stopped"
    assert not snapshot.is_active
    assert snapshot.error == ""
    assert snapshot.run_path is not None and snapshot.run_path.parent == tmp_path / "runs"
    status = (snapshot.run_path / "status.json").read_text()
    assert '"state": "stopped"' in status


def test_starting_a_second_job_while_one_is_active_returns_the_active_job(manager, face_folder, tmp_path):
    job, started = manager.start(long_config(face_folder), runs_dir=tmp_path / "runs")

    again, started_again = manager.start(long_config(face_folder, steps=7), runs_dir=tmp_path / "runs")

    assert started and not started_again
    assert again is job
    assert manager.current is job
    assert again.config.steps == 100_000


def test_a_job_on_a_missing_folder_fails_naming_it_and_a_new_job_can_start(manager, face_folder, tmp_path):
    missing = tmp_path / "no_such_album"

    job, _ = manager.start(long_config(missing), runs_dir=tmp_path / "runs")

    assert job.join(JOB_TIMEOUT_SEC)
    snapshot = job.snapshot()
    assert snapshot.state == "failed"
    assert "DatasetError" in snapshot.error and "no_such_album" in snapshot.error
    assert snapshot.run_path is None
    assert not (tmp_path / "runs").exists()

    next_job, started = manager.start(long_config(face_folder), runs_dir=tmp_path / "runs")
    assert started and next_job is not job
    assert wait_for(next_job, ("running",), JOB_TIMEOUT_SEC).state == "running"


def test_eta_is_unknown_before_the_first_record_and_positive_after(face_folder, tmp_path):
    job = TrainingJob(long_config(face_folder, steps=1000), runs_dir=tmp_path / "runs")
    assert job.snapshot().eta_sec is None
    assert job.snapshot().state == "loading"

    job.start()
    try:
        wait_until_step_passes(job, 0)
        snapshot = job.snapshot()
        assert snapshot.records
        assert snapshot.eta_sec is not None and snapshot.eta_sec > 0
        expected_sec = (1000 - snapshot.step) * 4 / snapshot.images_per_sec
        assert snapshot.eta_sec == pytest.approx(expected_sec)
    finally:
        job.stop()
        assert job.join(JOB_TIMEOUT_SEC)


def test_shutdown_stops_the_active_job_and_waits_for_its_thread(tmp_path, face_folder):
    manager = JobManager()
    job, _ = manager.start(long_config(face_folder), runs_dir=tmp_path / "runs")
    wait_until_step_passes(job, 0)

    manager.shutdown(timeout_sec=JOB_TIMEOUT_SEC)

    assert not job._thread.is_alive()
    assert job.snapshot().state == "stopped"


# A process that starts a job and then lets its main thread end, as the dashboard's process does on
# Ctrl+C or SIGTERM. argv: data folder, runs folder, "running" or "paused".
_PROCESS_ENDS_SCRIPT = """
import sys, time
from conftest import tiny_config
from core.jobs import job_manager

data_dir, runs_dir, wanted = sys.argv[1:]
job, _ = job_manager().start(
    tiny_config(data_dir, steps=100_000, sample_every_steps=100_000, checkpoint_every_steps=100_000),
    runs_dir=runs_dir,
)
while job.snapshot().step < 3:
    time.sleep(0.02)
if wanted == "paused":
    job.pause()
    while job.snapshot().state != "paused":
        time.sleep(0.02)
print("main thread ends at step", job.snapshot().step, flush=True)
"""


@pytest.mark.parametrize("state_at_exit", ["running", "paused"])
def test_a_process_that_ends_mid_run_stops_the_run_and_keeps_its_steps(tmp_path, face_folder, state_at_exit):
    import subprocess
    import sys
    from pathlib import Path

    from core.checkpoints import CheckpointStore
    from core.runs import RunDir

    tests_dir = Path(__file__).resolve().parent
    environment = {"PYTHONPATH": f"{tests_dir}{os.pathsep}{tests_dir.parent}", "TF_CPP_MIN_LOG_LEVEL": "2"}
    ended = subprocess.run(
        [sys.executable, "-c", _PROCESS_ENDS_SCRIPT, str(face_folder), str(tmp_path / "runs"), state_at_exit],
        capture_output=True, text=True, timeout=180, env={**os.environ, **environment},
    )
    assert ended.returncode == 0, ended.stderr[-3000:]
    assert "main thread ends" in ended.stdout

    (run_path,) = (tmp_path / "runs").iterdir()
    run = RunDir.open(run_path)
    status = run.read_status()
    assert status["state"] == "stopped", status
    assert "process ended" in status["reason"]
    assert status["step"] >= 3
    # The steps are kept: a verified checkpoint, a grid and the generator of the step it stopped at.
    newest, problems = CheckpointStore(run.checkpoints_dir, 3).newest_good()
    assert newest is not None and newest.step == status["step"], problems
    assert (run.samples_dir / f"step_{status['step']:06d}.png").exists()
    assert run.generator_path.exists()
