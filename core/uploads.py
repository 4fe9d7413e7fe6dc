"""Uploaded photos and zip archives -> a new dataset folder, written whole or not at all.

Files are written into a hidden staging folder under the datasets directory and only
renamed to their final name once every file is in place, so a failed or partial
upload never appears as a dataset. Nothing is ever written over an existing folder.
Zip archives are unpacked with checks against unsafe paths and zip bombs.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import time
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

DATASETS_DIR_ENV = "DCGAN_STUDIO_DATASETS_DIR"
MAX_UPLOAD_FILES = 2000  # files per upload, counting those inside archives
MAX_FILE_MB = 50  # one photo; camera JPEGs are 3-15 MB
MAX_UPLOAD_TOTAL_MB = 1000  # everything in one upload, archives unpacked
_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f<>:"/\\|?*]')


class UploadError(ValueError):
    """An upload that cannot be saved; the message says which file and why."""


@dataclass
class UploadResult:
    folder: Path
    saved: list[str] = field(default_factory=list)  # relative paths written
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def default_datasets_dir() -> Path:
    """datasets/ beside the code, unless DCGAN_STUDIO_DATASETS_DIR points elsewhere."""
    override = os.environ.get(DATASETS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "datasets"


def upload_limits_text() -> str:
    return (
        f"Up to {MAX_UPLOAD_FILES} files and {MAX_UPLOAD_TOTAL_MB} MB per upload, {MAX_FILE_MB} MB per photo; "
        "zip archives are unpacked, keeping their folders."
    )


def save_upload(files: Iterable[tuple[str, bytes]], datasets_dir: Path | None = None) -> UploadResult:
    """Write (name, content) pairs, unpacking .zip ones, into a new folder under datasets_dir.

    Files over the limits or with unsafe names are rejected and listed; if nothing is
    left, or the upload as a whole breaks a limit, UploadError is raised and nothing
    stays on disk.
    """
    datasets_dir = Path(datasets_dir) if datasets_dir is not None else default_datasets_dir()
    datasets_dir.mkdir(parents=True, exist_ok=True)
    staging = datasets_dir / f".upload-{os.getpid()}-{time.time_ns()}"
    staging.mkdir()
    result = UploadResult(folder=staging)
    budget = _Budget()
    try:
        for name, content in files:
            if name.lower().endswith(".zip"):
                _unpack_zip(name, content, staging, result, budget)
            elif PurePosixPath(name).name.startswith("."):
                continue  # .DS_Store and ._photo.jpg that came along with a selection
            else:
                _write_member(PurePosixPath(name).name, content, staging, result, budget)
        if not result.saved:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in result.rejected[:3]) or "no files"
            raise UploadError(f"Nothing was saved from the upload ({reasons}).")
        final = _new_folder_name(datasets_dir)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.folder = final
    logger.info("saved %d uploaded files to %s (%d rejected)", len(result.saved), final, len(result.rejected))
    return result


@dataclass
class _Budget:
    files: int = 0
    total_bytes: int = 0

    def spend(self, size_bytes: int) -> None:
        self.files += 1
        self.total_bytes += size_bytes
        if self.files > MAX_UPLOAD_FILES:
            raise UploadError(f"The upload has more than {MAX_UPLOAD_FILES} files; upload fewer at a time.")
        if self.total_bytes > MAX_UPLOAD_TOTAL_MB * 1_000_000:
            raise UploadError(f"The upload is over {MAX_UPLOAD_TOTAL_MB} MB; upload fewer files at a time.")


def _unpack_zip(name: str, content: bytes, staging: Path, result: UploadResult, budget: _Budget) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        result.rejected.append((name, "not a readable zip archive"))
        return
    with archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            label = f"{name}/{member.filename}"
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if member.filename.startswith("/") or ".." in parts or not parts:
                result.rejected.append((label, "unsafe path inside the archive"))
                continue
            if any(part.startswith(".") or part.lower() == "__macosx" for part in parts):
                continue  # clutter from the archiver
            # Check the declared size before reading, so a zip bomb is never inflated.
            if member.file_size > MAX_FILE_MB * 1_000_000:
                result.rejected.append((label, f"{member.file_size / 1e6:.0f} MB is over {MAX_FILE_MB} MB"))
                continue
            budget.spend(member.file_size)
            try:
                data = archive.read(member)
            except (zipfile.BadZipFile, OSError, RuntimeError) as error:  # damaged or encrypted
                result.rejected.append((label, f"cannot be unpacked: {error}"))
                continue
            _write_member("/".join(parts), data, staging, result, budget, counted=True)


def _write_member(
    relative: str, content: bytes, staging: Path, result: UploadResult, budget: _Budget, counted: bool = False
) -> None:
    safe_parts = [_safe_name(part) for part in relative.split("/")]
    if not all(safe_parts):
        result.rejected.append((relative, "the name has no usable characters"))
        return
    if len(content) > MAX_FILE_MB * 1_000_000:
        result.rejected.append((relative, f"{len(content) / 1e6:.0f} MB is over {MAX_FILE_MB} MB"))
        return
    if not counted:
        budget.spend(len(content))
    target = staging.joinpath(*safe_parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    stem, suffix, number = target.stem, target.suffix, 1
    while target.exists():  # two uploads with one name keep both
        number += 1
        target = target.with_name(f"{stem} ({number}){suffix}")
    target.write_bytes(content)
    result.saved.append(target.relative_to(staging).as_posix())


def _safe_name(name: str) -> str:
    """The name with characters no file system accepts removed; letters of any script stay."""
    cleaned = _UNSAFE_CHARACTERS.sub("_", unicodedata.normalize("NFC", name)).strip(" .")
    return cleaned[:200]


def _new_folder_name(datasets_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = datasets_dir / (f"upload-{stamp}" if attempt == 0 else f"upload-{stamp}-{attempt}")
        if not candidate.exists():
            return candidate
    raise UploadError(f"Could not choose a new folder name in {datasets_dir}.")
