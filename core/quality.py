"""Measuring a generator while it trains, off the training step's critical path.

Every metrics interval the trainer hands over QUALITY_SAMPLE_COUNT images generated from
fixed seeds by the averaged G; a single worker thread scores them against the training
images with ``core.metrics`` and writes one row to the run's quality.csv. The step loop
never waits for a score (only the run's last one is awaited, so it is not lost). On Linux the
worker thread runs at a lower priority (QUALITY_THREAD_NICENESS), so on a CPU that training
already fills, scores arrive later instead of the steps slowing down.

The training set's own numbers (the SWD between two random halves, the diversity of the
photos) are computed once per run: they are what a perfect generator would score.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from core import metrics

logger = logging.getLogger(__name__)

QUALITY_SAMPLE_COUNT = 256
QUALITY_SEED_OFFSET = 1_000_000  # quality seeds never overlap the seeds a user browses (0, 1, 2, ...)
DIVERSITY_PAIRS = 128
QUALITY_THREAD_NICENESS = 10  # added to the scoring thread's nice value; 19 is the lowest priority
QUALITY_FIELDS = (
    "step", "swd", "swd_baseline", "swd_levels", "diversity", "diversity_training",
    "near_copy_fraction", "coverage_ignored_fraction", "coverage_largest_share",
)  # fmt: skip


@dataclass(frozen=True)
class QualityRow:
    """One measurement of the averaged generator; the columns of quality.csv."""

    step: int
    swd: float  # sliced Wasserstein distance to the training photos, pyramid levels averaged
    swd_baseline: float  # the same between two halves of the training photos
    swd_levels: str  # JSON {level side px: SWD}
    diversity: float  # mean MS-SSIM of random pairs of generated images; lower = more varied
    diversity_training: float  # the same for the training photos
    near_copy_fraction: float  # generated images that are near copies of a training photo
    coverage_ignored_fraction: float  # training photos no generated image is nearest to
    coverage_largest_share: float  # generated images nearest to the single most popular photo

    def as_row(self) -> dict:
        return asdict(self)


def quality_seeds(count: int = QUALITY_SAMPLE_COUNT) -> range:
    return range(QUALITY_SEED_OFFSET, QUALITY_SEED_OFFSET + count)


def measure(step: int, generated: np.ndarray, training: np.ndarray, reference: dict) -> QualityRow:
    """Score generated images (uint8) against the training photos; reference from training_reference()."""
    swd = metrics.sliced_wasserstein_distance(training, generated)
    copies = metrics.memorisation(generated, training)
    spread = metrics.coverage_summary(metrics.coverage(copies.nearest_indices, len(training)))
    return QualityRow(
        step=step,
        swd=swd.mean,
        swd_baseline=reference["swd_baseline"],
        swd_levels=json.dumps({str(side): value for side, value in swd.per_level.items()}),
        diversity=metrics.diversity(generated, DIVERSITY_PAIRS),
        diversity_training=reference["diversity_training"],
        near_copy_fraction=copies.near_copy_fraction,
        coverage_ignored_fraction=spread["ignored_fraction"],
        coverage_largest_share=spread["largest_share"],
    )


def training_reference(training: np.ndarray) -> dict:
    """The numbers of the training photos themselves, the targets of the generator's."""
    baseline = metrics.swd_baseline(training).mean if len(training) >= 4 else float("nan")
    return {
        "swd_baseline": baseline,
        "diversity_training": metrics.diversity(training, DIVERSITY_PAIRS) if len(training) >= 2 else float("nan"),
    }


class QualityWorker:
    """One background thread that scores samples in order and reports each row."""

    def __init__(self, training: np.ndarray, on_row) -> None:
        self._training = training
        self._on_row = on_row
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="dcgan-quality", initializer=_lower_this_threads_priority
        )
        self._reference: Future = self._executor.submit(training_reference, training)
        self._pending: list[Future] = []

    def submit(self, step: int, generated: np.ndarray) -> None:
        self._pending = [future for future in self._pending if not future.done()]
        try:
            self._pending.append(self._executor.submit(self._score, step, generated))
        except RuntimeError:  # the process is ending and has closed its thread pools; training stops cleanly
            logger.warning("quality at step %d not scored: the process is ending", step)

    def _score(self, step: int, generated: np.ndarray) -> None:
        try:
            row = measure(step, generated, self._training, self._reference.result())
        except Exception:  # a metric must never take training down with it
            logger.exception("quality metrics at step %d failed", step)
            return
        self._on_row(row)

    def close(self, timeout_sec: float = 120.0) -> None:
        """Wait for the scores already asked for, then stop the thread."""
        for future in self._pending:
            try:
                future.result(timeout=timeout_sec)
            except Exception:
                logger.exception("a quality measurement did not finish")
        self._executor.shutdown(wait=False, cancel_futures=True)


def _lower_this_threads_priority() -> None:
    """Let the training step win the CPU over this thread. Linux gives each thread its own nice value."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere setpriority would lower the whole process, the step included
    thread_id = threading.get_native_id()
    try:
        niceness = os.getpriority(os.PRIO_PROCESS, thread_id) + QUALITY_THREAD_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread_id, niceness)
    except OSError as error:
        logger.warning("could not lower the quality thread's priority: %s", error)


def closest_pairs(generated: np.ndarray, training: np.ndarray, count: int = 8) -> list[tuple[int, int, float]]:
    """(generated index, nearest training index, copy score) of the `count` most photo-like samples.

    A copy score under metrics.NEAR_COPY_THRESHOLD marks a near copy; these pairs are the
    first place to look for memorisation.
    """
    copies = metrics.memorisation(generated, training)
    order = np.argsort(copies.copy_scores)[:count]
    return [(int(index), int(copies.nearest_indices[index]), float(copies.copy_scores[index])) for index in order]
