"""Tests for core.health: each alert fires on the numbers that describe its problem and
stays quiet on a healthy run and on near misses (a short D win, a small diversity gap,
a single quality row, a falling copy count).
"""

from __future__ import annotations

import numpy as np

from core.health import (
    COLLAPSE_MARGIN,
    D_WINS_FAKE_SCORE,
    D_WINS_LOSS,
    D_WINS_WINDOW_STEPS,
    NEAR_COPY_ALERT_FRACTION,
    health_alerts,
)
from core.quality import QualityRow

LOG_EVERY_STEPS = 10
HEALTHY_D_LOSS, HEALTHY_G_LOSS, HEALTHY_D_FAKE = 1.2, 0.9, 0.4
WINNING_D_LOSS, WINNING_D_FAKE = D_WINS_LOSS / 2, D_WINS_FAKE_SCORE / 2


def columns(last_step: int, winning_from_step: int | None = None) -> dict[str, np.ndarray]:
    """Metric columns logged every LOG_EVERY_STEPS up to last_step; D wins from winning_from_step on."""
    steps = np.arange(LOG_EVERY_STEPS, last_step + 1, LOG_EVERY_STEPS, dtype=np.float64)
    winning = steps >= winning_from_step if winning_from_step is not None else np.zeros(len(steps), bool)
    return {
        "step": steps,
        "d_loss": np.where(winning, WINNING_D_LOSS, HEALTHY_D_LOSS),
        "g_loss": np.where(winning, 6.0, HEALTHY_G_LOSS),
        "d_real": np.full(len(steps), 0.7),
        "d_fake": np.where(winning, WINNING_D_FAKE, HEALTHY_D_FAKE),
    }


def quality_row(step: int = 500, diversity: float = 0.3, diversity_training: float = 0.3, near_copies: float = 0.0):
    return QualityRow(
        step=step, swd=0.5, swd_baseline=0.1, swd_levels='{"16": 0.5}', diversity=diversity,
        diversity_training=diversity_training, near_copy_fraction=near_copies,
        coverage_ignored_fraction=0.2, coverage_largest_share=0.05,
    )  # fmt: skip


def titles(alerts) -> list[str]:
    return [alert.title for alert in alerts]


def test_a_healthy_run_raises_no_alert():
    rows = [quality_row(500, near_copies=0.01), quality_row(1000, near_copies=0.02)]

    assert health_alerts(columns(1000), rows, notes=["skipped checkpoint 400: unreadable"]) == []


def test_a_run_that_has_just_started_raises_no_alert():
    assert health_alerts({}, []) == []
    assert health_alerts(columns(0), []) == []


def test_d_winning_for_the_whole_last_window_raises_an_alert_with_a_remedy():
    alerts = health_alerts(columns(400, winning_from_step=400 - D_WINS_WINDOW_STEPS + LOG_EVERY_STEPS), [])

    assert titles(alerts) == ["D is winning"]
    assert "augmentation" in alerts[0].remedy


def test_d_winning_from_the_first_step_is_not_an_alert_before_the_window_has_passed():
    assert health_alerts(columns(D_WINS_WINDOW_STEPS - LOG_EVERY_STEPS, winning_from_step=0), []) == []
    assert titles(health_alerts(columns(D_WINS_WINDOW_STEPS, winning_from_step=0), [])) == ["D is winning"]


def test_one_balanced_step_inside_the_window_keeps_d_from_counting_as_winning():
    # The step at the window's oldest edge is still balanced.
    metrics = columns(400, winning_from_step=400 - D_WINS_WINDOW_STEPS + 2 * LOG_EVERY_STEPS)

    assert health_alerts(metrics, []) == []


def test_d_that_won_long_ago_but_no_longer_does_raises_no_alert():
    metrics = columns(600, winning_from_step=0)
    recovered = metrics["step"] > 300
    metrics["d_loss"][recovered], metrics["d_fake"][recovered] = HEALTHY_D_LOSS, HEALTHY_D_FAKE

    assert health_alerts(metrics, []) == []


def test_a_low_d_loss_alone_is_not_d_winning_while_d_still_rates_generated_images_as_real():
    metrics = columns(400, winning_from_step=0)
    metrics["d_fake"][:] = 0.3

    assert health_alerts(metrics, []) == []


def test_generated_images_much_more_alike_than_the_photos_mean_collapse():
    collapsed = quality_row(diversity=0.3 + COLLAPSE_MARGIN + 0.05, diversity_training=0.3)

    alerts = health_alerts(columns(500), [collapsed])

    assert titles(alerts) == ["G is collapsing"]
    assert "0.50" in alerts[0].detail and "0.30" in alerts[0].detail


def test_generated_images_a_little_more_alike_than_the_photos_are_not_collapse():
    slightly = quality_row(diversity=0.3 + COLLAPSE_MARGIN - 0.05, diversity_training=0.3)

    assert health_alerts(columns(500), [slightly]) == []


def test_collapse_is_judged_on_the_latest_quality_row_only():
    collapsed = quality_row(500, diversity=0.9, diversity_training=0.3)
    recovered = quality_row(1000, diversity=0.35, diversity_training=0.3)

    assert health_alerts(columns(1000), [collapsed, recovered]) == []
    assert titles(health_alerts(columns(1000), [recovered, collapsed])) == ["G is collapsing"]


def test_collapse_is_not_judged_without_the_photos_own_diversity():
    unknown = quality_row(diversity=0.99, diversity_training=float("nan"))

    assert health_alerts(columns(500), [unknown]) == []


def test_near_copies_rising_past_the_threshold_raise_an_alert():
    rows = [quality_row(500, near_copies=0.02), quality_row(1000, near_copies=NEAR_COPY_ALERT_FRACTION + 0.1)]

    alerts = health_alerts(columns(1000), rows)

    assert titles(alerts) == ["Near-copies rising"]
    assert "20%" in alerts[0].detail and "2%" in alerts[0].detail


def test_many_near_copies_in_a_single_row_are_not_yet_a_rise():
    assert health_alerts(columns(500), [quality_row(near_copies=0.5)]) == []


def test_near_copies_that_hold_or_fall_or_stay_under_the_threshold_raise_no_alert():
    high, higher = NEAR_COPY_ALERT_FRACTION + 0.1, NEAR_COPY_ALERT_FRACTION + 0.2
    low, lower = NEAR_COPY_ALERT_FRACTION / 2, NEAR_COPY_ALERT_FRACTION / 4

    for previous, last in ((higher, high), (high, high), (lower, low)):
        rows = [quality_row(500, near_copies=previous), quality_row(1000, near_copies=last)]
        assert health_alerts(columns(1000), rows) == [], (previous, last)


def test_a_nan_or_infinite_loss_raises_the_non_finite_alert():
    for name, bad in (("d_loss", np.nan), ("g_loss", np.inf)):
        metrics = columns(300)
        metrics[name][-1] = bad

        alerts = health_alerts(metrics, [])

        assert titles(alerts) == ["Non-finite values"], name
        assert "learning rate" in alerts[0].remedy


def test_a_rollback_note_raises_the_non_finite_alert_quoting_the_note():
    note = "step 120 was not finite; rolled back to the checkpoint of step 100"

    alerts = health_alerts(columns(300), [], notes=[note])

    assert titles(alerts) == ["Non-finite values"]
    assert alerts[0].detail == note


def test_alerts_come_most_serious_first():
    metrics = columns(400, winning_from_step=0)
    metrics["g_loss"][0] = np.nan
    rows = [
        quality_row(200, near_copies=0.0),
        quality_row(400, diversity=0.9, diversity_training=0.3, near_copies=0.5),
    ]

    assert titles(health_alerts(metrics, rows)) == [
        "Non-finite values", "D is winning", "G is collapsing", "Near-copies rising",
    ]  # fmt: skip
