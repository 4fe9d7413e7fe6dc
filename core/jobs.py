"""One background training job per process, steered from the UI thread.

The training thread never touches the UI. It publishes a snapshot (state, step, recent
records, latest grid, error) under a lock; pages read ``snapshot()`` on a timer. Pause
and stop are flags the loop checks before every step, so they act within one step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import TrainConfig
from core.runs import RunDir, default_runs_dir, project_root

logger = logging.getLogger(__name__)

ACTIVE_STATES = ("loading", "running", "paused", "stopping")
_RECENT_RECORDS = 2000  # enough for live curves of a long run; the full history is in metrics.csv


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of the job's public state at one moment."""

    state: str  # loading, running, paused, stopping, finished, stopped, failed
    step: int
    total_steps: int
    run_path: Path | None
    records: tuple = ()  # StepRecord, oldest first
    images_per_sec: float = 0.0
    elapsed_sec: float = 0.0
    latest_grid: np.ndarray | None = None
    latest_grid_step: int = 0
    error: str = ""
    batch_size: int = 1
    quality_rows: tuple = ()  # core.quality.QualityRow, oldest first
    metrics_every_steps: int = 0  # the run's quality interval; 0 = not scored

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def eta_sec(self) -> float | None:
        """Seconds left at the last measured speed; None until a speed is known."""
        if not self.records or self.images_per_sec <= 0:
            return None
        return (self.total_steps - self.step) * self.batch_size / self.images_per_sec


@dataclass
class _SharedState:
    state: str = "loading"
    step: int = 0
    total_steps: int = 0
    run_path: Path | None = None
    records: deque = field(default_factory=lambda: deque(maxlen=_RECENT_RECORDS))
    latest_grid: np.ndarray | None = None
    latest_grid_step: int = 0
    error: str = ""
    quality_rows: list = field(default_factory=list)


class TrainingJob:
    """Loads the data, creates or reopens the run, and trains it in a thread of its own.

    The thread is not a daemon: when the process ends (the dashboard's Ctrl+C or SIGTERM),
    Python waits for it, and it stops as soon as it sees the main thread has ended, saving
    its checkpoint first. That happens before any atexit handler, so h5py and Keras, which
    close themselves at exit, are still usable for the final save.
    """

    def __init__(self, config: TrainConfig, resume_run: RunDir | None = None, runs_dir: Path | None = None):
        self.config = config
        self._resume_run = resume_run
        self._runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self._lock = threading.Lock()
        self._shared = _SharedState(total_steps=config.steps)
        self._stop_requested = threading.Event()
        self._pause_requested = threading.Event()
        self._thread = threading.Thread(target=self._work, name="dcgan-training", daemon=False)

    # Control, from any thread.

    def start(self) -> None:
        # TensorFlow is imported by the caller's thread, before the training thread exists:
        # two threads importing the same heavy packages at once can see half-imported
        # modules. Later imports are free, so only the first Start pays the few seconds.
        import core.trainer  # noqa: F401
        from core.precision import current_precision

        # Keras keeps its dtype policy per thread: the training thread takes the caller's.
        self._precision = current_precision()

        self._thread.start()

    def pause(self) -> None:
        self._pause_requested.set()

    def resume(self) -> None:
        self._pause_requested.clear()

    @property
    def pause_requested(self) -> bool:
        """Pause was pressed (and not Resume); the state says "paused" only once a step has seen it."""
        return self._pause_requested.is_set()

    def stop(self) -> None:
        with self._lock:
            if self._shared.state in ACTIVE_STATES:
                self._shared.state = "stopping"
        self._stop_requested.set()

    def join(self, timeout_sec: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout_sec)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            shared = self._shared
            records = tuple(shared.records)
            return JobSnapshot(
                state=shared.state,
                step=shared.step,
                total_steps=shared.total_steps,
                run_path=shared.run_path,
                records=records,
                images_per_sec=records[-1].images_per_sec if records else 0.0,
                elapsed_sec=records[-1].elapsed_sec if records else 0.0,
                latest_grid=shared.latest_grid,
                latest_grid_step=shared.latest_grid_step,
                error=shared.error,
                batch_size=self.config.batch_size,
                quality_rows=tuple(shared.quality_rows),
                metrics_every_steps=self.config.metrics_every_steps,
            )

    # The thread.

    def _work(self) -> None:
        from core.data import load_for_config
        from core.precision import use_precision
        from core.trainer import Trainer

        use_precision(self._precision)
        run = self._resume_run
        trainer_ran = False
        try:
            dataset = load_for_config(self.config, project_root())
            if run is None:
                run = RunDir.create(self._runs_dir, self.config, dataset)
            with self._lock:
                self._shared.run_path = run.path
            trainer = Trainer(self.config, dataset.images, run)
            with self._lock:
                self._shared.step = int(trainer.step)
                if self._shared.state == "loading":
                    self._shared.state = "running"
            trainer_ran = True  # from here on, the trainer records failures in status.json itself
            try:
                final_state = trainer.run(_JobHooks(self))
            finally:
                trainer.close()  # the next run of this shape reuses the compiled step
            self._set_state(final_state)
        except Exception as error:  # the thread must never die silently
            logger.exception("training job failed")
            message = f"{type(error).__name__}: {error}"
            if run is None and isinstance(error, OSError):
                message = (
                    f"Cannot create a run folder in {self._runs_dir}: {error}. Choose a writable folder "
                    "for runs (set DCGAN_STUDIO_RUNS_DIR) and start again."
                )
            if run is not None:
                status = run.read_status()
                if trainer_ran and status.get("state") == "failed" and status.get("reason"):
                    message = status["reason"]  # the trainer's own explanation
                else:  # failed before the trainer ran: record it in the run
                    try:
                        run.write_status("failed", self._shared.step, self.config.steps, message)
                    except OSError:
                        logger.exception("could not record the failure in %s", run.path)
            with self._lock:
                self._shared.state = "failed"
                self._shared.error = message

    def _set_state(self, state: str) -> None:
        with self._lock:
            self._shared.state = state


class _JobHooks:
    """Connects the trainer's hooks to the job's flags and snapshot."""

    def __init__(self, job: TrainingJob) -> None:
        self._job = job

    def should_stop(self) -> bool:
        # The main thread ends first when the process is asked to quit; stopping then, like Stop,
        # keeps every step done.
        return self._job._stop_requested.is_set() or not threading.main_thread().is_alive()

    def stop_reason(self) -> str:
        if self._job._stop_requested.is_set():
            return "stopped by the user"
        return "stopped when the dashboard's process ended; Continue this run (Train page) goes on from here"

    def is_paused(self) -> bool:
        paused = self._job._pause_requested.is_set()
        with self._job._lock:
            if self._job._shared.state in ("running", "paused"):
                self._job._shared.state = "paused" if paused else "running"
        return paused

    def on_record(self, record) -> None:
        with self._job._lock:
            self._job._shared.records.append(record)
            self._job._shared.step = record.step

    def on_quality(self, row) -> None:
        with self._job._lock:
            self._job._shared.quality_rows.append(row)

    def on_sample(self, step: int, grid: np.ndarray) -> None:
        with self._job._lock:
            self._job._shared.latest_grid = grid
            self._job._shared.latest_grid_step = step
            self._job._shared.step = max(self._job._shared.step, step)


class JobManager:
    """Holds the process's one job. A second start while one is active returns the active one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    def start(
        self, config: TrainConfig, resume_run: RunDir | None = None, runs_dir: Path | None = None
    ) -> tuple[TrainingJob, bool]:
        """(job, started): started is False when a job was already active and is returned instead."""
        with self._lock:
            if self._job is not None and self._job.snapshot().is_active:
                return self._job, False
            self._job = TrainingJob(config, resume_run, runs_dir)
            self._job.start()
            return self._job, True

    @property
    def current(self) -> TrainingJob | None:
        with self._lock:
            return self._job

    def shutdown(self, timeout_sec: float = 30.0) -> None:
        """Stop the active job and wait for its final checkpoint."""
        job = self.current
        if job is not None:
            job.stop()
            job.join(timeout_sec)


_manager_lock = threading.Lock()
_manager: JobManager | None = None


def job_manager() -> JobManager:
    """The process-wide JobManager; every tab and page shares it."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager


def wait_for(job: TrainingJob, states: tuple[str, ...], timeout_sec: float) -> JobSnapshot:
    """Poll until the job reaches one of `states` (or the timeout); returns the last snapshot."""
    deadline = time.monotonic() + timeout_sec
    snapshot = job.snapshot()
    while snapshot.state not in states and time.monotonic() < deadline:
        time.sleep(0.05)
        snapshot = job.snapshot()
    return snapshot
