"""Shared fixtures: an isolated runs directory, pixel cache and datasets folder per test,
a generated photo folder, a tiny trained run.

Every image here is drawn by the tests; no personal data is involved.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

from core.config import TrainConfig
from core.pixel_cache import CACHE_DIR_ENV
from core.runs import RUNS_DIR_ENV, RunDir
from core.uploads import DATASETS_DIR_ENV

TINY_SETTINGS = {
    "resolution_px": 16,
    "width": 8,
    "latent_dim": 8,
    "batch_size": 4,
    "log_every_steps": 1,
    "grid_size": 2,
    "metrics_every_steps": 0,  # quality metrics have their own tests; here they would only cost time
}  # a model that trains a step in milliseconds; the CLI's TINY_RUN_ARGS below match it


def tiny_config(data_dir, **changes) -> TrainConfig:
    """A TrainConfig of the tiny model on data_dir; keywords override any field."""
    return TrainConfig(**({"data_dir": str(data_dir), **TINY_SETTINGS} | changes))


TINY_RUN_ARGS = [
    "--resolution", "16", "--width", "8", "--latent-dim", "8", "--batch-size", "4",
    "--steps", "4", "--log-every", "1", "--sample-every", "2", "--checkpoint-every", "2", "--metrics-every", "0",
]  # fmt: skip


def run_cli(argv: list[str], capsys) -> tuple[int | str | None, str, str]:
    """(exit code, stdout, stderr) of one `python -m core.train` call, in this process; a normal
    return counts as its exit code."""
    from core.train import main

    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_blob_faces(folder: Path, count: int, size_px: int = 24, seed: int = 0) -> list[Path]:
    """Draw `count` face-like pictures (a bright oval on a dark ground, two dark eyes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:size_px, 0:size_px] / size_px
    paths = []
    for index in range(count):
        centre = 0.5 + rng.uniform(-0.08, 0.08, size=2)
        oval = ((rows - centre[0]) / 0.38) ** 2 + ((columns - centre[1]) / 0.3) ** 2 < 1
        picture = np.zeros((size_px, size_px, 3), dtype=np.uint8)
        picture[oval] = rng.integers(150, 255, size=3)
        for eye_column in (centre[1] - 0.12, centre[1] + 0.12):
            eye = (rows - centre[0] + 0.08) ** 2 + (columns - eye_column) ** 2 < 0.004
            picture[eye] = 20
        path = folder / f"face_{index:03d}.png"
        Image.fromarray(picture).save(path)
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def isolated_runs_dir(tmp_path, monkeypatch) -> Path:
    """Each test writes runs under its own temporary folder, never the project's runs/."""
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv(RUNS_DIR_ENV, str(runs_dir))
    return runs_dir


@pytest.fixture(autouse=True)
def isolated_caches_and_datasets(tmp_path, monkeypatch) -> None:
    """The pixel cache and uploaded datasets go under the test's folder, never the project's."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "pixel_cache"))
    monkeypatch.setenv(DATASETS_DIR_ENV, str(tmp_path / "datasets"))


@pytest.fixture
def face_folder(tmp_path) -> Path:
    folder = tmp_path / "faces"
    write_blob_faces(folder, 12)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> RunDir:
    """A finished 4-step run at 16 px trained through the CLI, shared read-only by many tests."""
    from core.train import main

    base = tmp_path_factory.mktemp("tiny")
    write_blob_faces(base / "faces", 12)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Session fixtures start before the autouse ones, so this run isolates its own cache.
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv(CACHE_DIR_ENV, str(base / "pixel_cache"))
            arguments = ["--data", str(base / "faces"), "--runs-dir", str(base / "runs"), *TINY_RUN_ARGS]
            assert main(arguments) == 0
    finally:
        for number, handler in handlers.items():  # main() installs its own Ctrl+C handler
            signal.signal(number, handler)
    (run_path,) = (base / "runs").iterdir()
    return RunDir.open(run_path)


@pytest.fixture
def runs_dir_with_tiny_run(isolated_runs_dir, tiny_run) -> Path:
    """The isolated runs directory holding a copy of the tiny run, for pages that list runs."""
    isolated_runs_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny_run.path, isolated_runs_dir / tiny_run.run_id)
    return isolated_runs_dir
