"""Checkpoints that survive a crash at any moment: written aside, verified, then published.

    checkpoints/
      step_000500/          a complete checkpoint: TensorFlow's files + complete.json
      .partial-step_000600/ one being written (or left by a crash): never read
      pinned.json           steps the user keeps forever, whatever keep_checkpoints says

A checkpoint is written into a hidden folder, its files are hashed into complete.json,
and only then is the folder renamed to step_NNNNNN. Reading verifies every hash, so a
checkpoint cut short by a crash, a full disk or a half-copied folder is skipped, and
named, on resume. Older checkpoints are pruned only once the new one has verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER_NAME = "complete.json"
PINNED_NAME = "pinned.json"
_PREFIX = "ckpt"  # tf.train.Checkpoint.write(<folder>/ckpt) -> ckpt.index, ckpt.data-*
_COMPLETE = re.compile(r"step_(\d+)$")
# Fault injection for the crash tests: sleep this long between writing and publishing.
SAVE_DELAY_ENV = "DCGAN_STUDIO_TEST_SAVE_DELAY_SEC"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or verified; the message says which and why."""


@dataclass(frozen=True)
class StoredCheckpoint:
    step: int
    folder: Path

    @property
    def prefix(self) -> str:
        """What tf.train.Checkpoint.read() takes."""
        return str(self.folder / _PREFIX)


class CheckpointStore:
    """The checkpoints/ folder of one run."""

    def __init__(self, folder: Path, keep_last: int) -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last

    # Writing.

    def save(self, step: int, write) -> StoredCheckpoint:
        """write(prefix) writes the TensorFlow files; returns the verified, published checkpoint.

        Raises CheckpointError (with the OSError's reason, e.g. a full disk) and leaves every
        earlier checkpoint as it was.
        """
        final = self.folder / f"step_{step:06d}"
        partial = self.folder / f".partial-step_{step:06d}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            write(str(partial / _PREFIX))
            hashes = {path.name: _sha256(path) for path in sorted(partial.iterdir())}
            _write_json(partial / MARKER_NAME, {"step": step, "files": hashes})
            _pause_for_crash_tests()
            if final.exists():  # a checkpoint of this step from before a rollback
                shutil.rmtree(final)
            os.replace(partial, final)
            _fsync_folder(self.folder)
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise CheckpointError(f"could not write the checkpoint of step {step} in {self.folder}: {error}") from error

        stored = StoredCheckpoint(step, final)
        problem = verify(stored)
        if problem:
            raise CheckpointError(f"the checkpoint of step {step} did not verify after writing: {problem}")
        self._prune()
        return stored

    def pin(self, step: int) -> None:
        pinned = self.pinned() | {step}
        _write_json(self.folder / PINNED_NAME, sorted(pinned))

    def unpin(self, step: int) -> None:
        _write_json(self.folder / PINNED_NAME, sorted(self.pinned() - {step}))

    def pinned(self) -> set[int]:
        try:
            return {int(step) for step in json.loads((self.folder / PINNED_NAME).read_text())}
        except (OSError, ValueError, TypeError):
            return set()

    def _prune(self) -> None:
        """Delete damaged checkpoints and good ones beyond the newest keep_last, except pinned ones."""
        pinned = self.pinned()
        kept = 0
        for checkpoint in self.complete():
            if verify(checkpoint):
                shutil.rmtree(checkpoint.folder, ignore_errors=True)  # useless now a newer one verified
                continue
            kept += 1
            if kept > self.keep_last and checkpoint.step not in pinned:
                shutil.rmtree(checkpoint.folder, ignore_errors=True)
        for leftover in self.folder.glob(".partial-step_*"):
            shutil.rmtree(leftover, ignore_errors=True)  # from a crash mid-save

    # Reading.

    def complete(self) -> list[StoredCheckpoint]:
        """Published checkpoints, newest first (not yet verified)."""
        found = []
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                match = _COMPLETE.fullmatch(path.name)
                if match and path.is_dir():
                    found.append(StoredCheckpoint(int(match.group(1)), path))
        return sorted(found, key=lambda checkpoint: checkpoint.step, reverse=True)

    def newest_good(self) -> tuple[StoredCheckpoint | None, list[str]]:
        """The newest checkpoint that verifies, and one sentence per newer one skipped."""
        skipped = [f"{path.name}: unfinished (the process stopped while writing it)"
                   for path in sorted(self.folder.glob(".partial-step_*"))] if self.folder.is_dir() else []
        for checkpoint in self.complete():
            problem = verify(checkpoint)
            if not problem:
                return checkpoint, skipped
            skipped.append(f"{checkpoint.folder.name}: {problem}")
        return None, skipped

    def find(self, step: int) -> StoredCheckpoint:
        """The verified checkpoint of one step; CheckpointError names the steps there are."""
        for checkpoint in self.complete():
            if checkpoint.step == step:
                problem = verify(checkpoint)
                if problem:
                    raise CheckpointError(f"the checkpoint of step {step} is damaged: {problem}")
                return checkpoint
        steps = ", ".join(str(checkpoint.step) for checkpoint in reversed(self.complete())) or "none"
        raise CheckpointError(f"no checkpoint of step {step} in {self.folder} (kept: {steps})")


def verify(checkpoint: StoredCheckpoint) -> str:
    """'' when every file listed in the marker is there with its hash, else what is wrong."""
    try:
        marker = json.loads((checkpoint.folder / MARKER_NAME).read_text())
        files = marker["files"]
    except FileNotFoundError:
        return f"no {MARKER_NAME} (incomplete)"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"unreadable {MARKER_NAME}: {error}"
    if not any(name.endswith(".index") for name in files):
        return "no TensorFlow index file listed"
    for name, expected in files.items():
        path = checkpoint.folder / name
        try:
            if _sha256(path) != expected:
                return f"{name} does not match its hash (damaged or half-copied)"
        except OSError:
            return f"{name} is missing"
    return ""


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _write_json(path: Path, value) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: without this a power cut can undo it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _pause_for_crash_tests() -> None:
    delay = os.environ.get(SAVE_DELAY_ENV)
    if delay:
        import time

        time.sleep(float(delay))
