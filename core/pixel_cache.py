"""A disk cache of prepared training squares, keyed by file content and preparation options.

Decoding a camera photo takes tens of milliseconds; reading a cached square takes well
under one. An entry's name is a hash of the file's bytes and of every option that
shapes the square (resolution, fit, background, this module's format version), so a
changed file or option simply misses; nothing is ever invalidated by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "DCGAN_STUDIO_CACHE_DIR"
CACHE_FORMAT_VERSION = 1  # bump when the preparation of a square changes


def default_cache_dir() -> Path:
    """.cache/pixels beside the code, unless DCGAN_STUDIO_CACHE_DIR points elsewhere."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / ".cache" / "pixels"


class PixelCache:
    """get/put of (square, metadata) pairs; a damaged or unwritable cache only costs speed."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    @staticmethod
    def key(content_sha256: str, **options) -> str:
        described = json.dumps({"version": CACHE_FORMAT_VERSION, **options}, sort_keys=True)
        return hashlib.sha256(f"{content_sha256}\n{described}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[np.ndarray, dict] | None:
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                return stored["pixels"], json.loads(str(stored["metadata"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            # .npz files are zip archives: a truncated or overwritten one fails as BadZipFile.
            logger.warning("ignoring damaged cache entry %s: %s", path, error)
            return None

    def put(self, key: str, pixels: np.ndarray, metadata: dict) -> None:
        path = self._path(key)
        buffer = io.BytesIO()
        np.savez(buffer, pixels=pixels, metadata=np.array(json.dumps(metadata)))
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(buffer.getvalue())
            os.replace(temporary, path)
        except OSError as error:
            logger.warning("cannot write the pixel cache in %s: %s", self.folder, error)
            with contextlib.suppress(OSError):  # e.g. NotADirectoryError when the folder is a file
                temporary.unlink(missing_ok=True)
