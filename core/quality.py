"""What one measurement of a generator is: its sample, its scores, the photos' own scores.

QUALITY_SAMPLE_COUNT images drawn from fixed seeds by the sampling G (the averaged one when
averaging is on) are scored against the training images with ``core.metrics``; each
measurement is one QualityRow, one line of the run's quality.csv. While a run trains, the
drawing and scoring happen in another process (core.quality_worker), so they never slow
the step loop.

The training set's own numbers (the SWD between two random halves, the diversity of the
photos) are computed once per run: they are what a perfect generator would score.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from core import metrics
from core.latent import generate_images, seeds_to_z

QUALITY_SAMPLE_COUNT = 256
QUALITY_SEED_OFFSET = 1_000_000  # quality seeds never overlap the seeds a user browses (0, 1, 2, ...)
DIVERSITY_PAIRS = 128
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


def draw_quality_sample(generator, latent_dim: int) -> np.ndarray:
    """The QUALITY_SAMPLE_COUNT images (uint8) that every measurement of a generator scores."""
    return generate_images(generator, seeds_to_z(quality_seeds(), latent_dim))


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


def closest_pairs(generated: np.ndarray, training: np.ndarray, count: int = 8) -> list[tuple[int, int, float]]:
    """(generated index, nearest training index, copy score) of the `count` most photo-like samples.

    A copy score under metrics.NEAR_COPY_THRESHOLD marks a near copy; these pairs are the
    first place to look for memorisation.
    """
    copies = metrics.memorisation(generated, training)
    order = np.argsort(copies.copy_scores)[:count]
    return [(int(index), int(copies.nearest_indices[index]), float(copies.copy_scores[index])) for index in order]
