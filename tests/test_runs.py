"""Tests for core.runs pieces the Latent space page relies on: seeds pinned with a run."""

from __future__ import annotations

from core.runs import RunDir


def test_pinned_seeds_are_kept_in_the_run_folder_in_pinning_order_without_repeats(tmp_path):
    run = RunDir(tmp_path)

    run.pin_seed(7)
    run.pin_seed(3)
    run.pin_seed(7)
    run.unpin_seed(42)  # not pinned: nothing happens

    assert RunDir(tmp_path).read_pinned_seeds() == [7, 3]  # a fresh reader, as after a restart
    run.unpin_seed(7)
    assert run.read_pinned_seeds() == [3]


def test_a_missing_or_garbled_pins_file_reads_as_no_pins(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_pinned_seeds() == []

    run.pinned_seeds_path.write_text("{ not json")
    assert run.read_pinned_seeds() == []

    run.pinned_seeds_path.write_text('[4, "x", -1, true, 9]')
    assert run.read_pinned_seeds() == [4, 9]
