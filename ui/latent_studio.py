"""What the Latent space page computes and remembers, and its nearest-photo panel.

Cached GANSpace directions per generator version, the run's training photos and the
nearest of them to generated frames, pinned seeds kept in sync with the run folder, and
the background projection task of this browser session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from core.config import TrainConfig
from core.data import DatasetError, LoadedDataset, load_for_config
from core.directions import LatentDirections, find_directions
from core.metrics import NEAR_COPY_THRESHOLD, memorisation, nearest_training_images
from core.projection import ProjectionTask
from core.runs import RunDir, project_root
from ui.views import cached_generator, show_picture

SEEDS_PER_PAGE = 16
PAGE_KEY = "latent_page"
PROJECTION_KEY = "latent_projection"  # (run path, ProjectionTask) of this session


@st.cache_data(max_entries=4, show_spinner="Finding the generator's main directions (once per checkpoint)…")
def cached_directions(run_path: str, modified_ns: int) -> LatentDirections:
    return find_directions(cached_generator(run_path, modified_ns))


def run_photos(config: TrainConfig) -> tuple[LoadedDataset | None, str]:
    """The photos the run trained on, or (None, a sentence saying why they cannot be read)."""
    try:
        return load_for_config(config, project_root()), ""
    except (DatasetError, ValueError) as error:
        return None, f"The run's photos (`{config.data_dir}`) cannot be read now: {error}"


@dataclass(frozen=True)
class NearestPhotos:
    """For each frame, its nearest training photo and how near, by `measure`."""

    indices: np.ndarray
    values: np.ndarray
    measure: str  # "copy score" (1 = as far as photos are from each other) or "pixel distance"


@st.cache_data(max_entries=16, show_spinner="Comparing with the training photos…")
def nearest_photos(dataset_fingerprint: str, frames: np.ndarray, _training: np.ndarray) -> NearestPhotos:
    """The nearest photo of every frame at once, so scrubbing along a path costs nothing more.

    The copy score needs two photos that differ; a one-photo (or all-duplicate) folder
    gets the plain pixel distance instead. The fingerprint keys the cache to the photos.
    """
    if len(_training) >= 2:
        try:
            copies = memorisation(frames, _training)
            return NearestPhotos(copies.nearest_indices, copies.copy_scores, "copy score")
        except ValueError:  # the photos are copies of each other: no typical distance
            pass
    indices, distances = nearest_training_images(frames, _training)
    return NearestPhotos(indices, distances, "pixel distance")


def show_nearest_photo(config: TrainConfig, frames: np.ndarray, frame_index: int) -> None:
    """The training photo nearest to frames[frame_index], with how near, or why it cannot be shown."""
    dataset, problem = run_photos(config)
    if dataset is None:
        st.info(f"{problem} The nearest photo cannot be shown.")
        return

    nearest = nearest_photos(dataset.fingerprint, frames, dataset.images)
    photo_index, value = int(nearest.indices[frame_index]), float(nearest.values[frame_index])
    verdict = ""
    if nearest.measure == "copy score":
        verdict = " (near copy)" if value < NEAR_COPY_THRESHOLD else " (not a copy)"
    name = dataset.included_records[photo_index].relative_path
    show_picture(dataset.images[photo_index], f"nearest photo {name}: {nearest.measure} {value:.2f}{verdict}",
                 min_side_px=256)


def pin_key(seed: int) -> str:
    return f"latent_pin::{seed}"


def sync_pin_toggles(seeds, pinned: list[int]) -> None:
    """Set each seed's pin toggle from the run folder, which another tab may have changed."""
    for seed in seeds:
        st.session_state[pin_key(seed)] = seed in pinned


def on_pin_toggled(run: RunDir, seed: int) -> None:
    if st.session_state[pin_key(seed)]:
        run.pin_seed(seed)
    else:
        run.unpin_seed(seed)


def keep_within(key: str, highest: int) -> None:
    """Lower a kept widget value that a new range no longer allows (fewer frames, a smaller z)."""
    if st.session_state.get(key, 0) > highest:
        st.session_state[key] = highest


def turn_page(pages: int) -> None:
    st.session_state[PAGE_KEY] = max(1, int(st.session_state.get(PAGE_KEY, 1)) + pages)


def projection_of(run: RunDir) -> ProjectionTask | None:
    """This session's projection for this run (a projection for another run has another z size)."""
    stored = st.session_state.get(PROJECTION_KEY)
    return stored[1] if stored is not None and stored[0] == str(run.path) else None


def start_projection(run: RunDir, version: tuple[str, int], target: np.ndarray, steps: int) -> None:
    """Start button callback: one projection per session at a time."""
    current = projection_of(run)
    if current is not None and current.snapshot().is_running:
        return
    task = ProjectionTask(cached_generator(*version), target, int(steps)).start()
    st.session_state[PROJECTION_KEY] = (str(run.path), task)


def stop_projection(run: RunDir) -> None:
    task = projection_of(run)
    if task is not None:
        task.stop()
