"""Tests for core.quality_worker: the process that draws and scores a run's quality sample.

It scores exactly what the training process would (the same faces from the same weights),
delivers rows in order off the calling thread, runs every one of its threads at the lowest
priority, skips a sample that a newer one overtakes but never the last, survives bad
weights and a failing callback, and a run whose scoring process dies finishes anyway.

The generator is the tiny test model with spread-out random weights; the photos are the
LFW crops bundled with scikit-image.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from core import quality_worker
from core.models import build_generator, spread_out_weights
from core.quality import QualityRow, draw_quality_sample, measure, training_reference
from core.quality_worker import QualityWorker
from pictures import lfw_face

SIDE_PX = 16  # tiny_config's resolution
PHOTO_COUNT = 24


@functools.cache
def photos() -> np.ndarray:
    gray = np.stack([np.asarray(lfw_face(index, SIDE_PX)) for index in range(PHOTO_COUNT)])
    return np.repeat(gray[..., None], 3, axis=-1)


@functools.cache
def config():
    return tiny_config(Path("unused"))


def generator_weights(seed: int) -> list[np.ndarray]:
    return spread_out_weights(build_generator(config()), seed=seed).get_weights()


class Collector:
    """on_row for a QualityWorker: keeps each row and the name of the thread that delivered it."""

    def __init__(self) -> None:
        self.rows: list[QualityRow] = []
        self.threads: list[str] = []

    def __call__(self, row: QualityRow) -> None:
        self.rows.append(row)
        self.threads.append(threading.current_thread().name)


def test_the_process_scores_the_same_faces_this_process_would_draw_from_those_weights():
    collector = Collector()
    worker = QualityWorker(photos(), collector, config())

    for step, seed in ((2, 1), (4, 2)):
        worker.submit(step, generator_weights(seed))
        worker.close()

    assert [row.step for row in collector.rows] == [2, 4]
    for row, seed in zip(collector.rows, (1, 2)):
        generator = build_generator(config())
        generator.set_weights(generator_weights(seed))
        here = measure(row.step, draw_quality_sample(generator, config().latent_dim), photos(),
                       training_reference(photos()))
        assert row.swd == pytest.approx(here.swd, rel=1e-3)
        assert row.diversity == pytest.approx(here.diversity, rel=1e-3)
        assert row.swd_baseline == pytest.approx(here.swd_baseline)
        assert row.coverage_ignored_fraction == pytest.approx(here.coverage_ignored_fraction, abs=0.05)
    assert collector.rows[0].swd != collector.rows[1].swd  # different weights, different faces
    assert set(collector.threads) == {"dcgan-quality"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads each thread's nice value from /proc")
def test_every_thread_of_the_scoring_process_runs_at_the_lowest_priority_and_only_when_the_cpu_is_idle():
    worker = QualityWorker(photos(), Collector(), config())
    worker.submit(2, generator_weights(1))
    worker.close()  # by now TensorFlow and numpy have started all their threads there

    threads = Path(f"/proc/{worker.helper_pid}/task")
    # /proc/PID/task/TID/stat after the command's ")": field 19 (niceness) and 41 (policy), from field 3.
    stats = [(task / "stat").read_text().rsplit(")", 1)[1].split() for task in threads.iterdir()]
    training_niceness = os.getpriority(os.PRIO_PROCESS, 0)
    assert {int(fields[16]) for fields in stats} == {min(19, training_niceness + quality_worker.HELPER_NICENESS)}
    assert {int(fields[38]) for fields in stats} == {os.SCHED_IDLE}
    assert len(stats) > 1


def test_the_scoring_process_reports_its_own_peak_memory_not_the_training_process_s():
    worker = QualityWorker(photos(), Collector(), config())
    worker.submit(2, generator_weights(1))
    worker.close()

    status = Path(f"/proc/{worker.helper_pid}/status").read_text()
    own_peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    assert quality_worker.helper_peak_rss_bytes() == pytest.approx(own_peak_kb * 1024, rel=0.05)
    assert quality_worker.helper_peak_rss_bytes() > 50 * 2**20  # TensorFlow is loaded there

    quality_worker.stop_helper()
    assert quality_worker.helper_peak_rss_bytes() is None


def test_a_newer_sample_overtakes_one_still_waiting_but_the_last_is_always_scored(caplog):
    collector = Collector()
    worker = QualityWorker(photos(), collector, config())
    weights = generator_weights(1)

    with caplog.at_level(logging.INFO, logger="core.quality_worker"):
        for step in (2, 4, 6):
            worker.submit(step, weights)  # 2 is being scored while 4 and 6 arrive: 4 is skipped
        assert collector.rows == []  # submit never waits for a score
        worker.close()

    assert [row.step for row in collector.rows] == [2, 6]
    assert any("step 4 skipped" in record.getMessage() for record in caplog.records)


def test_bad_weights_are_logged_with_their_step_and_later_samples_still_arrive(caplog):
    collector = Collector()
    worker = QualityWorker(photos(), collector, config())

    with caplog.at_level(logging.ERROR, logger="core.quality_worker"):
        worker.submit(2, [np.zeros(3)])
        worker.close()
        worker.submit(4, generator_weights(1))
        worker.close()

    assert [row.step for row in collector.rows] == [4]
    failures = [record.getMessage() for record in caplog.records if "step 2 failed" in record.getMessage()]
    assert len(failures) == 1 and "ValueError" in failures[0]


def test_a_failing_row_callback_is_logged_and_close_returns(caplog):
    def on_row(row):
        raise OSError("disk full")

    worker = QualityWorker(photos(), on_row, config())
    with caplog.at_level(logging.ERROR, logger="core.quality_worker"):
        worker.submit(2, generator_weights(1))
        worker.close()

    assert any("step 2 could not be recorded" in record.getMessage() for record in caplog.records)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_when_the_scoring_process_dies_the_run_finishes_and_the_next_sample_gets_a_new_one(caplog):
    collector = Collector()
    worker = QualityWorker(photos(), collector, config())
    worker.submit(2, generator_weights(1))
    worker.close()
    first_pid = worker.helper_pid

    worker.submit(4, generator_weights(1))
    os.kill(first_pid, signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="core.quality_worker"):
        worker.close(timeout_sec=60)  # returns: the death is noticed, not waited out

    worker.submit(6, generator_weights(1))
    worker.close()

    steps = [row.step for row in collector.rows]
    assert steps[0] == 2 and steps[-1] == 6 and worker.helper_pid != first_pid
    if 4 not in steps:  # killed before it answered
        assert any("step 4 failed" in record.getMessage() and "scoring process ended" in record.getMessage()
                   for record in caplog.records)
