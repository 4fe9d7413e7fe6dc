"""Numbers that say how good a generator is, from pictures alone: SWD, MS-SSIM, memorisation.

Every function here takes uint8 image sets of shape (N, R, R, 3), the same arrays the
data loader and the sampler produce, and is pure numpy and scikit-image: no TensorFlow,
so pages and tests can score saved samples without loading a model.

- Sliced Wasserstein distance (SWD) between the patch statistics of two sets, per level
  of a Laplacian pyramid, as in Karras et al. 2018 (Progressive GAN). Lower is better;
  ``swd_baseline`` gives the floor two halves of the training set already reach.
- Diversity: mean multi-scale SSIM (Wang et al. 2003) over random pairs of one set.
  1 means every picture is the same; mode collapse pushes generated sets towards it.
- Memorisation and coverage: for each generated picture its nearest training picture in
  pixel space, how close it is compared with how close training pictures are to each
  other, and how evenly the generated pictures spread over the training set.

Bad arguments raise ValueError with the argument's name in the message.

Measured on a 2-core CPU while another process kept one core busy: SWD of 256 vs 256
images at 32 px 0.9-1.4 s (at 256 px about 22 s, nearly all of it building pyramids),
diversity with 128 pairs at 32 px 0.3 s, memorisation of 256 vs 100 images at 32 px under
0.1 s, nearest training images for 1000 vs 1000 at 64 px 1.0-1.4 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.metrics import structural_similarity
from skimage.transform import downscale_local_mean, pyramid_expand, pyramid_reduce

# The coarsest pyramid level Karras et al. score, so the smallest image SWD can take; every
# function here asks for at least this (the trainer's smallest resolution is the same).
MIN_SIDE_PX = 16

# Sliced Wasserstein distance. Karras et al. take 128 7x7 patches per image from 16k+ images
# and project them onto 4 repeats of 128 random directions. The patch size and directions
# are theirs; 64 patches per image halves the work. Measured on 100 LFW faces at 32 px:
# 128 patches would lower the real-vs-real baseline by about a tenth, less than it moves
# between random halvings (0.047 to 0.085 over four seeds), so the image count matters more.
SWD_MIN_LEVEL_SIDE_PX = MIN_SIDE_PX  # pyramid levels below this side are not scored
SWD_PATCH_SIDE_PX = 7
SWD_PATCHES_PER_IMAGE = 64
# Above this many patches per set and level, each image gives fewer, so time and memory
# stay flat for big sets (256 images x 64 patches).
SWD_MAX_PATCHES_PER_LEVEL = 16384
SWD_DIRECTIONS_PER_REPEAT = 128
SWD_REPEATS = 4
SWD_IMAGES_PER_PYRAMID_BATCH = 64  # images whose pyramids are built at once; bounds memory

# Multi-scale SSIM. The weights are Wang et al.'s for five scales, finest first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW_PX = 7  # structural_similarity's default window; no scale may be smaller
SSIM_FLOOR = 1e-6  # negative SSIM (anti-correlated scales) is clipped here before the log

# Memorisation. A generated picture whose nearest training picture is closer than half the
# typical distance between two different training pictures is called a near copy.
NEAR_COPY_THRESHOLD = 0.5
DISTANCE_CHUNK_BYTES = 32 * 2**20  # float32 rows converted at once, per side of a distance block


@dataclass(frozen=True)
class SwdResult:
    per_level: dict[int, float]  # SWD of each pyramid level, keyed by its side in px, finest first
    mean: float  # average over the levels; the single number to compare runs with


@dataclass(frozen=True)
class MemorisationResult:
    copy_scores: np.ndarray  # (N,) nearest training distance / typical_training_distance
    nearest_indices: np.ndarray  # (N,) index of each generated picture's nearest training picture
    nearest_distances: np.ndarray  # (N,) that distance, pixels scaled to [0, 1]
    typical_training_distance: float  # median distance from a training picture to its neighbour
    near_copy_fraction: float  # share of generated pictures with copy score < near_copy_threshold
    near_copy_indices: np.ndarray  # indices into generated of those near copies
    near_copy_threshold: float = NEAR_COPY_THRESHOLD


def sliced_wasserstein_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> SwdResult:
    """SWD between the 7x7 patch distributions of real and fake, per Laplacian pyramid level.

    Each image is split into a Laplacian pyramid (the finest levels hold detail, the
    coarsest, 16 px or more, is the blurred picture itself, so it carries colour and
    layout). From each level SWD_PATCHES_PER_IMAGE random 7x7x3 patches are taken. Karras
    et al.'s code normalises each set by its own channel statistics; here both sets are
    normalised per channel by the mean and std of all patches of the level together, so a
    colour cast or contrast change still counts. The distance is the mean absolute difference
    between the sorted projections of the two sets onto random unit directions.

    Patch positions are drawn per image index and shared by both sets, so a set scored
    against itself gives exactly 0, and with one seed every generator is scored on the
    same patch positions of the real set. Sets of different sizes are compared at matching
    quantiles. Results are deterministic for a given seed.
    """
    real = _checked_image_set(real, "real")
    fake = _checked_image_set(fake, "fake")
    if fake.shape[1:] != real.shape[1:]:
        raise ValueError(f"fake has resolution {fake.shape[1]} px but real has {real.shape[1]} px")

    random = np.random.default_rng(seed)
    largest_count = max(len(real), len(fake))
    patches_per_image = max(1, min(SWD_PATCHES_PER_IMAGE, SWD_MAX_PATCHES_PER_LEVEL // largest_count))
    sides_px = _swd_level_sides(real.shape[1])
    positions = [
        random.integers(0, side_px - SWD_PATCH_SIDE_PX + 1, size=(largest_count, patches_per_image, 2))
        for side_px in sides_px
    ]
    real_patches = _pyramid_patches(real, positions)
    fake_patches = _pyramid_patches(fake, positions)

    per_level = {}
    for side_px, real_level, fake_level in zip(sides_px, real_patches, fake_patches):
        mean, std = _channel_mean_and_std(real_level, fake_level)
        real_descriptors = ((real_level - mean) / std).reshape(len(real_level), -1)
        fake_descriptors = ((fake_level - mean) / std).reshape(len(fake_level), -1)
        per_level[side_px] = _sliced_wasserstein(real_descriptors, fake_descriptors, random)
    return SwdResult(per_level=per_level, mean=float(np.mean(list(per_level.values()))))


def swd_baseline(real: np.ndarray, seed: int = 0) -> SwdResult:
    """SWD between two random halves of real: the floor a perfect generator would reach.

    A generator that drew new pictures from exactly the training distribution would still
    score about this against the training set, because a finite set of patches never
    matches another finite set exactly. Scores near it cannot be told apart.
    """
    real = _checked_image_set(real, "real", min_count=2)
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    return sliced_wasserstein_distance(real[order[:half]], real[order[half:]], seed=seed)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM of two uint8 pictures of the same shape, (H, W) or (H, W, 3); 1 = same.

    SSIM is taken at the full size and after each 2x2 average-and-halve, for as many scales
    as keep the shorter side at SSIM_WINDOW_PX or more (at most five; 32 px gives three),
    and combined as a geometric mean weighted by Wang et al.'s weights for those scales,
    renormalised to sum to 1. Wang et al. use only the contrast and structure terms at the
    finer scales; structural_similarity returns only full SSIM, so here luminance enters
    at every scale, which weighs brightness differences somewhat more than theirs. A
    scale's SSIM below SSIM_FLOOR counts as SSIM_FLOOR, so the score lies in (0, 1] and is
    exactly 1 for identical pictures.
    """
    a = _checked_picture(a, "a")
    b = _checked_picture(b, "b")
    if b.shape != a.shape:
        raise ValueError(f"b has shape {b.shape} but a has shape {a.shape}")

    scale_count = 1
    side_px = min(a.shape[:2])
    while scale_count < len(MS_SSIM_WEIGHTS) and side_px // 2 >= SSIM_WINDOW_PX:
        side_px //= 2
        scale_count += 1
    weights = np.array(MS_SSIM_WEIGHTS[:scale_count])
    weights /= weights.sum()

    channel_axis = -1 if a.ndim == 3 else None
    halving = (2, 2, 1) if a.ndim == 3 else (2, 2)
    first, second = a.astype(np.float64), b.astype(np.float64)
    log_score = 0.0
    for scale, weight in enumerate(weights):
        if scale > 0:
            first, second = (
                downscale_local_mean(_even_crop(picture), halving) for picture in (first, second)
            )
        similarity = structural_similarity(
            first, second, win_size=SSIM_WINDOW_PX, data_range=255.0, channel_axis=channel_axis
        )
        log_score += weight * np.log(max(similarity, SSIM_FLOOR))
    return float(np.exp(log_score))


def diversity(images: np.ndarray, pairs: int = 128, seed: int = 0) -> float:
    """Mean MS-SSIM over random pairs of different images of one set; lower = more diverse.

    Compare a generated set's value with the training set's: far above it means the
    generator repeats itself (mode collapse).
    """
    images = _checked_image_set(images, "images", min_count=2)
    if isinstance(pairs, bool) or not isinstance(pairs, (int, np.integer)) or pairs < 1:
        raise ValueError(f"pairs must be a whole number of at least 1, got {pairs!r}")

    random = np.random.default_rng(seed)
    first = random.integers(0, len(images), size=pairs)
    # A non-zero offset modulo N picks the partner uniformly among the other images.
    second = (first + random.integers(1, len(images), size=pairs)) % len(images)
    return float(np.mean([ms_ssim(images[i], images[j]) for i, j in zip(first, second)]))


def nearest_training_images(
    generated: np.ndarray, training: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each generated image, the index of the nearest training image and the distance.

    Distance is Euclidean over all pixels scaled to [0, 1] (float32). The sets are
    compared in blocks of about DISTANCE_CHUNK_BYTES per side, so memory stays bounded
    whatever their sizes.
    """
    generated = _checked_image_set(generated, "generated")
    training = _checked_image_set(training, "training")
    _check_same_resolution(generated, "generated", training, "training")
    return _nearest(generated, training, exclude_same_index=False)


def memorisation(generated: np.ndarray, training: np.ndarray) -> MemorisationResult:
    """How close each generated image is to a training image, relative to the training set.

    A copy score is the distance to the nearest training image divided by the median
    distance from a training image to its nearest other training image. 0 is an exact
    copy; about 1 or more is as far from every training image as the training images are
    from each other. Scores under NEAR_COPY_THRESHOLD mark near copies.
    """
    generated = _checked_image_set(generated, "generated")
    training = _checked_image_set(training, "training", min_count=2)
    _check_same_resolution(generated, "generated", training, "training")

    nearest_indices, nearest_distances = _nearest(generated, training, exclude_same_index=False)
    _, neighbour_distances = _nearest(training, training, exclude_same_index=True)
    typical_distance = float(np.median(neighbour_distances))
    if typical_distance == 0.0:
        raise ValueError(
            "training has an identical copy of most of its images; remove duplicates first"
        )

    copy_scores = nearest_distances / typical_distance
    near_copy_indices = np.flatnonzero(copy_scores < NEAR_COPY_THRESHOLD)
    return MemorisationResult(
        copy_scores=copy_scores,
        nearest_indices=nearest_indices,
        nearest_distances=nearest_distances,
        typical_training_distance=typical_distance,
        near_copy_fraction=len(near_copy_indices) / len(generated),
        near_copy_indices=near_copy_indices,
    )


def coverage(nearest_indices: np.ndarray, training_count: int) -> np.ndarray:
    """(training_count,) int64: how many generated images have each training image nearest."""
    if isinstance(training_count, bool) or not isinstance(training_count, (int, np.integer)):
        raise ValueError(f"training_count must be a whole number, got {training_count!r}")
    if training_count < 1:
        raise ValueError(f"training_count must be at least 1, got {training_count}")
    indices = np.asarray(nearest_indices)
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(
            f"nearest_indices must be a 1-D array of integers, got shape {indices.shape} "
            f"and dtype {indices.dtype}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= training_count):
        raise ValueError(
            f"nearest_indices must lie in [0, {training_count}), "
            f"got values from {indices.min()} to {indices.max()}"
        )
    return np.bincount(indices.astype(np.int64), minlength=training_count)


def coverage_summary(histogram: np.ndarray) -> dict:
    """What a coverage histogram says, as plain numbers for a page to show.

    ignored_fraction: share of training images no generated image falls nearest to.
    largest_share: share of generated images that fall nearest to one training image, the
    most popular one (most_chosen_index). A generator spread evenly over 100 training
    images has a largest share near 0.01; one stuck on a single picture has 1.
    """
    counts = np.asarray(histogram)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(
            f"histogram must be a non-empty 1-D array of integer counts, got shape "
            f"{counts.shape} and dtype {counts.dtype}"
        )
    if counts.min() < 0:
        raise ValueError("histogram must not hold negative counts")
    generated_count = int(counts.sum())
    if generated_count == 0:
        raise ValueError("histogram counts no generated images")
    return {
        "training_count": int(counts.size),
        "generated_count": generated_count,
        "ignored_fraction": float(np.mean(counts == 0)),
        "largest_share": float(counts.max() / generated_count),
        "most_chosen_index": int(np.argmax(counts)),
    }


def _checked_image_set(images, name: str, min_count: int = 1) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 pixels in [0, 255], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"{name} must have shape (N, R, R, 3), got {images.shape}")
    if images.shape[1] < MIN_SIDE_PX:
        raise ValueError(f"{name} must be at least {MIN_SIDE_PX} px square, got {images.shape[1]} px")
    if len(images) < min_count:
        raise ValueError(f"{name} must hold at least {min_count} images, got {len(images)}")
    return images


def _checked_picture(picture, name: str) -> np.ndarray:
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 pixels in [0, 255], got dtype {picture.dtype}")
    if picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[2] != 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 3), got {picture.shape}")
    if min(picture.shape[:2]) < SSIM_WINDOW_PX:
        raise ValueError(f"{name} must be at least {SSIM_WINDOW_PX} px on each side, got {picture.shape}")
    return picture


def _check_same_resolution(images: np.ndarray, name: str, other: np.ndarray, other_name: str) -> None:
    if images.shape[1:] != other.shape[1:]:
        raise ValueError(
            f"{name} has resolution {images.shape[1]} px but {other_name} has {other.shape[1]} px"
        )


def _even_crop(picture: np.ndarray) -> np.ndarray:
    # downscale_local_mean pads an odd side with zeros, which would darken the last row.
    return picture[: picture.shape[0] // 2 * 2, : picture.shape[1] // 2 * 2]


def _swd_level_sides(resolution_px: int) -> list[int]:
    """Sides of the pyramid levels SWD scores, finest first: 64 -> [64, 32, 16]."""
    sides_px = [resolution_px]
    while -(-sides_px[-1] // 2) >= SWD_MIN_LEVEL_SIDE_PX:
        sides_px.append(-(-sides_px[-1] // 2))  # pyramid_reduce rounds odd sides up
    return sides_px


def _pyramid_patches(images: np.ndarray, positions: list[np.ndarray]) -> list[np.ndarray]:
    """Per level, (N * patches, 7, 7, 3) float32 patches at positions[level][image]."""
    offsets = np.arange(SWD_PATCH_SIDE_PX)
    patches: list[list[np.ndarray]] = [[] for _ in positions]
    for start in range(0, len(images), SWD_IMAGES_PER_PYRAMID_BATCH):
        batch = images[start : start + SWD_IMAGES_PER_PYRAMID_BATCH]
        for level, pixels in enumerate(_laplacian_pyramid(batch, len(positions))):
            corners = positions[level][start : start + len(batch)]  # (n, patches, 2)
            rows = corners[:, :, 0, None, None] + offsets[:, None]
            columns = corners[:, :, 1, None, None] + offsets[None, :]
            image_index = np.arange(len(batch))[:, None, None, None]
            level_patches = pixels[image_index, rows, columns]  # (n, patches, 7, 7, 3)
            patches[level].append(level_patches.reshape(-1, *level_patches.shape[2:]))
    return [np.concatenate(level_patches) for level_patches in patches]


def _laplacian_pyramid(images: np.ndarray, level_count: int) -> list[np.ndarray]:
    """level_count float32 (n, S, S, 3) levels: detail bands, then the blurred coarsest picture.

    The batch is laid out as one picture with n * 3 channels, so scikit-image smooths and
    resizes every image in one call instead of one call per image.
    """
    count, side_px = len(images), images.shape[1]
    stacked = images.transpose(1, 2, 0, 3).reshape(side_px, side_px, count * 3).astype(np.float32) / 255
    gaussians = [stacked]
    for _ in range(level_count - 1):
        gaussians.append(pyramid_reduce(gaussians[-1], preserve_range=True, channel_axis=-1))

    levels = []
    for finer, coarser in zip(gaussians, gaussians[1:]):
        expanded = pyramid_expand(coarser, preserve_range=True, channel_axis=-1)
        levels.append(finer - expanded[: finer.shape[0], : finer.shape[1]])  # odd sides grew by 1
    levels.append(gaussians[-1])
    return [
        level.reshape(level.shape[0], level.shape[1], count, 3).transpose(2, 0, 1, 3).astype(np.float32)
        for level in levels
    ]


def _channel_mean_and_std(*patch_sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3,) float32 mean and std of each colour channel over every pixel of patch_sets."""
    pixel_count, sums, squares = 0, np.zeros(3), np.zeros(3)
    for patches in patch_sets:
        pixels = patches.reshape(-1, 3)
        pixel_count += len(pixels)
        # einsum with float64 sums is about three times as fast as ndarray.std here.
        sums += np.einsum("ij->j", pixels, dtype=np.float64)
        squares += np.einsum("ij,ij->j", pixels, pixels, dtype=np.float64)
    mean = sums / pixel_count
    std = np.sqrt(np.maximum(squares / pixel_count - mean**2, 0.0))
    # A channel flat in both sets gives 0 / 0; any divisor keeps its descriptors at 0.
    return mean.astype(np.float32), np.maximum(std, 1e-8).astype(np.float32)


def _sliced_wasserstein(first: np.ndarray, second: np.ndarray, random: np.random.Generator) -> float:
    """Mean over SWD_REPEATS of the 1-D Wasserstein distance along random unit directions."""
    distances = []
    for _ in range(SWD_REPEATS):
        directions = random.standard_normal((SWD_DIRECTIONS_PER_REPEAT, first.shape[1])).astype(np.float32)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        # One row per direction: sorting along contiguous rows is about twice as fast.
        first_sorted = np.sort(directions @ first.T, axis=1)
        second_sorted = np.sort(directions @ second.T, axis=1)
        if first_sorted.shape[1] != second_sorted.shape[1]:
            quantile_count = max(first_sorted.shape[1], second_sorted.shape[1])
            first_sorted = _at_quantiles(first_sorted, quantile_count)
            second_sorted = _at_quantiles(second_sorted, quantile_count)
        distances.append(np.mean(np.abs(first_sorted - second_sorted)))
    return float(np.mean(distances))


def _at_quantiles(sorted_rows: np.ndarray, count: int) -> np.ndarray:
    """Resample each row of sorted values to count evenly spaced quantiles, linearly."""
    length = sorted_rows.shape[1]
    if length == count:
        return sorted_rows
    positions = np.clip((np.arange(count) + 0.5) * length / count - 0.5, 0, length - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, length - 1)
    fraction = (positions - below).astype(np.float32)
    return sorted_rows[:, below] * (1 - fraction) + sorted_rows[:, above] * fraction


def _unit_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255


def _nearest(
    queries: np.ndarray, references: np.ndarray, exclude_same_index: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Index and distance of each query's nearest reference; optionally never itself."""
    rows_per_chunk = max(1, DISTANCE_CHUNK_BYTES // (queries[0].size * 4))
    nearest_indices = np.zeros(len(queries), dtype=np.int64)
    nearest_distances = np.zeros(len(queries), dtype=np.float64)
    for query_start in range(0, len(queries), rows_per_chunk):
        query_pixels = _unit_pixels(queries[query_start : query_start + rows_per_chunk])
        query_squares = np.einsum("ij,ij->i", query_pixels, query_pixels, dtype=np.float64)
        best_squares = np.full(len(query_pixels), np.inf)
        best_indices = np.zeros(len(query_pixels), dtype=np.int64)

        # |q - r|^2 = |q|^2 + |r|^2 - 2 q.r lets one matrix product score a whole block.
        for reference_start in range(0, len(references), rows_per_chunk):
            reference_pixels = _unit_pixels(references[reference_start : reference_start + rows_per_chunk])
            reference_squares = np.einsum("ij,ij->i", reference_pixels, reference_pixels, dtype=np.float64)
            squares = query_squares[:, None] + reference_squares[None, :] - 2.0 * (
                query_pixels @ reference_pixels.T
            ).astype(np.float64)
            if exclude_same_index:
                query_index = np.arange(query_start, query_start + len(query_pixels))[:, None]
                reference_index = np.arange(reference_start, reference_start + len(reference_pixels))
                squares[query_index == reference_index[None, :]] = np.inf
            block_best = np.argmin(squares, axis=1)
            block_squares = squares[np.arange(len(squares)), block_best]
            better = block_squares < best_squares
            best_squares[better] = block_squares[better]
            best_indices[better] = block_best[better] + reference_start

        # The expansion above loses float32 precision for near-identical pictures; measure
        # the chosen pair directly so an exact copy scores exactly 0.
        differences = query_pixels - _unit_pixels(references[best_indices])
        nearest_distances[query_start : query_start + len(query_pixels)] = np.linalg.norm(differences, axis=1)
        nearest_indices[query_start : query_start + len(query_pixels)] = best_indices
    return nearest_indices, nearest_distances
