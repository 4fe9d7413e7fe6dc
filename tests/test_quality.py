"""Tests for core.quality and the run's quality.csv: measure() tells faces from noise and
copies from new pictures, the photos' own numbers are what a perfect G would score; rows
round-trip through RunDir and are cut back on a resume. The process that scores a run
while it trains has its own tests, in test_quality_worker.py.

The faces are the LFW crops bundled with scikit-image, at 16 px, grey in all channels.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from conftest import tiny_config
from core import quality
from core.data import load_folder
from core.quality import QUALITY_FIELDS, QualityRow, measure, quality_seeds, training_reference
from core.runs import RunDir
from pictures import LFW_FACE_COUNT, lfw_face

SIDE_PX = 16
HALF = LFW_FACE_COUNT // 2


@functools.cache
def faces() -> np.ndarray:
    gray = np.stack([np.asarray(lfw_face(index, SIDE_PX)) for index in range(LFW_FACE_COUNT)])
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    rgb.flags.writeable = False
    return rgb


def training() -> np.ndarray:
    return faces()[:HALF]


def other_faces() -> np.ndarray:
    return faces()[HALF:]


def noise(count: int = HALF) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, (count, SIDE_PX, SIDE_PX, 3), dtype=np.uint8)


@functools.cache
def reference() -> dict:
    return training_reference(training())


def test_noise_is_much_farther_from_the_photos_than_other_faces_are():
    new_faces = measure(10, other_faces(), training(), reference())
    random_pixels = measure(10, noise(), training(), reference())

    assert random_pixels.swd > 2 * new_faces.swd  # measured: 0.45 against 0.15
    assert new_faces.swd > reference()["swd_baseline"] / 3  # other people, yet of the same kind
    assert random_pixels.diversity < new_faces.diversity  # noise pairs share no structure


def test_a_row_carries_its_step_the_reference_and_the_swd_of_each_level():
    row = measure(30, other_faces(), training(), reference())

    assert row.step == 30
    assert row.swd_baseline == reference()["swd_baseline"]
    assert row.diversity_training == reference()["diversity_training"]
    assert json.loads(row.swd_levels) == {str(SIDE_PX): pytest.approx(row.swd)}  # one level at 16 px
    assert tuple(row.as_row()) == QUALITY_FIELDS


def test_copies_of_the_photos_are_all_near_copies_covering_every_photo():
    row = measure(1, training(), training(), reference())

    assert row.swd == pytest.approx(0.0, abs=1e-6)
    assert row.near_copy_fraction == 1.0
    assert row.coverage_ignored_fraction == 0.0
    assert row.coverage_largest_share == pytest.approx(1 / HALF)


def test_one_face_over_and_over_scores_as_collapsed_onto_one_photo():
    same_face = np.repeat(other_faces()[:1], 20, axis=0)

    row = measure(1, same_face, training(), reference())

    assert row.diversity == pytest.approx(1.0)
    assert row.coverage_largest_share == 1.0
    assert row.coverage_ignored_fraction == pytest.approx(1 - 1 / HALF)


def test_the_photos_own_numbers_are_finite_and_missing_for_too_few_photos():
    assert reference()["swd_baseline"] > 0
    assert 0 < reference()["diversity_training"] < 1

    three = training_reference(training()[:3])
    assert np.isnan(three["swd_baseline"]) and np.isfinite(three["diversity_training"])
    one = training_reference(training()[:1])
    assert np.isnan(one["swd_baseline"]) and np.isnan(one["diversity_training"])


def test_quality_seeds_never_overlap_the_seeds_a_user_browses():
    seeds = quality_seeds(8)

    assert len(seeds) == 8 and min(seeds) >= quality.QUALITY_SEED_OFFSET > 1000


@pytest.fixture
def run(tmp_path, face_folder) -> RunDir:
    dataset = load_folder(face_folder, SIDE_PX)
    return RunDir.create(tmp_path / "runs", tiny_config(face_folder), dataset)


def stored_row(step: int) -> QualityRow:
    return QualityRow(
        step=step, swd=0.1 * step + 0.123456789, swd_baseline=0.0625, swd_levels='{"16": 0.5, "32": 1.25}',
        diversity=0.3, diversity_training=0.25, near_copy_fraction=step / 100,
        coverage_ignored_fraction=0.5, coverage_largest_share=1 / 3,
    )  # fmt: skip


def test_quality_rows_round_trip_through_the_run_directory(run):
    rows = [stored_row(step) for step in (2, 4, 6)]

    for row in rows:
        run.append_quality(row.as_row())

    assert run.read_quality() == rows


def test_a_run_without_quality_csv_reads_as_no_rows_and_truncating_it_creates_nothing(run):
    assert run.read_quality() == []

    run.truncate_quality_after(10)

    assert not run.quality_path.exists()


def test_truncating_keeps_only_the_rows_up_to_the_step(run):
    for step in (2, 4, 6, 8):
        run.append_quality(stored_row(step).as_row())

    run.truncate_quality_after(4)

    assert [row.step for row in run.read_quality()] == [2, 4]
    run.append_quality(stored_row(6).as_row())  # training resumes and measures again
    assert [row.step for row in run.read_quality()] == [2, 4, 6]


def test_a_row_cut_short_by_a_crash_is_left_out(run):
    run.append_quality(stored_row(2).as_row())
    with open(run.quality_path, "a", encoding="utf-8") as handle:
        handle.write("4,0.5,0.06")  # the process died mid-row

    assert [row.step for row in run.read_quality()] == [2]
