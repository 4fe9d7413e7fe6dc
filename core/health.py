"""Health alerts: rules on a run's live numbers that say what is going wrong and what to try.

Pure functions of the step metrics (losses, D's verdicts) and the quality rows, so the
Train page, the Runs page and tests all judge a run the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

D_WINS_WINDOW_STEPS = 200  # D must win this long before it counts: single spikes are normal
D_WINS_LOSS = 0.1  # D's loss below this ...
D_WINS_FAKE_SCORE = 0.05  # ... while it gives generated images less than a 5% chance of being real
COLLAPSE_MARGIN = 0.15  # generated pairs this much more alike (MS-SSIM) than photo pairs
NEAR_COPY_ALERT_FRACTION = 0.10


@dataclass(frozen=True)
class Alert:
    title: str
    detail: str
    remedy: str


def health_alerts(metrics: dict[str, np.ndarray], quality_rows: Sequence, notes: Sequence[str] = ()) -> list[Alert]:
    """Every rule that fires on these numbers, most serious first.

    metrics are a run's step columns (RunDir.read_metrics(), or a live job's records as
    columns); quality_rows are QualityRows, oldest first; notes are the run's status notes
    (a rollback says so there).
    """
    alerts = []
    alerts += _non_finite(metrics, notes)
    alerts += _discriminator_wins(metrics)
    alerts += _generator_collapse(quality_rows)
    alerts += _near_copies_rising(quality_rows)
    return alerts


def _non_finite(metrics: dict[str, np.ndarray], notes: Sequence[str]) -> list[Alert]:
    rollbacks = [note for note in notes if "rolled back" in note]
    losses = np.concatenate([metrics.get("d_loss", np.array([])), metrics.get("g_loss", np.array([]))])
    if rollbacks or not np.all(np.isfinite(losses)):
        detail = "; ".join(rollbacks) or "a loss is NaN or infinite"
        return [Alert("Non-finite values", detail, "Lower both learning rates (halve them) and continue the run.")]
    return []


def _discriminator_wins(metrics: dict[str, np.ndarray]) -> list[Alert]:
    steps = metrics.get("step", np.array([]))
    if len(steps) < 3 or steps[-1] < D_WINS_WINDOW_STEPS:
        return []
    window = steps > steps[-1] - D_WINS_WINDOW_STEPS
    if window.sum() < 3:
        return []
    losing = (metrics["d_loss"][window] < D_WINS_LOSS) & (metrics["d_fake"][window] < D_WINS_FAKE_SCORE)
    if losing.all():
        return [
            Alert(
                "D is winning",
                f"for the last {D_WINS_WINDOW_STEPS} steps D's loss stayed under {D_WINS_LOSS} and it gave "
                f"generated images under {D_WINS_FAKE_SCORE:.0%} chance of being real, so G gets no useful signal",
                "Turn on augmentation (or ADA), add R1, lower D's learning rate, or make D narrower.",
            )
        ]
    return []


def _generator_collapse(quality_rows: Sequence) -> list[Alert]:
    if not quality_rows:
        return []
    last = quality_rows[-1]
    if np.isfinite(last.diversity_training) and last.diversity > last.diversity_training + COLLAPSE_MARGIN:
        return [
            Alert(
                "G is collapsing",
                f"generated images are much more alike (MS-SSIM {last.diversity:.2f}) than the photos "
                f"({last.diversity_training:.2f}): G makes a few faces over and over",
                "Lower G's learning rate, turn on augmentation, or restart from an earlier checkpoint (branch).",
            )
        ]
    return []


def _near_copies_rising(quality_rows: Sequence) -> list[Alert]:
    if len(quality_rows) < 2:
        return []
    previous, last = quality_rows[-2], quality_rows[-1]
    if last.near_copy_fraction >= NEAR_COPY_ALERT_FRACTION and last.near_copy_fraction > previous.near_copy_fraction:
        return [
            Alert(
                "Near-copies rising",
                f"{last.near_copy_fraction:.0%} of generated images are near copies of a training photo "
                f"(was {previous.near_copy_fraction:.0%}): G is memorising",
                "Stop here or branch from an earlier checkpoint; more photos or stronger augmentation help.",
            )
        ]
    return []
