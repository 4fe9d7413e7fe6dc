"""Tests for the latent-space studio's maths: core.latent (seeds, interpolation, truncation,
sweeps, the mean of seeds, compiled inference), core.directions (GANSpace) and
core.projection (finding a photo's z), each on a tiny generator that runs in milliseconds."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from core.config import TrainConfig
from core.directions import find_directions, first_activations, top_principal_axes
from core.latent import (
    INTERPOLATION_METHODS,
    RESAMPLE_LIMIT_SIGMAS,
    TRUNCATION_METHODS,
    compiled_inference,
    generate_images,
    interpolate,
    lerp,
    mean_latent,
    seed_to_z,
    seeds_to_truncated_z,
    seeds_to_z,
    slerp,
    sweep_dimension,
    truncate,
    walk,
)
from core.projection import ProjectionTask, pixel_distance, project

LATENT_DIM = 512
TINY_LATENT_DIM = 8


@functools.cache
def shared_tiny_generator():
    """One tiny generator for the tests that only read it (building one costs about a second)."""
    return tiny_generator()


@functools.cache
def shared_inference():
    return compiled_inference(shared_tiny_generator())


def tiny_generator():
    """A 16 px G whose pictures differ clearly from one z to the next (see spread_out_weights)."""
    from core.models import build_generator, spread_out_weights

    config = TrainConfig(resolution_px=16, width=8, latent_dim=TINY_LATENT_DIM)
    return spread_out_weights(build_generator(config))


def test_a_seed_always_gives_the_same_standard_normal_z():
    first = seed_to_z(7, LATENT_DIM)
    again = seed_to_z(7, LATENT_DIM)

    assert first.shape == (LATENT_DIM,)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert abs(first.mean()) < 0.2 and 0.8 < first.std() < 1.2


def test_different_seeds_give_different_z():
    assert not np.allclose(seed_to_z(0, LATENT_DIM), seed_to_z(1, LATENT_DIM))


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed=-1"):
        seed_to_z(-1, LATENT_DIM)


def test_each_row_of_seeds_to_z_is_the_z_of_that_seed():
    seeds = [3, 0, 42, 3]

    batch = seeds_to_z(seeds, LATENT_DIM)

    assert batch.shape == (len(seeds), LATENT_DIM)
    assert batch.dtype == np.float32
    for row, seed in zip(batch, seeds):
        np.testing.assert_array_equal(row, seed_to_z(seed, LATENT_DIM))


def test_slerp_and_lerp_start_and_end_exactly_at_their_endpoints():
    start, end = seed_to_z(1, LATENT_DIM), seed_to_z(2, LATENT_DIM)

    for blend in (slerp, lerp):
        np.testing.assert_allclose(blend(start, end, 0.0), start, atol=1e-5)
        np.testing.assert_allclose(blend(start, end, 1.0), end, atol=1e-5)


def test_slerp_keeps_the_norm_of_gaussian_z_near_the_square_root_of_the_dimension():
    # Seeds whose own z lie near the typical norm; seed 1 happens to sit 8% inside it.
    start, end = seed_to_z(2, LATENT_DIM), seed_to_z(3, LATENT_DIM)
    expected_norm = np.sqrt(LATENT_DIM)

    norms = [np.linalg.norm(slerp(start, end, fraction)) for fraction in np.linspace(0, 1, 11)]
    midpoint_of_lerp = np.linalg.norm(lerp(start, end, 0.5))

    assert all(abs(norm - expected_norm) < 0.05 * expected_norm for norm in norms)
    # The straight line cuts inside the sphere: the reason slerp exists.
    assert midpoint_of_lerp < 0.8 * expected_norm


def test_slerp_of_identical_or_opposite_endpoints_gives_finite_values():
    z = seed_to_z(5, LATENT_DIM)

    same = slerp(z, z, 0.3)
    opposite = slerp(z, -z, 0.3)

    np.testing.assert_allclose(same, z, atol=1e-5)
    assert np.isfinite(opposite).all()
    np.testing.assert_allclose(opposite, lerp(z, -z, 0.3), atol=1e-5)


def test_interpolate_returns_frames_from_start_to_end_inclusive():
    start, end = seed_to_z(1, LATENT_DIM), seed_to_z(2, LATENT_DIM)

    path = interpolate(start, end, frames=5, method="lerp")

    assert path.shape == (5, LATENT_DIM)
    np.testing.assert_allclose(path[0], start, atol=1e-6)
    np.testing.assert_allclose(path[2], (start + end) / 2, atol=1e-5)
    np.testing.assert_allclose(path[-1], end, atol=1e-6)


def test_interpolate_rejects_an_unknown_method_by_name():
    z = seed_to_z(0, LATENT_DIM)

    with pytest.raises(ValueError, match="method='cubic'"):
        interpolate(z, z, frames=4, method="cubic")


@pytest.mark.parametrize("frames", [1, 0])
def test_interpolate_needs_at_least_two_frames(frames):
    z = seed_to_z(0, LATENT_DIM)

    with pytest.raises(ValueError, match=f"frames={frames} must be at least 2"):
        interpolate(z, z, frames=frames)


def test_a_z_gives_the_same_picture_alone_or_in_a_batch_with_other_z():
    generator = tiny_generator()
    z = seeds_to_z([11, 1, 2, 3, 4, 5], TINY_LATENT_DIM)

    alone = generate_images(generator, z[:1])
    in_batch = generate_images(generator, z)
    split_into_small_batches = generate_images(generator, z, batch_size=4)

    assert alone.shape == (1, 16, 16, 3) and alone.dtype == np.uint8
    assert in_batch.shape == (6, 16, 16, 3)
    # Different z really do give different pictures, so equality below means something.
    assert np.abs(in_batch[0].astype(int) - in_batch[1].astype(int)).mean() > 5
    # Kernels for other batch sizes may round differently: allow one level in 255.
    assert np.abs(alone[0].astype(int) - in_batch[0].astype(int)).max() <= 1
    assert np.abs(split_into_small_batches.astype(int) - in_batch.astype(int)).max() <= 1


def test_a_seed_gives_identical_pixels_alone_or_in_any_batch_of_the_compiled_generator():
    images = shared_inference()
    z = seeds_to_z([11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18], TINY_LATENT_DIM)

    alone = images(z[:1])
    in_batch = images(z)
    in_another_batch = images(z[[5, 0, 9]])

    assert alone.shape == (1, 16, 16, 3) and in_batch.shape == (18, 16, 16, 3)
    assert np.abs(in_batch[0].astype(int) - in_batch[1].astype(int)).mean() > 5
    np.testing.assert_array_equal(alone[0], in_batch[0])
    np.testing.assert_array_equal(in_another_batch[1], in_batch[0])
    # The compiled path draws what eager inference draws, up to one level of rounding.
    assert np.abs(in_batch.astype(int) - generate_images(shared_tiny_generator(), z).astype(int)).max() <= 1


@pytest.mark.parametrize("method", INTERPOLATION_METHODS)
def test_interpolation_frames_start_and_end_on_the_exact_pictures_of_the_two_seeds(method):
    images = shared_inference()
    start, end = seed_to_z(3, TINY_LATENT_DIM), seed_to_z(8, TINY_LATENT_DIM)

    frames = images(interpolate(start, end, frames=6, method=method))

    np.testing.assert_array_equal(frames[0], images(start[np.newaxis])[0])
    np.testing.assert_array_equal(frames[-1], images(end[np.newaxis])[0])
    assert np.abs(frames[2].astype(int) - frames[0].astype(int)).mean() > 1  # the path goes somewhere


@pytest.mark.parametrize("method", INTERPOLATION_METHODS)
def test_interpolating_between_identical_or_opposite_z_gives_finite_z_and_pictures(method):
    z = seed_to_z(4, TINY_LATENT_DIM)

    for end in (z, -z):
        path = interpolate(z, end, frames=5, method=method)
        assert np.isfinite(path).all()
        assert shared_inference()(path).shape == (5, 16, 16, 3)


@pytest.mark.parametrize("method", TRUNCATION_METHODS)
def test_truncation_at_psi_one_returns_z_unchanged(method):
    z = seed_to_z(9, LATENT_DIM) * 2  # components far beyond 3 sigma stay too

    np.testing.assert_array_equal(truncate(z, 1.0, method, seed=9), z)


def test_shrink_truncation_scales_z_towards_the_mean_of_the_prior():
    z = seed_to_z(9, LATENT_DIM)

    np.testing.assert_allclose(truncate(z, 0.5, "shrink"), z * 0.5, rtol=1e-6)


def test_resample_truncation_redraws_only_components_beyond_the_limit_and_repeats_per_seed():
    z = seed_to_z(9, LATENT_DIM)
    psi = 0.5
    limit = psi * RESAMPLE_LIMIT_SIGMAS
    inside = np.abs(z) <= limit

    truncated = truncate(z, psi, "resample", seed=9)

    assert (~inside).sum() > 10  # enough components were outside for the test to mean something
    assert np.abs(truncated).max() <= limit
    np.testing.assert_array_equal(truncated[inside], z[inside])
    np.testing.assert_array_equal(truncate(z, psi, "resample", seed=9), truncated)
    assert not np.array_equal(truncate(z, psi, "resample", seed=10)[~inside], truncated[~inside])


def test_truncated_seeds_are_each_truncated_with_their_own_seed_whatever_else_is_asked():
    alone = seeds_to_truncated_z([5], LATENT_DIM, 0.4, "resample")
    with_others = seeds_to_truncated_z([1, 5, 2], LATENT_DIM, 0.4, "resample")

    np.testing.assert_array_equal(with_others[1], alone[0])
    np.testing.assert_array_equal(alone[0], truncate(seed_to_z(5, LATENT_DIM), 0.4, "resample", seed=5))


@pytest.mark.parametrize("psi, method", [(0.0, "shrink"), (1.5, "shrink"), (0.5, "clip")])
def test_truncation_rejects_a_psi_or_method_it_cannot_apply(psi, method):
    with pytest.raises(ValueError, match="psi=|method="):
        truncate(seed_to_z(0, LATENT_DIM), psi, method)


def test_a_sweep_sets_one_component_to_each_value_and_leaves_the_others():
    z = seed_to_z(2, TINY_LATENT_DIM)

    swept = sweep_dimension(z, 3, [-3.0, 0.0, 3.0])

    np.testing.assert_array_equal(swept[:, 3], [-3.0, 0.0, 3.0])
    np.testing.assert_array_equal(np.delete(swept, 3, axis=1), np.tile(np.delete(z, 3), (3, 1)))
    with pytest.raises(ValueError, match="index=8"):
        sweep_dimension(z, TINY_LATENT_DIM, [0.0])


def test_the_mean_of_seeds_points_their_common_way_at_the_typical_norm():
    z_rows = seeds_to_z(range(6), LATENT_DIM)

    mean = mean_latent(z_rows)

    assert np.linalg.norm(z_rows.mean(axis=0)) < 0.5 * np.sqrt(LATENT_DIM)  # why it is rescaled
    assert np.linalg.norm(mean) == pytest.approx(np.sqrt(LATENT_DIM), rel=1e-5)
    cosine = mean @ z_rows.mean(axis=0) / (np.linalg.norm(mean) * np.linalg.norm(z_rows.mean(axis=0)))
    assert cosine == pytest.approx(1.0, abs=1e-6)


def test_randomized_principal_axes_match_an_exact_svd():
    random = np.random.default_rng(1)
    # A matrix with a decaying spectrum, like activations.
    matrix = (random.standard_normal((300, 40)) * np.geomspace(10, 0.1, 40)).astype(np.float32)
    centred = matrix - matrix.mean(axis=0)
    _, exact_values, exact_axes = np.linalg.svd(centred, full_matrices=False)

    values, axes = top_principal_axes(centred, 5)

    np.testing.assert_allclose(values, exact_values[:5], rtol=1e-3)
    np.testing.assert_allclose(np.abs(np.sum(axes * exact_axes[:5], axis=1)), 1.0, atol=1e-3)  # up to sign


@functools.cache
def tiny_directions():
    return find_directions(shared_tiny_generator(), count=4, samples=500)


def test_pca_directions_have_one_z_direction_and_spread_per_component_largest_first():
    directions = tiny_directions()

    assert directions.directions.shape == (4, TINY_LATENT_DIM)
    assert directions.stds.shape == (4,) and (directions.stds > 0).all()
    ratios = directions.explained_variance_ratios
    assert (np.diff(ratios) <= 1e-9).all() and 0 < ratios.sum() <= 1


def test_a_walk_of_zero_standard_deviations_draws_the_same_face_and_others_differ():
    directions = tiny_directions()
    z = seed_to_z(6, TINY_LATENT_DIM)

    path = walk(z, directions.step(0), [0.0, 2.0])
    faces = shared_inference()(np.concatenate([z[np.newaxis], path]))

    np.testing.assert_array_equal(path[0], z)
    np.testing.assert_array_equal(faces[1], faces[0])
    assert np.abs(faces[2].astype(int) - faces[0].astype(int)).mean() > 1
    np.testing.assert_array_equal(directions.offset([0.0, 0.0, 0.0]), np.zeros(TINY_LATENT_DIM))


def test_a_pca_direction_moves_its_component_of_the_activations_more_than_random_directions_do():
    generator = shared_tiny_generator()
    directions = tiny_directions()
    z = seeds_to_z(range(100, 164), TINY_LATENT_DIM)
    activations = first_activations(generator, z)

    def mean_shift_along_first_axis(direction):
        moved = first_activations(generator, z + direction)
        return abs(np.mean((moved - activations) @ directions.feature_axes[0]))

    random_units = np.random.default_rng(3).standard_normal((20, TINY_LATENT_DIM))
    random_units /= np.linalg.norm(random_units, axis=1, keepdims=True)
    random_shift = np.mean([mean_shift_along_first_axis(unit.astype(np.float32)) for unit in random_units])

    np.testing.assert_allclose(np.linalg.norm(directions.directions, axis=1), 1.0, rtol=1e-5)
    assert mean_shift_along_first_axis(directions.directions[0]) > 2 * random_shift


def test_projection_lowers_the_loss_and_finds_a_face_g_drew_from_a_known_z():
    generator = shared_tiny_generator()
    known_z = seed_to_z(4242, TINY_LATENT_DIM)
    target = generate_images(generator, known_z[np.newaxis])[0]
    reported = []

    result = project(generator, target, steps=150, on_progress=lambda step, loss: reported.append(step))

    assert result.z.dtype == np.float32 and result.z.shape == (TINY_LATENT_DIM,)
    assert result.reconstruction.dtype == np.uint8 and result.reconstruction.shape == target.shape
    assert reported == list(range(1, 151)) and len(result.losses) == 150
    assert min(result.losses[-10:]) < 0.5 * result.losses[0]
    random_faces = generate_images(generator, seeds_to_z(range(500, 532), TINY_LATENT_DIM))
    typical_random_distance = float(np.median(pixel_distance(random_faces, target)))
    assert pixel_distance(result.reconstruction[np.newaxis], target)[0] < 0.2 * typical_random_distance


def test_projection_stops_when_asked_and_a_task_reports_the_step_it_reached():
    generator = shared_tiny_generator()
    target = generate_images(generator, seed_to_z(77, TINY_LATENT_DIM)[np.newaxis])[0]

    stopped_early = project(generator, target, steps=100, should_stop=lambda: True)
    task = ProjectionTask(generator, target, steps=5).start()
    assert task.join(60)

    assert stopped_early.losses == ()
    assert stopped_early.reconstruction.shape == target.shape
    snapshot = task.snapshot()
    assert snapshot.state == "finished" and snapshot.step == 5 and len(snapshot.result.losses) == 5


def test_projection_refuses_a_photo_of_another_size():
    with pytest.raises(ValueError, match=r"\(16, 16, 3\) uint8"):
        project(shared_tiny_generator(), np.zeros((32, 32, 3), np.uint8), steps=1)
