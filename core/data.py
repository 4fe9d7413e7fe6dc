"""The training data: a folder of photos -> checked RGB uint8 squares -> a tf.data pipeline.

This module owns the folder as a whole: which files are looked at, which are skipped
and why, which are duplicates or excluded by the user, the caches that keep Streamlit
reruns instant and reloads fast, the manifest a run records, and the batches training
reads. One file's decoding lives in ``core.decode``, its fitting to a square in
``core.framing``.

Images leave ``load_folder`` as uint8 and are converted to the model's [-1, 1] range
only inside the tf.data pipeline, by the one function in ``core.imaging``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import statistics
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.config import BACKGROUNDS, FIT_MODES, supported_resolutions
from core.decode import COMMON_FORMATS, UnusableImage, decode_image
from core.duplicates import Duplicate, find_duplicates
from core.framing import fit_to_square
from core.imaging import uint8_to_model_range
from core.pixel_cache import PixelCache

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

# The usual extensions of COMMON_FORMATS, for help texts and upload filters. Files are
# recognised by content, so a photo with another name or none loads too.
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Files operating systems and archivers drop into folders; nobody expects them listed.
# Names starting with "." (.DS_Store, ._photo.jpg, .git/) are ignored as well.
IGNORED_FILE_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"})
IGNORED_FOLDER_NAMES = frozenset({"__macosx", "$recycle.bin", "system volume information"})
# A README beside the photos (as in GANs_dataset/) documents them; it is not a bad file.
IGNORED_FILE_STEMS = frozenset({"readme"})

MIN_SUGGESTED_RESOLUTION_PX = 32  # below this a DCGAN's faces are too small to judge
MAX_CACHED_DATASETS = 4  # each entry holds every image; a few covers slider back-and-forth
SKIPPED_REASONS_IN_MESSAGE = 3
DECODE_THREADS = min(8, os.cpu_count() or 1)
MAX_FILES_IN_FOLDER = 20_000  # more means a wrong folder (a home or system folder), not an album
EXCLUDED_BY_USER = "excluded by you"

ProgressCallback = Callable[[int, int], None]  # (files done, files in total)


class DatasetError(ValueError):
    """A folder that cannot be trained on; the message names it and says what to do."""


@dataclass(frozen=True)
class SkippedFile:
    """A file in the folder that cannot be used, with a short sentence saying why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class ImageRecord:
    """One usable photo: what it was, what was done to it, and whether training sees it."""

    path: Path
    relative_path: str  # '/'-separated, relative to the folder: the name used everywhere
    content_sha256: str
    size_bytes: int
    source_format: str  # e.g. "JPEG", from the content, not the name
    source_mode: str  # e.g. "RGB", "I;16", "P", "CMYK"
    source_size: tuple[int, int]  # (width, height), upright
    preparation: str  # e.g. "padded, 80x40 -> 32x32"
    included: bool = True
    note: str = ""  # why not included: excluded by you, or a duplicate of which file

    def manifest_row(self) -> dict[str, Any]:
        return {
            "file": self.relative_path,
            "sha256": self.content_sha256,
            "size_bytes": self.size_bytes,
            "format": self.source_format,
            "mode": self.source_mode,
            "width": self.source_size[0],
            "height": self.source_size[1],
            "preparation": self.preparation,
            "included": self.included,
            "note": self.note,
        }


@dataclass(frozen=True)
class LoadedDataset:
    """Every usable photo of a folder fitted to one square size, in file order.

    ``all_images`` and ``records`` cover every usable photo, the Data page's preview;
    ``images`` and ``paths`` only those training sees (not excluded, not a duplicate).
    """

    folder: Path
    records: tuple[ImageRecord, ...]
    all_images: np.ndarray  # (N_all, R, R, 3) uint8, read-only
    skipped: tuple[SkippedFile, ...]
    resolution_px: int
    fit_mode: str
    background: str
    found_duplicates: tuple[Duplicate, ...] = ()  # every repeat in the folder, kept or not
    images: np.ndarray = field(init=False, repr=False)  # (N, R, R, 3) uint8: what training sees

    def __post_init__(self) -> None:
        included = np.array([record.included for record in self.records], dtype=bool)
        images = self.all_images[included] if len(self.records) else self.all_images
        images.flags.writeable = False
        object.__setattr__(self, "images", images)

    @property
    def included_records(self) -> tuple[ImageRecord, ...]:
        return tuple(record for record in self.records if record.included)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(record.path for record in self.included_records)

    @property
    def source_sizes(self) -> tuple[tuple[int, int], ...]:
        return tuple(record.source_size for record in self.included_records)

    @property
    def count(self) -> int:
        return len(self.images)


    @property
    def fingerprint(self) -> str:
        """sha256 of the included files' names and contents and of the preparation options."""
        digest = hashlib.sha256()
        for record in self.included_records:
            digest.update(f"{record.relative_path}\0{record.content_sha256}\n".encode())
        digest.update(f"resolution_px={self.resolution_px}\nfit_mode={self.fit_mode}\n".encode())
        digest.update(f"background={self.background}\n".encode())
        return digest.hexdigest()

    def manifest(self) -> dict[str, Any]:
        """Exactly which files a run saw and what was done to each; saved as manifest.json."""
        return {
            "folder": str(self.folder),
            "resolution_px": self.resolution_px,
            "fit_mode": self.fit_mode,
            "background": self.background,
            "fingerprint": self.fingerprint,
            "images": [record.manifest_row() for record in self.records],
            "skipped": [
                {"file": relative_name(self.folder, skipped.path), "reason": skipped.reason} for skipped in self.skipped
            ],
        }


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
    """Forget every folder decoded in this process (the disk cache stays)."""
    _recent_results.clear()


def scan_folder(folder: Path) -> list[Path]:
    """Every file under folder that could be a photo, recursively, sorted by relative path.

    Hidden files and folders and operating-system clutter are left out silently; the rest
    is judged by its content when decoded.
    """
    folder = Path(folder)
    candidates: list[Path] = []
    for directory, folder_names, file_names in os.walk(folder):
        # Pruning in place stops os.walk from descending into .git, __MACOSX and the like.
        folder_names[:] = [name for name in folder_names if not _is_ignored_folder(name)]
        candidates.extend(Path(directory) / name for name in file_names if not _is_ignored_file(name))
        if len(candidates) > MAX_FILES_IN_FOLDER:
            raise DatasetError(
                f"Folder '{folder}' holds more than {MAX_FILES_IN_FOLDER:,} files with its sub-folders; "
                "choose the folder that holds just your photos."
            )
    return sorted(candidates, key=lambda path: relative_name(folder, path))


def _is_ignored_folder(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_FOLDER_NAMES


def _is_ignored_file(name: str) -> bool:
    lower_name = name.lower()
    stem, _, _ = lower_name.partition(".")
    is_image_name = Path(lower_name).suffix in SUPPORTED_EXTENSIONS
    is_documentation = stem in IGNORED_FILE_STEMS and not is_image_name
    return name.startswith(".") or lower_name in IGNORED_FILE_NAMES or is_documentation


def relative_name(folder: Path, path: Path) -> str:
    """path under folder, '/'-separated, as printable text.

    A name whose bytes are not UTF-8 (copied from an old Windows or Latin-1 disk) reaches
    Python with lone surrogates, which cannot be shown, hashed or written as UTF-8; its
    undecodable bytes are written as \\xNN instead, so the name stays unique and readable.
    """
    name = path.relative_to(folder).as_posix()
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def load_image(
    path: Path, resolution_px: int, fit_mode: str = "pad", background: str = "black"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one photo and fit it to a resolution_px square.

    Returns the (R, R, 3) uint8 square and the original (width, height), upright.
    Raises UnusableImage (a ValueError) with a short reason when the file cannot be used.
    """
    _check_options(resolution_px, fit_mode, background)
    decoded = decode_image(Path(path), background, draft_size_px=2 * resolution_px)
    fitted = fit_to_square(decoded.picture, resolution_px, fit_mode, BACKGROUNDS[background])
    return fitted.pixels, decoded.source_size


def load_image_bytes(
    content: bytes, resolution_px: int, fit_mode: str = "pad", background: str = "black"
) -> np.ndarray:
    """One uploaded photo's content as an (R, R, 3) uint8 square, prepared as training photos are.

    Raises UnusableImage with a short reason when the content is not a usable photo.
    """
    import tempfile

    # The decoder reads files by path (size checks, EXIF), so the upload is written to one.
    with tempfile.TemporaryDirectory(prefix="dcgan-upload-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(content)
        return load_image(path, resolution_px, fit_mode, background)[0]


def load_folder(
    folder: str | Path,
    resolution_px: int,
    fit_mode: str = "pad",
    background: str = "black",
    exclude: Sequence[str] = (),
    keep_duplicates: bool = False,
    on_progress: ProgressCallback | None = None,
    pixel_cache: PixelCache | None = None,
) -> LoadedDataset:
    """Load every usable photo under folder as resolution_px squares.

    exclude names files (relative, '/'-separated) the user left out; duplicates after
    the first of each group are left out too unless keep_duplicates. Two caches keep
    this fast: in-process by (path, size, modification time) per file, and on disk by
    content hash (``core.pixel_cache``). on_progress, if given, is called as
    (files done, files in total) while decoding.
    Raises DatasetError when the folder is missing or training would see no image.
    """
    _check_options(resolution_px, fit_mode, background)
    folder = _existing_folder(folder)
    candidates = scan_folder(folder)

    cache_key = (folder, _file_states(folder, candidates), resolution_px, fit_mode, background)
    decoded = _recent_results.get(cache_key)
    if decoded is None:
        decoded = _decode_folder(
            folder, candidates, resolution_px, fit_mode, background, on_progress, pixel_cache or PixelCache()
        )
        _recent_results.put(cache_key, decoded)

    dataset = _apply_selection(decoded, set(exclude), keep_duplicates)
    if dataset.count == 0:
        raise DatasetError(_nothing_to_train_message(dataset))
    return dataset


def _check_options(resolution_px: int, fit_mode: str, background: str) -> None:
    is_whole_number = isinstance(resolution_px, int) and not isinstance(resolution_px, bool)
    if not is_whole_number or resolution_px < 1:
        raise ValueError(f"resolution_px={resolution_px!r} must be a positive whole number")
    if fit_mode not in FIT_MODES:
        raise ValueError(f"fit_mode={fit_mode!r} must be one of {FIT_MODES}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background={background!r} must be one of {tuple(BACKGROUNDS)}")


def _existing_folder(folder: str | Path) -> Path:
    path = Path(folder).expanduser()
    if not path.exists():
        raise DatasetError(
            f"Folder '{folder}' does not exist. Type the path of a folder of photos, or use GANs_dataset."
        )
    if not path.is_dir():
        raise DatasetError(
            f"'{folder}' is a file, not a folder. "
            "Type the path of the folder that holds your photos, or use GANs_dataset."
        )
    if not os.access(path, os.R_OK | os.X_OK):
        raise DatasetError(f"Folder '{folder}' cannot be read (permission denied). Check its permissions.")
    return path.resolve()


def _file_states(folder: Path, paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size in bytes, modification time in ns) per file: cheap change detection."""
    states = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            # A file that vanished mid-scan still gets a key entry; decoding will skip it.
            states.append((relative_name(folder, path), -1, -1))
            continue
        states.append((relative_name(folder, path), status.st_size, status.st_mtime_ns))
    return tuple(states)


def _decode_folder(
    folder: Path,
    candidates: Sequence[Path],
    resolution_px: int,
    fit_mode: str,
    background: str,
    on_progress: ProgressCallback | None,
    pixel_cache: PixelCache,
) -> LoadedDataset:
    """Decode (or fetch from the disk cache) every candidate; every record starts included.

    Files are read by a few threads at once: PIL and hashlib release the GIL while they
    decode and hash, so a folder of camera photos loads about as many times faster as
    there are cores. Results come back in file order.
    """
    start_time = time.perf_counter()
    squares: list[np.ndarray] = []
    records: list[ImageRecord] = []
    skipped: list[SkippedFile] = []
    cache_hits = 0

    def prepare_one(path: Path) -> tuple[np.ndarray, dict, str, int, bool] | UnusableImage:
        try:
            content_sha256, size_bytes = _content_digest(path)
            key = PixelCache.key(content_sha256, resolution_px=resolution_px, fit_mode=fit_mode, background=background)
            cached = pixel_cache.get(key)
            if cached is not None and cached[0].shape == (resolution_px, resolution_px, 3):
                return (*cached, content_sha256, size_bytes, True)
            pixels, metadata = _prepare(path, resolution_px, fit_mode, background)
            pixel_cache.put(key, pixels, metadata)
            return pixels, metadata, content_sha256, size_bytes, False
        except UnusableImage as error:
            return error

    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        for index, (path, outcome) in enumerate(zip(candidates, pool.map(prepare_one, candidates))):
            if isinstance(outcome, UnusableImage):
                skipped.append(SkippedFile(path, str(outcome)))
            else:
                pixels, metadata, content_sha256, size_bytes, from_cache = outcome
                cache_hits += from_cache
                squares.append(pixels)
                records.append(
                    ImageRecord(
                        path=path,
                        relative_path=relative_name(folder, path),
                        content_sha256=content_sha256,
                        size_bytes=size_bytes,
                        source_format=metadata["format"],
                        source_mode=metadata["mode"],
                        source_size=tuple(metadata["size"]),
                        preparation=metadata["preparation"],
                    )
                )
            if on_progress is not None:
                on_progress(index + 1, len(candidates))

    # The cached array is shared by every caller, so nobody may change it in place.
    shape = (0, resolution_px, resolution_px, 3)
    all_images = np.stack(squares) if squares else np.zeros(shape, dtype=np.uint8)
    all_images.flags.writeable = False
    found_duplicates = tuple(find_duplicates([record.content_sha256 for record in records], all_images))
    elapsed_ms = (time.perf_counter() - start_time) * 1000.0
    logger.info(
        "read %d images from %s at %d px (%s), %d from the disk cache, skipped %d, in %.0f ms",
        len(records), folder, resolution_px, fit_mode, cache_hits, len(skipped), elapsed_ms,
    )
    return LoadedDataset(
        folder, tuple(records), all_images, tuple(skipped), resolution_px, fit_mode, background, found_duplicates
    )


def _prepare(path: Path, resolution_px: int, fit_mode: str, background: str) -> tuple[np.ndarray, dict]:
    decoded = decode_image(path, background, draft_size_px=2 * resolution_px)
    fitted = fit_to_square(decoded.picture, resolution_px, fit_mode, BACKGROUNDS[background])
    metadata = {
        "format": decoded.source_format,
        "mode": decoded.source_mode,
        "size": list(decoded.source_size),
        "preparation": fitted.preparation,
    }
    return fitted.pixels, metadata


def _content_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file's content."""
    try:
        if path.is_symlink() and not path.exists():
            raise UnusableImage(f"a link to a file that is not there ({os.readlink(path)}); remove or fix the link")
        # Opening a named pipe would wait for a writer forever, and the page with it.
        if not stat.S_ISREG(path.stat().st_mode):
            raise UnusableImage("not a regular file (a named pipe, socket or device); remove it from the folder")
        with path.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256")
            return digest.hexdigest(), file.tell()
    except OSError as error:
        raise UnusableImage(f"cannot read file: {error.strerror or error}") from None


def _apply_selection(decoded: LoadedDataset, exclude: set[str], keep_duplicates: bool) -> LoadedDataset:
    """Mark the user's exclusions and, unless kept, all but one photo of each duplicate group.

    The first photo of a group that the user has not excluded is the one trained on, so
    excluding an original hands its place to its copy instead of losing the picture.
    """
    records = decoded.records
    notes = {record.relative_path: EXCLUDED_BY_USER for record in records if record.relative_path in exclude}
    if not keep_duplicates:
        groups: dict[int, list[Duplicate]] = {}
        for duplicate in decoded.found_duplicates:
            groups.setdefault(duplicate.original_index, []).append(duplicate)
        for original_index, copies in groups.items():
            members = [(original_index, "")] + [(copy.index, copy.kind) for copy in copies]
            available = [(index, kind) for index, kind in members if records[index].relative_path not in notes]
            if not available:
                continue
            kept_index = available[0][0]
            for index, kind in available[1:]:
                notes[records[index].relative_path] = f"{kind} duplicate of {records[kept_index].relative_path}"
    if not notes:
        return decoded
    marked = tuple(
        replace(record, included=False, note=notes[record.relative_path]) if record.relative_path in notes else record
        for record in records
    )
    return replace(decoded, records=marked)


def _nothing_to_train_message(dataset: LoadedDataset) -> str:
    folder = dataset.folder
    what_to_do = f"Add photos ({', '.join(COMMON_FORMATS)}) or choose another folder."
    if dataset.records:
        return (
            f"Every usable image in folder '{folder}' is excluded or a duplicate "
            f"({len(dataset.records)} image(s)). Include at least one on the Data page."
        )
    if not dataset.skipped:
        return f"Folder '{folder}' contains no image files. {what_to_do}"
    first_reasons = "; ".join(
        f"{relative_name(folder, skipped.path)}: {skipped.reason}" for skipped in dataset.skipped[:SKIPPED_REASONS_IN_MESSAGE]
    )
    more = len(dataset.skipped) - SKIPPED_REASONS_IN_MESSAGE
    more_note = f"; and {more} more" if more > 0 else ""
    return (
        f"No usable image in folder '{folder}': {len(dataset.skipped)} file(s) skipped "
        f"({first_reasons}{more_note}). {what_to_do}"
    )


def suggest_resolution(source_sizes: Sequence[tuple[int, int]], prefer_max_px: int = 64) -> int:
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


def make_training_dataset(
    images: np.ndarray, batch_size: int, seed: int, start_step: int = 0
) -> "tf.data.Dataset":
    """An endless stream of (batch_size, R, R, 3) float32 batches in [-1, 1], from start_step on.

    Every image is seen once per pass, in an order drawn from (seed, pass number) alone;
    batches run across passes, so a folder with fewer images than batch_size still fills
    whole batches. The batch of step s is therefore the same however the run got there,
    which is what lets a resumed run continue exactly where an uninterrupted one would.
    """
    import tensorflow as tf  # imported here so pages that only preview data stay light

    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be an (N, R, R, 3) uint8 array, got {images.shape} {images.dtype}")
    if len(images) == 0:
        raise ValueError("images is empty; load at least one image first")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive whole number")

    count = len(images)
    pixels = tf.constant(images)
    first_pass, offset = divmod(start_step * batch_size, count)

    def order_of_pass(pass_number: tf.Tensor) -> tf.data.Dataset:
        shuffle_seed = tf.stack([tf.constant(seed, tf.int64), pass_number])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=shuffle_seed)
        return tf.data.Dataset.from_tensor_slices(order)

    indices = tf.data.Dataset.range(first_pass, 2**62).flat_map(order_of_pass).skip(offset)
    batches = indices.batch(batch_size, drop_remainder=True)
    batches = batches.map(
        lambda batch_indices: uint8_to_model_range(tf.gather(pixels, batch_indices)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def load_for_config(config, base_dir: Path, on_progress: ProgressCallback | None = None) -> LoadedDataset:
    """The dataset a TrainConfig describes (its folder, size, fit, background, selection)."""
    return load_folder(
        config.resolved_data_dir(base_dir),
        config.resolution_px,
        config.fit_mode,
        config.background,
        exclude=config.exclude,
        keep_duplicates=config.keep_duplicates,
        on_progress=on_progress,
    )
