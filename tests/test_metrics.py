"""Tests for core.metrics: SWD falls to 0 for the same set and rises with damage, MS-SSIM and
diversity tell copies from different faces, memorisation flags copies of training images
and nothing else, coverage counts where generated images land, and bad arguments are named.

The faces are the 100 LFW crops bundled with scikit-image, resized and made RGB.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from skimage.filters import gaussian

from core import metrics
from core.metrics import (
    NEAR_COPY_THRESHOLD,
    coverage,
    coverage_summary,
    diversity,
    memorisation,
    ms_ssim,
    nearest_training_images,
    sliced_wasserstein_distance,
    swd_baseline,
)
from pictures import LFW_FACE_COUNT, lfw_face

RESOLUTION_PX = 32


@functools.cache
def faces(side_px: int = RESOLUTION_PX) -> np.ndarray:
    """(100, side, side, 3) uint8, read-only: every LFW face resized, gray in all three channels."""
    gray = np.stack([np.asarray(lfw_face(index, side_px)) for index in range(LFW_FACE_COUNT)])
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    rgb.flags.writeable = False
    return rgb


def with_noise(images: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    """images plus Gaussian noise of sigma grey levels, clipped back to uint8."""
    noisy = images + np.random.default_rng(seed).normal(0.0, sigma, images.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def noise_images(count: int, side_px: int = RESOLUTION_PX, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, side_px, side_px, 3), dtype=np.uint8)


def blurred(images: np.ndarray, sigma_px: float) -> np.ndarray:
    smooth = gaussian(images.astype(np.float64), sigma=(0, sigma_px, sigma_px, 0), preserve_range=True)
    return np.rint(smooth).astype(np.uint8)


def test_a_set_scored_against_itself_has_an_swd_of_zero_at_every_level():
    result = sliced_wasserstein_distance(faces(), faces())

    assert result.per_level == pytest.approx({32: 0.0, 16: 0.0}, abs=1e-6)
    assert result.mean == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda images: np.roll(images, 2, axis=2), id="shifted 2 px"),
        pytest.param(lambda images: blurred(images, 1.0), id="blurred"),
        pytest.param(lambda images: with_noise(images, 16), id="noisy"),
    ],
)
def test_a_shifted_blurred_or_noisy_copy_of_a_set_is_clearly_farther_than_the_set_itself(corrupt):
    corrupted = sliced_wasserstein_distance(faces(), corrupt(faces()))

    # The set against itself scores 0 (the test above), so any real distance shows here.
    assert corrupted.mean > 0.02


def test_a_colour_cast_that_keeps_every_pattern_still_raises_the_swd_well_above_the_baseline():
    # Both sets share one normalisation, so a tint is not divided away as it would be
    # if each set were normalised by its own channel statistics.
    tinted = np.rint(faces() * np.array([1.0, 0.8, 0.6])).astype(np.uint8)

    result = sliced_wasserstein_distance(faces()[:50], tinted[50:])

    assert result.mean > 3 * swd_baseline(faces()).mean


def test_a_channel_flat_in_both_sets_neither_breaks_the_swd_nor_adds_to_it():
    flat_blue = faces().copy()
    flat_blue[..., 2] = 128
    noisy_flat_blue = with_noise(faces(), 16)
    noisy_flat_blue[..., 2] = 128

    flat = sliced_wasserstein_distance(flat_blue, noisy_flat_blue).mean

    assert 0.0 < flat < sliced_wasserstein_distance(faces(), with_noise(faces(), 16)).mean


def test_brightening_every_pixel_shows_in_the_coarsest_level_and_not_in_the_detail_level():
    # The finer Laplacian levels hold only differences from the blurred picture, so an
    # offset added to every pixel cancels there; the coarsest level is the picture itself.
    brighter = np.clip(faces().astype(np.int16) + 30, 0, 255).astype(np.uint8)

    result = sliced_wasserstein_distance(faces(), brighter)

    assert result.per_level[16] > 0.1
    assert result.per_level[32] < 0.05 * result.per_level[16]


def test_swapping_real_and_fake_gives_the_same_swd():
    tinted = np.rint(faces() * np.array([1.0, 0.8, 0.6])).astype(np.uint8)

    forwards = sliced_wasserstein_distance(faces()[:40], tinted[40:])
    backwards = sliced_wasserstein_distance(tinted[40:], faces()[:40])

    assert backwards.per_level == pytest.approx(forwards.per_level, rel=1e-4)


def test_swd_grows_with_every_step_up_in_noise():
    sigmas = [4, 8, 16, 32, 64]

    results = [sliced_wasserstein_distance(faces(), with_noise(faces(), sigma)) for sigma in sigmas]

    means = [result.mean for result in results]
    assert means == sorted(means) and len(set(means)) == len(means)
    finest = [result.per_level[RESOLUTION_PX] for result in results]
    assert finest == sorted(finest)


def test_the_real_baseline_is_positive_and_far_below_real_against_pure_noise():
    baseline = swd_baseline(faces())

    against_noise = sliced_wasserstein_distance(faces(), noise_images(LFW_FACE_COUNT))

    assert baseline.mean > 0.0
    assert all(value > 0.0 for value in baseline.per_level.values())
    assert baseline.mean < 0.25 * against_noise.mean


@pytest.mark.parametrize(
    ("side_px", "level_sides_px"),
    [(16, [16]), (32, [32, 16]), (48, [48, 24]), (64, [64, 32, 16])],
)
def test_levels_are_keyed_by_their_side_from_the_image_size_down_to_16_px(side_px, level_sides_px):
    some_faces = faces(side_px)[:8]

    result = sliced_wasserstein_distance(some_faces, some_faces[::-1])

    assert list(result.per_level) == level_sides_px
    assert result.mean == pytest.approx(np.mean(list(result.per_level.values())))


def test_sets_of_different_sizes_are_compared_and_faces_stay_nearer_faces_than_noise():
    faces_against_faces = sliced_wasserstein_distance(faces()[:30], faces()[30:])

    faces_against_noise = sliced_wasserstein_distance(faces()[:30], noise_images(70))

    assert 0.0 < faces_against_faces.mean < 0.5 * faces_against_noise.mean


def test_the_same_seed_gives_the_same_swd_and_another_seed_a_different_one():
    first = sliced_wasserstein_distance(faces()[:50], faces()[50:], seed=3)
    again = sliced_wasserstein_distance(faces()[:50], faces()[50:], seed=3)
    other = sliced_wasserstein_distance(faces()[:50], faces()[50:], seed=4)

    assert again == first
    assert other.mean != first.mean


def test_a_picture_has_an_ms_ssim_of_exactly_one_with_itself_in_colour_and_in_gray():
    face = faces()[0]

    assert ms_ssim(face, face) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(face[..., 0], face[..., 0]) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_ranks_a_noisy_copy_above_another_face_above_noise():
    face = faces()[0]

    noisy_copy = ms_ssim(face, with_noise(face, 8))
    other_face = ms_ssim(face, faces()[4])
    unrelated = ms_ssim(face, noise_images(1)[0])

    assert noisy_copy > 0.8
    assert noisy_copy > other_face > unrelated
    assert unrelated < 0.1


def test_ms_ssim_works_down_to_one_window_of_seven_px():
    tiny = faces()[0][:7, :9]

    assert ms_ssim(tiny, tiny) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="a must be at least 7 px"):
        ms_ssim(tiny[:6], tiny[:6])


def test_twenty_copies_of_one_face_have_a_diversity_of_one():
    copies = np.repeat(faces()[:1], 20, axis=0)

    assert diversity(copies) == pytest.approx(1.0, abs=1e-9)


def test_a_hundred_different_faces_are_clearly_more_diverse_than_copies_and_less_than_noise():
    face_diversity = diversity(faces())

    assert face_diversity < 0.5
    assert diversity(noise_images(100)) < face_diversity


def test_diversity_of_two_images_only_ever_pairs_them_with_each_other():
    pair = faces()[:2]

    assert diversity(pair, pairs=50) == pytest.approx(ms_ssim(pair[0], pair[1]))


def test_each_generated_image_finds_the_training_image_it_copies():
    training = faces()[:50]

    indices, distances = nearest_training_images(training[[10, 3, 47]], training)

    assert indices.tolist() == [10, 3, 47]
    assert distances.tolist() == [0.0, 0.0, 0.0]


def test_nearest_images_found_in_small_chunks_match_a_direct_computation(monkeypatch):
    generated = with_noise(faces()[:25], 40)
    training = faces()[20:60]
    row_bytes = RESOLUTION_PX * RESOLUTION_PX * 3 * 4
    monkeypatch.setattr(metrics, "DISTANCE_CHUNK_BYTES", 7 * row_bytes)  # blocks of 7 rows

    indices, distances = nearest_training_images(generated, training)

    flat_generated = generated.reshape(len(generated), -1) / 255
    flat_training = training.reshape(len(training), -1) / 255
    direct = np.linalg.norm(flat_generated[:, None] - flat_training[None], axis=-1)
    assert indices.tolist() == direct.argmin(axis=1).tolist()
    np.testing.assert_allclose(distances, direct.min(axis=1), rtol=1e-5)


def test_exact_copies_of_training_images_are_flagged_with_a_copy_score_of_zero():
    training = faces()[:50]
    generated = np.concatenate([training[[3, 7, 7, 21, 40]], noise_images(15)])

    result = memorisation(generated, training)

    assert result.copy_scores[:5].tolist() == [0.0] * 5
    assert result.nearest_indices[:5].tolist() == [3, 7, 7, 21, 40]
    assert result.near_copy_indices.tolist() == [0, 1, 2, 3, 4]
    assert result.near_copy_fraction == pytest.approx(0.25)
    assert result.near_copy_threshold == NEAR_COPY_THRESHOLD


def test_noise_images_and_faces_outside_the_training_set_are_not_near_copies():
    training = faces()[:50]

    from_noise = memorisation(noise_images(20), training)
    from_new_faces = memorisation(faces()[50:], training)

    assert from_noise.near_copy_fraction == 0.0 and from_noise.copy_scores.min() > 1.0
    assert from_new_faces.near_copy_fraction == 0.0
    assert from_new_faces.near_copy_indices.size == 0


def test_the_typical_training_distance_is_the_median_distance_to_another_training_image():
    training = faces()[:12]

    result = memorisation(training[:2], training)

    flat = training.reshape(len(training), -1) / 255
    direct = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    np.fill_diagonal(direct, np.inf)
    assert result.typical_training_distance == pytest.approx(np.median(direct.min(axis=1)), rel=1e-5)


def test_a_training_set_made_mostly_of_one_repeated_image_is_refused():
    training = np.concatenate([np.repeat(faces()[:1], 6, axis=0), faces()[1:3]])

    with pytest.raises(ValueError, match="training has an identical copy"):
        memorisation(faces()[:4], training)


def test_coverage_counts_sum_to_the_number_of_generated_images():
    result = memorisation(with_noise(faces()[:60], 30), faces()[:40])

    histogram = coverage(result.nearest_indices, 40)

    assert histogram.shape == (40,)
    assert histogram.sum() == 60


def test_a_generator_that_only_copies_training_image_3_puts_all_coverage_on_index_3():
    training = faces()[:10]
    result = memorisation(np.repeat(training[3:4], 8, axis=0), training)

    histogram = coverage(result.nearest_indices, len(training))

    assert np.flatnonzero(histogram).tolist() == [3]
    assert histogram[3] == 8
    summary = coverage_summary(histogram)
    assert summary["ignored_fraction"] == pytest.approx(0.9)
    assert summary["largest_share"] == 1.0
    assert summary["most_chosen_index"] == 3


def test_a_generator_spread_evenly_over_the_training_set_ignores_none_of_it():
    summary = coverage_summary(coverage(np.arange(10).repeat(2), 10))

    assert summary == {
        "training_count": 10,
        "generated_count": 20,
        "ignored_fraction": 0.0,
        "largest_share": pytest.approx(0.1),
        "most_chosen_index": 0,
    }


BAD_ARGUMENTS = {
    "float real": (lambda: sliced_wasserstein_distance(faces() / 255, faces()), "real must be uint8"),
    "resolutions differ": (
        lambda: sliced_wasserstein_distance(faces(), faces(64)),
        "fake has resolution 64 px",
    ),
    "gray set": (
        lambda: sliced_wasserstein_distance(faces()[..., 0], faces()),
        r"real must have shape \(N, R, R, 3\)",
    ),
    "not square": (lambda: sliced_wasserstein_distance(faces(), faces()[:, :, :16]), "fake must have shape"),
    "too small": (lambda: sliced_wasserstein_distance(faces(), faces(8)), "fake must be at least 16 px"),
    "baseline of one": (lambda: swd_baseline(faces()[:1]), "real must hold at least 2 images"),
    "diversity of one": (lambda: diversity(faces()[:1]), "images must hold at least 2"),
    "no pairs": (lambda: diversity(faces(), pairs=0), "pairs must be"),
    "ms-ssim shapes differ": (lambda: ms_ssim(faces()[0], faces()[1][:16]), "b has shape"),
    "ms-ssim float": (lambda: ms_ssim(faces()[0] / 255, faces()[1]), "a must be uint8"),
    "nearest resolutions differ": (
        lambda: nearest_training_images(faces(), faces(64)),
        "generated has resolution 32 px",
    ),
    "one training image": (lambda: memorisation(faces(), faces()[:1]), "training must hold at least 2"),
    "index out of range": (lambda: coverage(np.array([0, 5]), 3), r"nearest_indices must lie in \[0, 3\)"),
    "float indices": (lambda: coverage(np.array([0.0]), 3), "nearest_indices must be a 1-D array"),
    "no training images": (lambda: coverage(np.array([0]), 0), "training_count must be at least 1"),
    "empty histogram": (lambda: coverage_summary(np.zeros(5, dtype=int)), "histogram counts no"),
}


@pytest.mark.parametrize(("call", "message"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_a_bad_argument_raises_a_value_error_that_names_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
