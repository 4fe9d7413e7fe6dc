"""Tests for core.checkpoints: published only when complete, verified on read, pruned safely."""

from __future__ import annotations

import json

import pytest

import core.checkpoints
from core.checkpoints import CheckpointError, CheckpointStore, verify


def fake_write(prefix: str, payload: bytes = b"weights") -> None:
    """Stands in for tf.train.Checkpoint.write: an index file and a data file."""
    with open(f"{prefix}.index", "wb") as index:
        index.write(b"index")
    with open(f"{prefix}.data-00000-of-00001", "wb") as data:
        data.write(payload)


@pytest.fixture
def store(tmp_path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints", keep_last=2)


def test_a_saved_checkpoint_is_published_with_a_marker_listing_each_files_hash(store):
    saved = store.save(10, fake_write)

    assert saved.folder.name == "step_000010"
    marker = json.loads((saved.folder / "complete.json").read_text())
    assert marker["step"] == 10
    assert set(marker["files"]) == {"ckpt.index", "ckpt.data-00000-of-00001"}
    assert verify(saved) == ""
    assert store.newest_good() == (saved, [])


def test_resume_skips_an_unfinished_and_a_damaged_checkpoint_and_names_both(store):
    good = store.save(10, fake_write)
    damaged = store.save(20, fake_write)
    (damaged.folder / "ckpt.data-00000-of-00001").write_bytes(b"half copied")
    unfinished = store.folder / ".partial-step_000030"
    unfinished.mkdir()

    newest, skipped = store.newest_good()

    assert newest == good
    assert skipped == [
        ".partial-step_000030: unfinished (the process stopped while writing it)",
        "step_000020: ckpt.data-00000-of-00001 does not match its hash (damaged or half-copied)",
    ]


def test_a_checkpoint_without_its_marker_counts_as_incomplete(store):
    saved = store.save(10, fake_write)
    (saved.folder / "complete.json").unlink()

    assert verify(saved) == "no complete.json (incomplete)"
    assert store.newest_good() == (None, ["step_000010: no complete.json (incomplete)"])


def test_pruning_keeps_the_newest_k_and_every_pinned_checkpoint(store):
    store.save(10, fake_write)
    store.pin(10)
    for step in (20, 30, 40, 50):
        store.save(step, fake_write)

    assert [checkpoint.step for checkpoint in store.complete()] == [50, 40, 10]


def test_a_failed_write_raises_a_checkpoint_error_and_leaves_the_older_ones_intact(store):
    good = store.save(10, fake_write)

    def disk_full(prefix: str) -> None:
        fake_write(prefix)
        raise OSError(28, "No space left on device")

    with pytest.raises(CheckpointError, match="step 20.*No space left on device"):
        store.save(20, disk_full)

    assert store.newest_good() == (good, [])
    assert not list(store.folder.glob(".partial-*"))


def test_older_checkpoints_are_pruned_only_after_the_new_one_verifies(store, monkeypatch):
    store.save(10, fake_write)
    store.save(20, fake_write)
    monkeypatch.setattr(core.checkpoints, "verify", lambda checkpoint: "simulated corruption")

    with pytest.raises(CheckpointError, match="did not verify"):
        store.save(30, fake_write)

    monkeypatch.undo()
    assert {checkpoint.step for checkpoint in store.complete()} >= {10, 20}


def test_find_names_the_kept_steps_when_the_asked_one_is_gone(store):
    store.save(10, fake_write)

    with pytest.raises(CheckpointError, match=r"no checkpoint of step 99 .*kept: 10"):
        store.find(99)
    assert store.find(10).step == 10
