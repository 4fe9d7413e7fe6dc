"""Latent-space maths: seeds to z, interpolation, and turning z into pictures.

A seed maps to exactly one z through ``seed_to_z``; every page, the training grid and
exports go through it, so seed 7 is the same face everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.imaging import model_range_to_uint8

INTERPOLATION_METHODS = ("slerp", "lerp")
_PARALLEL_EPSILON = 1e-6  # below this sin(angle), slerp falls back to a straight line


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
