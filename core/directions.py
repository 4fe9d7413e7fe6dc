"""GANSpace directions: the main ways a generator's faces vary, as directions in z.

Härkönen et al. (2020): sample many z, take G's first hidden activations (the layer
FEATURE_LAYER of ``core.models.build_generator``), find their principal components,
then transfer each component to z space by a linear regression of z on the component
coordinates, as the paper does for BigGAN (whose z, like ours, feeds no mapping network).

Component k gets a z-space direction u_k, the regression's direction scaled to unit
length, and the standard deviation sigma_k of the samples' coordinate along it, z . u_k,
as GANSpace's own code does. So z + s * sigma_k * u_k moves a face s standard deviations
of the prior along component k, and -3..3 spans what G saw in training. (The unscaled
regression step would move by only R^2 of a standard deviation, R^2 being the share of
the component the straight line explains: under a fifth in a small G's first layer.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_LAYER = "project_relu"  # G's first hidden activations: dense projection, norm, ReLU
DIRECTION_SAMPLES = 2000
DIRECTION_COUNT = 10
FEATURE_BATCH = 500  # z sent through the first layer at once; bounds memory at 256 px
# Randomized SVD (Halko, Martinsson and Tropp 2011). An exact SVD of 2000 x 4096
# activations (64 px, default width) took 75 s on a busy 2-core CPU; the top components
# alone need a few matrix products. Extra columns and power iterations make the top ones exact
# to float32 precision when the spectrum decays, as activations' do.
OVERSAMPLING = 10
POWER_ITERATIONS = 4


@dataclass(frozen=True)
class LatentDirections:
    """The top principal components of G's first activations, expressed in z."""

    directions: np.ndarray  # (K, latent_dim) float32: u_k, unit length
    stds: np.ndarray  # (K,) float32: sigma_k, standard deviation of z . u_k over the samples
    explained_variance_ratios: np.ndarray  # (K,): share of the activations' variance, largest first
    feature_axes: np.ndarray  # (K, features) float32: the principal axes in activation space

    def step(self, component: int) -> np.ndarray:
        """The z offset of one standard deviation along a component: sigma_k * u_k."""
        return (self.stds[component] * self.directions[component]).astype(np.float32)

    def offset(self, amounts_in_stds) -> np.ndarray:
        """sum_k a_k * sigma_k * u_k for the first len(amounts_in_stds) components."""
        amounts = np.asarray(amounts_in_stds, dtype=np.float32)
        steps = self.stds[: len(amounts), None] * self.directions[: len(amounts)]
        return (amounts @ steps).astype(np.float32)


def first_activations(generator, z: np.ndarray) -> np.ndarray:
    """(N, features) float32: G's FEATURE_LAYER output for each z, flattened, inference mode."""
    import keras

    features_model = keras.Model(generator.input, generator.get_layer(FEATURE_LAYER).output)
    batches = [
        np.asarray(features_model(z[begin : begin + FEATURE_BATCH], training=False))
        for begin in range(0, len(z), FEATURE_BATCH)
    ]
    return np.concatenate(batches).reshape(len(z), -1).astype(np.float32)


def top_principal_axes(centred: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The `count` largest singular values and right singular vectors (count, features)
    of a centred (N, features) matrix, by randomized SVD with a fixed seed."""
    if not 1 <= count <= min(centred.shape):
        raise ValueError(f"count={count} must be between 1 and {min(centred.shape)}")
    rank = min(count + OVERSAMPLING, min(centred.shape))
    random = np.random.default_rng(seed)

    # Find an orthonormal basis of the space the top columns of `centred` span.
    sketch = centred @ random.standard_normal((centred.shape[1], rank)).astype(centred.dtype)
    for _ in range(POWER_ITERATIONS):
        # Re-orthonormalising each round keeps small components from vanishing in rounding.
        sketch, _ = np.linalg.qr(sketch)
        sketch = centred @ (centred.T @ sketch)
    basis, _ = np.linalg.qr(sketch)

    # An exact SVD of the small projected matrix gives the axes.
    _, singular_values, right_vectors = np.linalg.svd(basis.T @ centred, full_matrices=False)
    return singular_values[:count], right_vectors[:count]


def find_directions(
    generator, count: int = DIRECTION_COUNT, samples: int = DIRECTION_SAMPLES, seed: int = 0
) -> LatentDirections:
    """GANSpace directions of a generator from `samples` z drawn with `seed`."""
    latent_dim = int(generator.input_shape[-1])
    z = np.random.default_rng(seed).standard_normal((samples, latent_dim)).astype(np.float32)

    # Principal components of the first activations.
    activations = first_activations(generator, z)
    centred = activations - activations.mean(axis=0)
    count = min(count, *centred.shape)
    singular_values, axes = top_principal_axes(centred, count, seed)
    total_variance = float(np.sum(centred.astype(np.float64) ** 2))
    coordinates = centred @ axes.T  # (samples, count), each column centred

    # Regress z on the coordinates: z ~ coordinates @ regression. The coordinates are
    # uncorrelated, so each row is that component's own regression on z.
    regression, *_ = np.linalg.lstsq(coordinates.astype(np.float64), z.astype(np.float64), rcond=None)
    lengths = np.linalg.norm(regression, axis=1, keepdims=True)
    directions = regression / np.maximum(lengths, 1e-12)  # a dead component keeps a zero direction
    variances = singular_values.astype(np.float64) ** 2
    ratios = variances / total_variance if total_variance > 0 else np.zeros(count)
    return LatentDirections(
        directions=directions.astype(np.float32),
        stds=(z @ directions.T).std(axis=0).astype(np.float32),
        explained_variance_ratios=ratios,
        feature_axes=axes.astype(np.float32),
    )
