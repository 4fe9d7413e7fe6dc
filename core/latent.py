"""Latent-space maths: seeds to z, interpolation, truncation, sweeps, and z to pictures.

z is the generator's input, latent_dim draws from N(0, 1); G is the generator. A seed maps
to exactly one z through ``seed_to_z``; every page, the training grid and exports go
through it, so seed 7 is the same face everywhere.

Gaussian z of dimension d concentrate near the sphere of radius sqrt(d): that is where
G was trained, and why slerp, the mean of several seeds and projection keep z near it.
Directions (``core.directions``) and projection (``core.projection``) build on these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.imaging import model_range_to_uint8

INTERPOLATION_METHODS = ("slerp", "lerp")
_PARALLEL_EPSILON = 1e-6  # below this sin(angle), slerp falls back to a straight line
# shrink: z * psi, towards the prior's mean 0. resample: components beyond psi * 3 sigma
# are drawn again from N(0, 1) until they fall inside (BigGAN's truncation trick).
TRUNCATION_METHODS = ("shrink", "resample")
RESAMPLE_LIMIT_SIGMAS = 3.0  # at psi = 1 the limit would be 3 sigma, but psi = 1 means untouched
_RESAMPLE_STREAM = 0x7E57  # keeps resampling draws apart from seed_to_z's stream of the same seed
INFERENCE_BATCH = 16  # the compiled G always sees this many z; see compiled_inference


def seed_to_z(seed: int, latent_dim: int) -> np.ndarray:
    """The latent vector of one seed: latent_dim draws from N(0, 1), float32."""
    if seed < 0:
        raise ValueError(f"seed={seed} must be zero or positive")
    return np.random.default_rng(seed).standard_normal(latent_dim).astype(np.float32)


def seeds_to_z(seeds: Sequence[int], latent_dim: int) -> np.ndarray:
    """(len(seeds), latent_dim) float32, row i equal to seed_to_z(seeds[i])."""
    return np.stack([seed_to_z(int(seed), latent_dim) for seed in seeds]).astype(np.float32)


def lerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    return ((1.0 - fraction) * start + fraction * end).astype(np.float32)


def slerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation: follows the sphere where Gaussian z live, keeping norms.

    Parallel endpoints fall back to lerp; opposite endpoints would make the great circle
    ambiguous, so they also fall back rather than divide by sin(pi) ~ 0.
    """
    start_unit = start / max(np.linalg.norm(start), 1e-12)
    end_unit = end / max(np.linalg.norm(end), 1e-12)
    angle = np.arccos(np.clip(np.dot(start_unit, end_unit), -1.0, 1.0))
    sin_angle = np.sin(angle)
    if sin_angle < _PARALLEL_EPSILON:
        return lerp(start, end, fraction)
    start_weight = np.sin((1.0 - fraction) * angle) / sin_angle
    end_weight = np.sin(fraction * angle) / sin_angle
    return (start_weight * start + end_weight * end).astype(np.float32)


def blend(start: np.ndarray, end: np.ndarray, fraction: float, method: str = "slerp") -> np.ndarray:
    """The point `fraction` of the way from start to end along a slerp or lerp path."""
    if method not in INTERPOLATION_METHODS:
        raise ValueError(f"method={method!r} must be one of {INTERPOLATION_METHODS}")
    return slerp(start, end, fraction) if method == "slerp" else lerp(start, end, fraction)


def interpolate(start: np.ndarray, end: np.ndarray, frames: int, method: str = "slerp") -> np.ndarray:
    """(frames, latent_dim) path from start to end inclusive."""
    if frames < 2:
        raise ValueError(f"frames={frames} must be at least 2")
    return np.stack([blend(start, end, fraction, method) for fraction in np.linspace(0.0, 1.0, frames)])


def generate_images(generator, z: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Run G in inference mode on z and return (N, R, R, 3) uint8.

    Inference mode makes batch norm use its running statistics, so a z gives the same
    picture whatever else is in the batch.
    """
    pictures = []
    for begin in range(0, len(z), batch_size):
        batch = np.asarray(z[begin : begin + batch_size], dtype=np.float32)
        pictures.append(model_range_to_uint8(generator(batch, training=False)))
    return np.concatenate(pictures, axis=0)


def truncate(z: np.ndarray, psi: float, method: str = "shrink", seed: int = 0) -> np.ndarray:
    """z pulled towards the typical face: a trade of variety for quality.

    psi = 1 returns z unchanged for both methods. "shrink" returns z * psi. "resample"
    draws every component with |z_i| > psi * RESAMPLE_LIMIT_SIGMAS again from N(0, 1)
    until it falls inside; the draws come from `seed`, so a seed's truncated face is the
    same on every page and after a restart. Call it once per seed for per-seed results.
    """
    if method not in TRUNCATION_METHODS:
        raise ValueError(f"method={method!r} must be one of {TRUNCATION_METHODS}")
    if not 0.0 < psi <= 1.0:
        raise ValueError(f"psi={psi} must be above 0 and at most 1")
    z = np.asarray(z, dtype=np.float32)
    if psi == 1.0:
        return z
    if method == "shrink":
        return (z * np.float32(psi)).astype(np.float32)

    limit = psi * RESAMPLE_LIMIT_SIGMAS
    random = np.random.default_rng([_RESAMPLE_STREAM, seed])
    resampled = z.copy()
    outside = np.abs(resampled) > limit
    while outside.any():
        resampled[outside] = random.standard_normal(int(outside.sum())).astype(np.float32)
        outside = np.abs(resampled) > limit
    return resampled


def seeds_to_truncated_z(
    seeds: Sequence[int], latent_dim: int, psi: float = 1.0, method: str = "shrink"
) -> np.ndarray:
    """(len(seeds), latent_dim) float32: each seed's z truncated with its own seed."""
    return np.stack(
        [truncate(seed_to_z(int(seed), latent_dim), psi, method, seed=int(seed)) for seed in seeds]
    ).astype(np.float32)


def sweep_dimension(z: np.ndarray, index: int, values: Sequence[float]) -> np.ndarray:
    """(len(values), latent_dim): copies of z with component `index` set to each value."""
    if not 0 <= index < len(z):
        raise ValueError(f"index={index} must be between 0 and {len(z) - 1}")
    swept = np.repeat(np.asarray(z, dtype=np.float32)[np.newaxis], len(values), axis=0)
    swept[:, index] = values
    return swept


def mean_latent(z_rows: np.ndarray) -> np.ndarray:
    """The mean of several z, rescaled to norm sqrt(latent_dim).

    The plain mean of k independent Gaussian z has norm about sqrt(d / k): close to the
    origin, where G saw almost no z in training and draws a washed-out face. Rescaling
    keeps the mean's direction, the part the faces share, on the sphere G knows.
    """
    z_rows = np.asarray(z_rows, dtype=np.float32)
    if z_rows.ndim != 2 or len(z_rows) == 0:
        raise ValueError(f"z_rows must have shape (N, latent_dim) with N >= 1, got {z_rows.shape}")
    mean = z_rows.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-12:  # opposite z cancel out: no direction to keep
        return mean
    return (mean * np.sqrt(z_rows.shape[1]) / norm).astype(np.float32)


def walk(z: np.ndarray, direction: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """(len(sigmas), latent_dim): z + s * direction for each s; s = 0 gives z exactly.

    direction is the z offset of one standard deviation along a component
    (``LatentDirections.step``), so s counts standard deviations.
    """
    z = np.asarray(z, dtype=np.float32)
    direction = np.asarray(direction, dtype=np.float32)
    return np.stack([z + np.float32(step) * direction for step in sigmas]).astype(np.float32)


def compiled_inference(generator, batch_size: int = INFERENCE_BATCH):
    """A function z (N, latent_dim) -> (N, R, R, 3) uint8 running G as one compiled graph.

    Every call runs G on batches of exactly batch_size rows, padding the last with
    zeros. One traced shape is the fastest on a CPU (no retracing, no per-layer Python),
    and a fixed batch makes a z's picture bit-identical whatever shares its batch, as
    kernels for other batch sizes may round differently.
    """
    import tensorflow as tf

    latent_dim = int(generator.input_shape[-1])
    run_generator = tf.function(
        lambda z: generator(z, training=False),
        input_signature=[tf.TensorSpec((batch_size, latent_dim), tf.float32)],
    )

    def images(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32).reshape(-1, latent_dim)
        padded_count = -(-len(z) // batch_size) * batch_size
        padded = np.zeros((max(padded_count, batch_size), latent_dim), dtype=np.float32)
        padded[: len(z)] = z
        pictures = [
            model_range_to_uint8(run_generator(padded[begin : begin + batch_size]))
            for begin in range(0, len(padded), batch_size)
        ]
        return np.concatenate(pictures, axis=0)[: len(z)]

    return images
