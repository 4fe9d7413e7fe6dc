"""The training data: a folder of photos -> checked RGB uint8 squares -> a tf.data pipeline.

This module owns everything between the user's folder and the first training batch:
which files count as images, how each one is decoded and fitted to a square, which
files are skipped and why, the in-process cache that keeps Streamlit reruns instant,
and the fingerprint a run records so it can tell later whether its data changed.

Images leave ``load_folder`` as uint8 and are converted to the model's [-1, 1] range
only inside the tf.data pipeline, by the one function in ``core.imaging``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from core.config import FIT_MODES, supported_resolutions
from core.imaging import uint8_to_model_range

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

# Formats PIL decodes without extra plugins and that people keep photos in.
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)

# Files operating systems and archivers drop into folders; nobody expects them listed.
# Names starting with "." (.DS_Store, ._photo.jpg, .git/) are ignored as well.
IGNORED_FILE_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})
IGNORED_FOLDER_NAMES = frozenset({"__macosx"})
# A README beside the photos (as in GANs_dataset/) documents them; it is not a bad file.
IGNORED_FILE_STEMS = frozenset({"readme"})

MIN_SUGGESTED_RESOLUTION_PX = 32  # below this a DCGAN's faces are too small to judge
MAX_CACHED_DATASETS = 4  # each entry holds every image; a few covers slider back-and-forth
ROTATED_EXIF_ORIENTATIONS = frozenset({5, 6, 7, 8})  # these swap width and height
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
SIXTEEN_BIT_FULL_SCALE = 65535.0
SKIPPED_REASONS_IN_MESSAGE = 3

ProgressCallback = Callable[[int, int], None]  # (files done, files in total)


class DatasetError(ValueError):
    """A folder that cannot be trained on; the message names it and says what to do."""


@dataclass(frozen=True)
class SkippedFile:
    """A file in the folder that was not used, with a short sentence saying why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class LoadedDataset:
    """Every usable image of a folder, fitted to one square size, in a stable order."""

    folder: Path
    images: np.ndarray  # (N, R, R, 3) uint8, read-only: exactly what the model trains on
    paths: tuple[Path, ...]  # one per image, sorted by path relative to folder
    source_sizes: tuple[tuple[int, int], ...]  # (width, height) of each original, upright
    skipped: tuple[SkippedFile, ...]
    fingerprint: str  # sha256 hex of file names, contents, resolution and fit mode

    @property
    def count(self) -> int:
        return len(self.paths)


class _RecentResults:
    """A small least-recently-used map, safe to share between Streamlit's script threads."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, LoadedDataset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> LoadedDataset | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: Hashable, dataset: LoadedDataset) -> None:
        with self._lock:
            self._entries[key] = dataset
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_recent_results = _RecentResults(MAX_CACHED_DATASETS)


def clear_cache() -> None:
    """Forget every cached folder, e.g. to free memory or in tests."""
    _recent_results.clear()


def scan_folder(folder: Path) -> tuple[list[Path], list[SkippedFile]]:
    """Find candidate image files under folder, recursively, sorted by relative path.

    Returns (files with a supported extension, files skipped for their extension).
    Hidden files and folders and operating-system clutter are left out silently.
    """
    folder = Path(folder)
    candidates: list[Path] = []
    skipped: list[SkippedFile] = []
    for directory, folder_names, file_names in os.walk(folder):
        # Pruning in place stops os.walk from descending into .git, __MACOSX and the like.
        folder_names[:] = [name for name in folder_names if not _is_ignored_folder(name)]

        for name in file_names:
            if _is_ignored_file(name):
                continue
            path = Path(directory) / name
            extension = path.suffix.lower()
            if extension in SUPPORTED_EXTENSIONS:
                candidates.append(path)
            else:
                skipped.append(SkippedFile(path, _unsupported_extension_reason(extension)))

    def relative_key(path: Path) -> str:
        return path.relative_to(folder).as_posix()

    candidates.sort(key=relative_key)
    skipped.sort(key=lambda skipped_file: relative_key(skipped_file.path))
    return candidates, skipped


def _is_ignored_folder(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_FOLDER_NAMES


def _is_ignored_file(name: str) -> bool:
    lower_name = name.lower()
    stem, _, _ = lower_name.partition(".")
    is_image = Path(lower_name).suffix in SUPPORTED_EXTENSIONS
    is_documentation = stem in IGNORED_FILE_STEMS and not is_image
    return name.startswith(".") or lower_name in IGNORED_FILE_NAMES or is_documentation


def _unsupported_extension_reason(extension: str) -> str:
    supported = ", ".join(SUPPORTED_EXTENSIONS)
    if not extension:
        return f"no file extension; supported: {supported}"
    return f"unsupported extension {extension}; supported: {supported}"


def load_image(
    path: Path, resolution_px: int, fit_mode: str
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one photo and fit it to a resolution_px square.

    Returns the (R, R, 3) uint8 image and the original (width, height) as the photo is
    meant to be seen (after its EXIF rotation). Raises ValueError with a short human
    reason when the file cannot be used.
    """
    path = Path(path)
    _check_resolution(resolution_px)
    _check_fit_mode(fit_mode)
    _check_not_empty(path)

    try:
        with Image.open(path) as image:
            original_size = _upright_size(image)

            # JPEG can decode at 1/2, 1/4 or 1/8 scale almost for free. Asking for twice
            # the target keeps enough pixels for LANCZOS to do the final, sharp step.
            if image.format == "JPEG":
                image.draft("RGB", (2 * resolution_px, 2 * resolution_px))
            image.load()

            upright = ImageOps.exif_transpose(image)
            rgb = _to_rgb(upright)
    except UnidentifiedImageError:
        raise ValueError("not an image (PIL cannot identify it)") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"too large to decode safely: {error}") from None
    except (OSError, SyntaxError, EOFError, ValueError) as error:
        # PIL reports damaged data through any of these, depending on the format.
        raise ValueError(f"truncated or corrupt image: {error}") from None

    fitted = _fit_to_square(rgb, resolution_px, fit_mode)
    return np.array(fitted, dtype=np.uint8), original_size


def _check_resolution(resolution_px: int) -> None:
    is_whole_number = isinstance(resolution_px, int) and not isinstance(resolution_px, bool)
    if not is_whole_number or resolution_px < 1:
        raise ValueError(f"resolution_px={resolution_px!r} must be a positive whole number")


def _check_fit_mode(fit_mode: str) -> None:
    if fit_mode not in FIT_MODES:
        raise ValueError(f"fit_mode={fit_mode!r} must be one of {FIT_MODES}")


def _check_not_empty(path: Path) -> None:
    try:
        size_bytes = path.stat().st_size
    except OSError as error:
        raise ValueError(f"cannot read file: {error.strerror or error}") from None
    if size_bytes == 0:
        raise ValueError("empty file (0 bytes)")


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The (width, height) the photo is meant to be seen at, read before any draft shrinks it."""
    width, height = image.size
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in ROTATED_EXIF_ORIENTATIONS:
        return height, width
    return width, height


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparent areas become black, like the padding."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return _high_bit_depth_to_rgb(image)

    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")

    return image.convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit and float grayscale by their own range.

    PIL's convert("L") clips these at 255, which turns a normal 16-bit photo white.
    """
    values = np.asarray(image, dtype=np.float64)
    brightest = float(values.max(initial=0.0))
    if image.mode in SIXTEEN_BIT_MODES:
        full_scale = SIXTEEN_BIT_FULL_SCALE
    elif image.mode == "F" and brightest <= 1.0:
        full_scale = 1.0  # float images conventionally hold [0, 1]
    elif brightest <= SIXTEEN_BIT_FULL_SCALE:
        full_scale = SIXTEEN_BIT_FULL_SCALE  # PIL widens 16-bit files to "I" in some formats
    else:
        full_scale = brightest

    gray = np.clip(np.rint(values / full_scale * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def _fit_to_square(image: Image.Image, resolution_px: int, fit_mode: str) -> Image.Image:
    """'pad': the whole photo, centred, with black bars; 'crop': the centre square."""
    size = (resolution_px, resolution_px)
    if fit_mode == "pad":
        # Resizing before padding keeps the bars exactly black: no filter ringing into them.
        return ImageOps.pad(image, size, method=Image.Resampling.LANCZOS, color=(0, 0, 0))
    return ImageOps.fit(image, size, method=Image.Resampling.LANCZOS)


def load_folder(
    folder: str | Path,
    resolution_px: int,
    fit_mode: str = "pad",
    on_progress: ProgressCallback | None = None,
) -> LoadedDataset:
    """Load every usable image under folder, fitted to resolution_px squares.

    Results are cached in-process: a second call with the same files (path, size and
    modification time) and options returns the same LoadedDataset at once. on_progress,
    if given, is called as (files done, files in total) while decoding.
    Raises DatasetError when the folder is missing or holds no usable image.
    """
    _check_resolution(resolution_px)
    _check_fit_mode(fit_mode)
    folder = _existing_folder(folder)
    candidates, unsupported = scan_folder(folder)

    cache_key = (
        folder,
        _file_states(folder, candidates),
        _file_states(folder, [skipped_file.path for skipped_file in unsupported]),
        resolution_px,
        fit_mode,
    )
    cached = _recent_results.get(cache_key)
    if cached is not None:
        return cached

    dataset = _decode_folder(folder, candidates, unsupported, resolution_px, fit_mode, on_progress)
    _recent_results.put(cache_key, dataset)
    return dataset


def _existing_folder(folder: str | Path) -> Path:
    path = Path(folder).expanduser()
    if not path.exists():
        raise DatasetError(
            f"Folder '{folder}' does not exist. "
            "Type the path of a folder of photos, or use GANs_dataset."
        )
    if not path.is_dir():
        raise DatasetError(
            f"'{folder}' is a file, not a folder. "
            "Type the path of the folder that holds your photos, or use GANs_dataset."
        )
    return path.resolve()


def _file_states(folder: Path, paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size in bytes, modification time in ns) per file: cheap change detection."""
    states = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            # A file that vanished mid-scan still gets a key entry; decoding will skip it.
            states.append((path.relative_to(folder).as_posix(), -1, -1))
            continue
        states.append((path.relative_to(folder).as_posix(), status.st_size, status.st_mtime_ns))
    return tuple(states)


def _decode_folder(
    folder: Path,
    candidates: Sequence[Path],
    unsupported: Sequence[SkippedFile],
    resolution_px: int,
    fit_mode: str,
    on_progress: ProgressCallback | None,
) -> LoadedDataset:
    """Decode every candidate; the slow part that the cache exists to avoid repeating."""
    start_time = time.perf_counter()
    images: list[np.ndarray] = []
    paths: list[Path] = []
    source_sizes: list[tuple[int, int]] = []
    skipped: list[SkippedFile] = list(unsupported)
    fingerprint = hashlib.sha256()

    for index, path in enumerate(candidates):
        try:
            image, source_size = load_image(path, resolution_px, fit_mode)
            content_digest = _content_digest(path)
        except ValueError as error:
            skipped.append(SkippedFile(path, str(error)))
        else:
            images.append(image)
            paths.append(path)
            source_sizes.append(source_size)
            relative_path = path.relative_to(folder).as_posix()
            fingerprint.update(f"{relative_path}\0{content_digest}\n".encode())
        if on_progress is not None:
            on_progress(index + 1, len(candidates))

    skipped.sort(key=lambda skipped_file: skipped_file.path.relative_to(folder).as_posix())
    if not images:
        raise DatasetError(_no_usable_image_message(folder, skipped))

    # The cached array is shared by every caller, so nobody may change it in place.
    stacked = np.stack(images)
    stacked.flags.writeable = False
    fingerprint.update(f"resolution_px={resolution_px}\nfit_mode={fit_mode}\n".encode())

    elapsed_ms = (time.perf_counter() - start_time) * 1000.0
    logger.info(
        "loaded %d images from %s at %d px (%s), skipped %d, in %.0f ms",
        len(images), folder, resolution_px, fit_mode, len(skipped), elapsed_ms,
    )
    return LoadedDataset(
        folder=folder,
        images=stacked,
        paths=tuple(paths),
        source_sizes=tuple(source_sizes),
        skipped=tuple(skipped),
        fingerprint=fingerprint.hexdigest(),
    )


def _content_digest(path: Path) -> str:
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise ValueError(f"cannot read file: {error.strerror or error}") from None


def _no_usable_image_message(folder: Path, skipped: Sequence[SkippedFile]) -> str:
    what_to_do = f"Add photos ({', '.join(SUPPORTED_EXTENSIONS)}) or choose another folder."
    if not skipped:
        return f"Folder '{folder}' contains no image files. {what_to_do}"
    first_reasons = "; ".join(
        f"{skipped_file.path.relative_to(folder).as_posix()}: {skipped_file.reason}"
        for skipped_file in skipped[:SKIPPED_REASONS_IN_MESSAGE]
    )
    more = len(skipped) - SKIPPED_REASONS_IN_MESSAGE
    more_note = f"; and {more} more" if more > 0 else ""
    return (
        f"No usable image in folder '{folder}': {len(skipped)} file(s) skipped "
        f"({first_reasons}{more_note}). {what_to_do}"
    )


def suggest_resolution(
    source_sizes: Sequence[tuple[int, int]], prefer_max_px: int = 64
) -> int:
    """A training resolution that matches the photos without wasting compute.

    The smallest supported resolution at or above the median short side of the originals,
    never below 32 px and never above prefer_max_px (training cost grows with its square).
    """
    if not source_sizes:
        raise ValueError("source_sizes is empty; load at least one image first")
    resolutions = supported_resolutions()
    allowed = [resolution for resolution in resolutions if resolution <= prefer_max_px]
    if not allowed:
        raise ValueError(f"prefer_max_px={prefer_max_px} must be at least {resolutions[0]}")

    median_short_side_px = statistics.median(min(size) for size in source_sizes)
    target_px = max(median_short_side_px, MIN_SUGGESTED_RESOLUTION_PX)
    large_enough = [resolution for resolution in allowed if resolution >= target_px]
    return large_enough[0] if large_enough else allowed[-1]


def make_training_dataset(images: np.ndarray, batch_size: int, seed: int) -> "tf.data.Dataset":
    """An endless, shuffled stream of (batch_size, R, R, 3) float32 batches in [-1, 1].

    Every image is seen once per pass in a fresh order; batches run across passes, so a
    folder with fewer images than batch_size still fills whole batches.
    """
    import tensorflow as tf  # imported here so pages that only preview data stay light

    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be an (N, R, R, 3) uint8 array, got {images.shape} {images.dtype}"
        )
    if len(images) == 0:
        raise ValueError("images is empty; load at least one image first")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive whole number")

    dataset = tf.data.Dataset.from_tensor_slices(images)
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(uint8_to_model_range, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
