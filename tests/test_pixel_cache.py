"""Tests for core.pixel_cache: squares come back exactly as stored, every option is part of
the key, and a damaged or unwritable cache only ever costs speed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from core.pixel_cache import CACHE_DIR_ENV, PixelCache, default_cache_dir

OPTIONS = {"resolution_px": 16, "fit_mode": "pad", "background": "black"}
METADATA = {"format": "PNG", "mode": "RGB", "size": [40, 30], "preparation": "padded, 40x30 -> 16x16"}


def some_square(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)


def test_a_stored_square_and_its_metadata_come_back_exactly(tmp_path):
    cache = PixelCache(tmp_path / "cache")
    key = PixelCache.key("a" * 64, **OPTIONS)

    cache.put(key, some_square(), METADATA)
    pixels, metadata = cache.get(key)

    np.testing.assert_array_equal(pixels, some_square())
    assert pixels.dtype == np.uint8
    assert metadata == METADATA


def test_an_entry_never_stored_is_a_miss(tmp_path):
    assert PixelCache(tmp_path / "cache").get(PixelCache.key("b" * 64, **OPTIONS)) is None


def test_the_key_changes_with_the_content_and_with_every_option_but_not_their_order():
    key = PixelCache.key("a" * 64, **OPTIONS)

    assert key == PixelCache.key("a" * 64, **dict(reversed(OPTIONS.items())))
    assert key != PixelCache.key("c" * 64, **OPTIONS)
    for name, other_value in (("resolution_px", 32), ("fit_mode", "crop"), ("background", "white")):
        assert key != PixelCache.key("a" * 64, **(OPTIONS | {name: other_value})), name


@pytest.mark.parametrize(
    "damage",
    [
        lambda content: b"",
        lambda content: b"not a numpy archive at all" * 10,
        lambda content: content[: len(content) // 2],  # a truncated zip
        lambda content: content[:100] + b"\xff" * 64 + content[164:],  # overwritten in the middle
    ],
    ids=["empty", "garbage", "truncated", "overwritten"],
)
def test_a_damaged_entry_is_a_miss_with_a_warning_not_an_error(tmp_path, caplog, damage):
    cache = PixelCache(tmp_path / "cache")
    key = PixelCache.key("a" * 64, **OPTIONS)
    cache.put(key, some_square(), METADATA)
    (entry,) = (tmp_path / "cache").rglob("*.npz")
    entry.write_bytes(damage(entry.read_bytes()))

    with caplog.at_level(logging.WARNING, logger="core.pixel_cache"):
        assert cache.get(key) is None

    assert "ignoring damaged cache entry" in caplog.text


def test_a_cache_that_cannot_be_written_only_warns(tmp_path, caplog):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    cache = PixelCache(blocked)
    key = PixelCache.key("a" * 64, **OPTIONS)

    with caplog.at_level(logging.WARNING, logger="core.pixel_cache"):
        cache.put(key, some_square(), METADATA)

    assert "cannot write the pixel cache" in caplog.text
    assert cache.get(key) is None
    assert list(tmp_path.iterdir()) == [blocked]  # no temporary file left behind


def test_the_cache_folder_follows_the_environment_and_defaults_to_the_project(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    assert PixelCache().folder == tmp_path / "elsewhere"

    monkeypatch.delenv(CACHE_DIR_ENV)
    assert default_cache_dir() == Path(__file__).resolve().parents[1] / ".cache" / "pixels"


def test_tests_never_write_the_cache_into_the_project(tmp_path):
    assert default_cache_dir() == tmp_path / "pixel_cache"  # set by the autouse fixture in conftest
