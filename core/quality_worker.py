"""Scoring the generator while it trains, in a separate low-priority process.

Every metrics interval the trainer hands its sampling G's weights to a QualityWorker. The
drawing of QUALITY_SAMPLE_COUNT faces and their scoring (core.quality.measure) happen in one
helper process per training process, started on first use, shared by every run, at the
lowest CPU priority and without the GPU. Drawing and scoring cost about 1.3 training steps
of CPU at 64 px; in the training process they slowed a CPU that training already fills,
because TensorFlow runs every op of every thread on one shared pool of threads. In a
process of their own, at nice 19 and (on Linux) under the SCHED_IDLE policy, the operating
system gives them only the time training leaves over, so scores arrive later instead of the
steps slowing down.

Each run has at most one sample being scored; a newer sample waiting behind it replaces an
older one (logged), so a scorer that falls behind skips steps rather than queueing weights.
The run's last sample is always scored, and close() waits for it.

Messages are pickled tuples over the helper's stdin and stdout, written by a thread of their
own so that the training thread never waits on the pipe. The helper exits when its stdin
closes, which also happens when the training process dies.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from core.quality import QualityRow

# Only the standard library above: the scoring process lowers its priority before numpy
# starts its threads, and on Linux a thread keeps the priority it was created with.

logger = logging.getLogger(__name__)

HELPER_NICENESS = 19  # the lowest priority: training always wins the CPU
HELPER_MODULE = "core.quality_worker"
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


class QualityWorker:
    """One run's link to the scoring process; on_row gets each core.quality.QualityRow."""

    def __init__(self, training: np.ndarray, on_row: Callable, config) -> None:
        self._training = training
        self._on_row = on_row
        self._config = config
        self._worker_id = next(_worker_ids)
        self._changed = threading.Condition()
        self._in_flight: int | None = None  # the step the helper is scoring for this run
        self._waiting: tuple[int, list] | None = None  # (step, weights) to send when it is done
        self._opened_on: _Helper | None = None  # the scoring process that holds this run's photos
        self.helper_pid: int | None = None  # that process's id, once a sample has been sent

    def submit(self, step: int, generator_weights: list[np.ndarray]) -> None:
        """Ask for the scores of G with these weights; never waits for them."""
        with self._changed:
            if self._in_flight is None:
                self._send(step, generator_weights)
                return
            if self._waiting is not None:
                logger.info("quality at step %d skipped: the scorer is still busy with step %d", self._waiting[0],
                            self._in_flight)
            self._waiting = (step, generator_weights)

    def close(self, timeout_sec: float = 300.0) -> None:
        """Wait for the scores already asked for (the run's last one above all), then let the run go."""
        deadline = time.monotonic() + timeout_sec
        with self._changed:
            while self._in_flight is not None and time.monotonic() < deadline:
                self._changed.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            if self._in_flight is not None:
                logger.error("quality at step %d did not arrive within %.0f s", self._in_flight, timeout_sec)
            helper, self._opened_on, self._in_flight, self._waiting = self._opened_on, None, None, None
        if helper is not None:
            try:
                helper.forget(self._worker_id)
            except OSError:
                pass  # the process has ended, and the run with it

    # Called with self._changed held.

    def _send(self, step: int, generator_weights: list[np.ndarray]) -> None:
        try:
            helper = _shared_helper()
            if helper is not self._opened_on:  # first sample, or the helper was restarted
                helper.open(self._worker_id, self, self._config, self._training)
                self._opened_on, self.helper_pid = helper, helper.pid
            helper.score(self._worker_id, step, generator_weights)
        except OSError as error:  # the helper could not start or its pipe broke; training goes on
            logger.error("quality at step %d not scored: the scoring process is gone (%s)", step, error)
            return
        self._in_flight = step

    # Called from the helper's reader thread.

    def _delivered(self, step: int, row, failure: str) -> None:
        if failure:
            logger.error("quality metrics at step %d failed:\n%s", step, failure)
        else:
            try:
                self._on_row(row)
            except Exception:  # recording a score must never take training down with it
                logger.exception("the quality row of step %d could not be recorded", step)
        with self._changed:
            self._in_flight = None
            if self._waiting is not None:
                waiting, self._waiting = self._waiting, None
                self._send(*waiting)
            self._changed.notify_all()


_worker_ids = itertools.count(1)
_helper_lock = threading.Lock()
_helper: _Helper | None = None


def _shared_helper() -> _Helper:
    """The running scoring process, started on first use and again if it has died."""
    global _helper
    with _helper_lock:
        if _helper is None or not _helper.alive():
            _helper = _Helper()
        return _helper


def helper_peak_rss_bytes() -> int | None:
    """The running scoring process's peak resident memory (Linux), None without one.

    Read from /proc, not from getrusage's children: a forked child inherits its parent's
    peak until exec, so that would report the training process's peak again.
    """
    with _helper_lock:
        helper = _helper
    if helper is None:
        return None
    try:
        status = Path(f"/proc/{helper.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def stop_helper(timeout_sec: float = 30.0) -> None:
    """End the scoring process (it is started again when needed), after the requests already sent."""
    global _helper
    with _helper_lock:
        helper, _helper = _helper, None
    if helper is not None:
        helper.stop(timeout_sec)


class _Helper:
    """The parent's end of the scoring process: sends requests, dispatches the answers."""

    def __init__(self) -> None:
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH")])),
            "CUDA_VISIBLE_DEVICES": "-1",  # the GPU's memory belongs to training
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        }
        environment.pop("TF_CONFIG", None)  # the helper is no worker of a multi-machine run
        self._process = subprocess.Popen(
            [sys.executable, "-m", HELPER_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=REPOSITORY_ROOT, env=environment,
        )
        self.pid = self._process.pid
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: dict[int, QualityWorker] = {}
        self._scoring: dict[int, int] = {}  # worker id -> step sent
        threading.Thread(target=self._write_requests, name="dcgan-quality-send", daemon=True).start()
        threading.Thread(target=self._read_answers, name="dcgan-quality", daemon=True).start()
        logger.info("quality scoring process %d started", self.pid)

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout_sec: float) -> None:
        self._outbox.put(None)  # the writer closes stdin after what is queued; the process then exits
        try:
            self._process.wait(timeout=timeout_sec)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def open(self, worker_id: int, worker: QualityWorker, config, training: np.ndarray) -> None:
        self._workers[worker_id] = worker
        self._send(("open", worker_id, config, training))

    def score(self, worker_id: int, step: int, generator_weights: list[np.ndarray]) -> None:
        self._scoring[worker_id] = step
        self._send(("score", worker_id, step, generator_weights))

    def forget(self, worker_id: int) -> None:
        self._workers.pop(worker_id, None)
        self._send(("forget", worker_id))

    def _send(self, message: tuple) -> None:
        if not self.alive():
            raise OSError(f"the scoring process {self.pid} has ended")
        self._outbox.put(message)

    def _write_requests(self) -> None:
        while True:
            message = self._outbox.get()
            if message is None:
                self._process.stdin.close()
                return
            try:
                pickle.dump(message, self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._process.stdin.flush()
            except OSError as error:  # the process has died; _read_answers tells the runs waiting
                logger.error("the quality scoring process %d stopped reading: %s", self.pid, error)
                return

    def _read_answers(self) -> None:
        while True:
            try:
                _, worker_id, step, row, failure = pickle.load(self._process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            self._scoring.pop(worker_id, None)
            worker = self._workers.get(worker_id)
            if worker is not None:
                worker._delivered(step, row, failure)

        # The process has ended: every run still waiting hears why, then may start a new one.
        exit_code = self._process.wait()
        for worker_id, step in list(self._scoring.items()):
            worker = self._workers.get(worker_id)
            if worker is not None:
                worker._delivered(step, None, f"the scoring process ended (exit code {exit_code})")


# The scoring process itself: python -m core.quality_worker


def _serve(requests, answers) -> None:
    """Answer requests until stdin closes: open a run, score one of its samples, forget it."""
    runs: dict[int, dict] = {}
    while True:
        try:
            message = pickle.load(requests)
        except EOFError:
            return
        kind, worker_id = message[0], message[1]

        if kind == "open":
            _, _, config, training = message
            runs[worker_id] = {"config": config, "training": training, "generator": None, "reference": None}
        elif kind == "forget":
            runs.pop(worker_id, None)
        elif kind == "score":
            _, _, step, generator_weights = message
            row, failure = None, ""
            try:
                row = _score(runs[worker_id], step, generator_weights)
            except Exception:  # one bad sample must not end the process the other runs share
                failure = traceback.format_exc()
            pickle.dump(("scored", worker_id, step, row, failure), answers, protocol=pickle.HIGHEST_PROTOCOL)
            answers.flush()


def _score(run: dict, step: int, generator_weights: list) -> QualityRow:
    """Draw the quality sample with these weights and measure it; the run's G and reference are made once."""
    from core.models import build_generator  # TensorFlow, in this process only
    from core.quality import draw_quality_sample, measure, training_reference

    if run["generator"] is None:
        run["generator"] = build_generator(run["config"])
        run["reference"] = training_reference(run["training"])
    run["generator"].set_weights(generator_weights)
    generated = draw_quality_sample(run["generator"], run["config"].latent_dim)
    return measure(step, generated, run["training"], run["reference"])


def _main() -> None:
    if hasattr(os, "nice"):
        os.nice(HELPER_NICENESS)
    if hasattr(os, "SCHED_IDLE"):
        # Linux: a nice-19 thread still holds a core until the scheduler's next tick, and
        # TensorFlow's threads, which meet at every op, then wait for it; a SCHED_IDLE thread
        # gives way as soon as a training thread wakes.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the answers
    logging.basicConfig(level=logging.WARNING, format="quality process: %(levelname)s %(message)s")
    _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    _main()
