"""The run directory: the contract between training and everything that reads it.

    runs/<run-id>/
      config.json      {"config": TrainConfig, "dataset": {...}, "versions": {...}}
      metrics.csv      one row per logged step, appended and flushed
      samples/         fixed-noise grids, step_000500.png, ...
      checkpoints/     tf.train.CheckpointManager output
      generator.keras  the exported (EMA) generator
      status.json      running / paused / stopped / finished / failed, with a reason
      pinned_seeds.json  seeds the user pinned on the Latent space page

Every small file is written to a temporary name and renamed, so a reader never sees half
a file. A browser refresh or an app restart finds the same run here.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import re
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.config import TrainConfig

logger = logging.getLogger(__name__)

RUNS_DIR_ENV = "DCGAN_STUDIO_RUNS_DIR"
RUN_STATES = ("running", "paused", "stopped", "finished", "failed")
METRIC_FIELDS = (
    "step", "d_loss", "g_loss", "d_real", "d_fake", "augment_probability", "images_per_sec", "elapsed_sec",
)
_SAMPLE_NAME = re.compile(r"step_(\d+)\.png$")


class RunError(ValueError):
    """A run directory that is missing or cannot be read; the message names it."""


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_runs_dir() -> Path:
    """runs/ beside the code, unless DCGAN_STUDIO_RUNS_DIR points elsewhere."""
    override = os.environ.get(RUNS_DIR_ENV)
    return Path(override).expanduser() if override else project_root() / "runs"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def describe_dataset(dataset) -> dict[str, Any]:
    """The summary config.json records about a core.data.LoadedDataset; manifest.json has every file."""
    not_included = [record for record in dataset.records if not record.included]
    return {
        "folder": str(dataset.folder),
        "image_count": dataset.count,
        "skipped_count": len(dataset.skipped),
        "left_out_count": len(not_included),  # excluded by the user or duplicates
        "fingerprint": dataset.fingerprint,
    }


def _append_csv_rows(path: Path, fields: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """Append rows (header on first write) and flush to disk, so a crash loses no logged row."""
    is_new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        if is_new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_csv(path: Path, fields: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """Rewrite a CSV with these rows only, atomically (a crash leaves the old file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


@dataclass(frozen=True)
class RunDir:
    """Paths and readers/writers of one run. Cheap to build; touches disk only when asked."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # accept str too, as callers pass either

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def generator_path(self) -> Path:
        return self.path / "generator.keras"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def quality_path(self) -> Path:
        return self.path / "quality.csv"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def pinned_seeds_path(self) -> Path:
        return self.path / "pinned_seeds.json"

    @classmethod
    def create(cls, runs_dir: Path, config: TrainConfig, dataset, parent: dict | None = None) -> "RunDir":
        """Make a new, uniquely named run directory with its config.json and manifest.json.

        dataset is the core.data.LoadedDataset the run trains on; parent, for a branch,
        records the run and step it started from.
        """
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base_name = f"{stamp}-{config.resolution_px}px"
        for attempt in range(1000):
            name = base_name if attempt == 0 else f"{base_name}-{attempt}"
            try:
                (runs_dir / name).mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise RunError(f"could not create a new run directory in {runs_dir}")

        run = cls(runs_dir / name)
        run.samples_dir.mkdir()
        run.checkpoints_dir.mkdir()
        metadata = {"config": config.to_dict(), "dataset": describe_dataset(dataset), "versions": library_versions()}
        if parent is not None:
            metadata["parent"] = parent
        atomic_write_text(run.config_path, json.dumps(metadata, indent=2, sort_keys=True))
        atomic_write_text(run.manifest_path, json.dumps(dataset.manifest(), indent=2, ensure_ascii=False))
        return run

    def read_manifest(self) -> dict[str, Any]:
        """manifest.json: every file the run considered, with hashes; empty for older runs."""
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run; raises RunError naming the folder if it is not a readable run."""
        run = cls(Path(path))
        if not run.config_path.is_file():
            raise RunError(f"'{run.path}' is not a run directory (no config.json in it)")
        run.read_config()
        return run

    def read_metadata(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise RunError(f"cannot read {self.config_path}: {error}") from error

    def read_config(self) -> TrainConfig:
        try:
            return TrainConfig.from_dict(self.read_metadata()["config"])
        except (KeyError, TypeError, ValueError) as error:
            raise RunError(f"{self.config_path} does not hold a valid config: {error}") from error

    def update_config(self, config: TrainConfig) -> None:
        """Rewrite the stored settings (e.g. a resume's new step count); the rest is kept."""
        metadata = self.read_metadata()
        metadata["config"] = config.to_dict()
        atomic_write_text(self.config_path, json.dumps(metadata, indent=2, sort_keys=True))

    # Status.

    def write_status(self, state: str, step: int, total_steps: int, reason: str = "") -> None:
        if state not in RUN_STATES:
            raise ValueError(f"state={state!r} must be one of {RUN_STATES}")
        status = {
            "state": state,
            "step": int(step),
            "total_steps": int(total_steps),
            "reason": reason,
            "updated_at": time.time(),
        }
        atomic_write_text(self.status_path, json.dumps(status, indent=2))

    def read_status(self) -> dict[str, Any]:
        """The last written status; a run without one (or a garbled one) reads as unknown."""
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {"state": "unknown", "step": 0, "total_steps": 0, "reason": "", "updated_at": 0.0}

    # Metrics.

    def append_metrics(self, rows: list[dict[str, float]]) -> None:
        """Append rows to metrics.csv (header on first write) and flush to disk."""
        _append_csv_rows(self.metrics_path, METRIC_FIELDS, rows)

    def read_metrics(self) -> dict[str, np.ndarray]:
        """Columns of metrics.csv as float arrays (empty arrays when nothing is logged yet)."""
        columns: dict[str, list[float]] = {field: [] for field in METRIC_FIELDS}
        try:
            with open(self.metrics_path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    try:
                        values = {field: float(row[field]) for field in METRIC_FIELDS}
                    except (KeyError, TypeError, ValueError):
                        continue  # a row cut short by a crash mid-write
                    for field, value in values.items():
                        columns[field].append(value)
        except FileNotFoundError:
            pass
        return {field: np.asarray(values, dtype=np.float64) for field, values in columns.items()}

    def truncate_metrics_after(self, step: int) -> None:
        """Drop rows logged after `step`: on resume they would repeat once training redoes them."""
        if not self.metrics_path.exists():
            return
        columns = self.read_metrics()
        keep = columns["step"] <= step
        rows = [
            {field: columns[field][index] for field in METRIC_FIELDS}
            for index in np.flatnonzero(keep)
        ]
        for row in rows:
            row["step"] = int(row["step"])
        _replace_csv(self.metrics_path, METRIC_FIELDS, rows)

    # Quality measurements (core.quality), at their own interval.

    def append_quality(self, row: dict[str, Any]) -> None:
        from core.quality import QUALITY_FIELDS

        _append_csv_rows(self.quality_path, QUALITY_FIELDS, [row])

    def read_quality(self) -> list:
        """quality.csv as QualityRows, oldest first; rows cut short by a crash are left out."""
        from core.quality import QUALITY_FIELDS, QualityRow

        rows = []
        try:
            with open(self.quality_path, newline="", encoding="utf-8") as handle:
                for raw in csv.DictReader(handle):
                    try:
                        values = {name: raw[name] for name in QUALITY_FIELDS}
                        numbers = {name: float(value) for name, value in values.items() if name not in ("step", "swd_levels")}
                        rows.append(QualityRow(step=int(values["step"]), swd_levels=values["swd_levels"], **numbers))
                    except (KeyError, TypeError, ValueError):
                        continue
        except FileNotFoundError:
            pass
        return rows

    def truncate_quality_after(self, step: int) -> None:
        from core.quality import QUALITY_FIELDS

        if not self.quality_path.exists():
            return
        kept = [row.as_row() for row in self.read_quality() if row.step <= step]
        _replace_csv(self.quality_path, QUALITY_FIELDS, kept)

    # Seeds pinned on the Latent space page: kept with the run, so they survive a restart.

    def read_pinned_seeds(self) -> list[int]:
        """Pinned seeds in the order they were pinned; none for a missing or garbled file."""
        try:
            seeds = json.loads(self.pinned_seeds_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return []
        if not isinstance(seeds, list):
            return []
        return [seed for seed in seeds if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0]

    def pin_seed(self, seed: int) -> None:
        seeds = self.read_pinned_seeds()
        if seed not in seeds:
            self._write_pinned_seeds([*seeds, int(seed)])

    def unpin_seed(self, seed: int) -> None:
        self._write_pinned_seeds([pinned for pinned in self.read_pinned_seeds() if pinned != seed])

    def _write_pinned_seeds(self, seeds: list[int]) -> None:
        atomic_write_text(self.pinned_seeds_path, json.dumps(seeds))

    # Samples.

    def write_sample(self, step: int, grid: np.ndarray) -> Path:
        path = self.samples_dir / f"step_{step:06d}.png"
        temporary = path.with_name(f".{path.name}.tmp.png")
        Image.fromarray(grid).save(temporary)
        os.replace(temporary, path)
        return path

    def list_samples(self) -> list[tuple[int, Path]]:
        """(step, path) of every saved grid, oldest first."""
        found = []
        if self.samples_dir.is_dir():
            for path in self.samples_dir.iterdir():
                match = _SAMPLE_NAME.fullmatch(path.name)
                if match:
                    found.append((int(match.group(1)), path))
        return sorted(found)

    def latest_sample(self) -> tuple[int, Path] | None:
        samples = self.list_samples()
        return samples[-1] if samples else None

    def samples_zip(self) -> bytes:
        """Every saved grid in one zip archive, in memory, for a download button."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for _, path in self.list_samples():
                archive.write(path, arcname=f"{self.run_id}/samples/{path.name}")
        return buffer.getvalue()

    def bundle_zip(self) -> bytes:
        """The whole run for sharing, in memory: settings, manifest with hashes, metrics, grids,
        generator. Checkpoints stay out (they are large and only needed to resume)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in (self.config_path, self.manifest_path, self.metrics_path, self.quality_path,
                         self.status_path, self.pinned_seeds_path, self.generator_path):
                if path.is_file():
                    archive.write(path, arcname=f"{self.run_id}/{path.name}")
            for _, path in self.list_samples():
                archive.write(path, arcname=f"{self.run_id}/samples/{path.name}")
        return buffer.getvalue()

    # The exported generator.

    def load_generator(self):
        """The exported generator as a Keras model, loaded in safe mode (no arbitrary code).

        Raises RunError when the run has not exported one yet or the file does not load.
        """
        import keras  # imported here so listing runs stays light

        if not self.generator_path.is_file():
            raise RunError(f"run '{self.run_id}' has no generator.keras yet (it is written at each checkpoint)")
        try:
            return keras.saving.load_model(self.generator_path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a damaged archive
            raise RunError(f"cannot load {self.generator_path}: {type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list. `error` is set for a folder that is not a readable run."""

    run: RunDir
    config: TrainConfig | None
    status: dict[str, Any]
    error: str = ""


def list_runs(runs_dir: Path | None = None) -> list[RunSummary]:
    """Every run in runs_dir, newest first; broken folders are listed with their error."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    summaries = []
    for path in sorted(runs_dir.iterdir(), reverse=True):
        if not path.is_dir() or path.name.startswith("."):
            continue
        run = RunDir(path)
        try:
            config = run.read_config()
            summaries.append(RunSummary(run, config, run.read_status()))
        except RunError as error:
            summaries.append(RunSummary(run, None, run.read_status(), str(error)))
    return summaries


def branch_run(parent: RunDir, step: int, config: TrainConfig, dataset, runs_dir: Path | None = None) -> RunDir:
    """A new run that starts from one kept checkpoint of parent, with changed settings.

    The networks' shape comes from the parent and cannot change (ValueError names both
    values); learning rates, batch size, length, data and the rest may. The new run gets
    a copy of that checkpoint and the parent's metrics and grids up to that step, and its
    config.json records the parent.
    """
    from core.checkpoints import CheckpointStore  # no TensorFlow: checkpoints are files here
    from core.config import ARCHITECTURE_FIELDS

    parent_config = parent.read_config()
    for name in ARCHITECTURE_FIELDS:
        if getattr(parent_config, name) != getattr(config, name):
            raise ValueError(
                f"run '{parent.run_id}' has {name}={getattr(parent_config, name)}; a branch of it cannot use "
                f"{name}={getattr(config, name)}"
            )
    if config.steps <= step:
        raise ValueError(f"steps={config.steps} must be more than the branch point, step {step}")
    checkpoint = CheckpointStore(parent.checkpoints_dir, parent_config.keep_checkpoints).find(step)

    branch = RunDir.create(
        runs_dir if runs_dir is not None else parent.path.parent,
        config,
        dataset,
        parent={"run": parent.run_id, "path": str(parent.path), "step": step},
    )
    shutil.copytree(checkpoint.folder, branch.checkpoints_dir / checkpoint.folder.name)
    history = parent.read_metrics()
    rows = [
        {field: history[field][index] for field in METRIC_FIELDS}
        for index in np.flatnonzero(history["step"] <= step)
    ]
    for row in rows:
        row["step"] = int(row["step"])
    if rows:
        branch.append_metrics(rows)
    for sample_step, path in parent.list_samples():
        if sample_step <= step:
            shutil.copy2(path, branch.samples_dir / path.name)
    logger.info("branched %s from %s at step %d", branch.run_id, parent.run_id, step)
    return branch
