"""Session settings and shared resources for every page.

Every training setting lives in ``st.session_state`` under its ``TrainConfig`` field
name, so the Data and Train pages edit the same values and ``config_from_session``
turns them into one validated config. Widgets are created with ``persist_state="session"``
so a value survives a switch to another page and back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from core.config import TrainConfig
from core.data import DatasetError, LoadedDataset, load_folder
from core.jobs import JobManager, job_manager
from core.runs import default_runs_dir, project_root
from ui.runtime import keep_keras_state_between_reruns

PERSIST = "session"  # widget values outlive page switches
LIST_WIDGET_FIELDS = frozenset({"augment"})
SETTING_FIELDS = tuple(field.name for field in dataclasses.fields(TrainConfig))
SETTING_LABELS = {  # how each TrainConfig field is named on screen
    "data_dir": "Image folder",
    "resolution_px": "Resolution (pixels)",
    "fit_mode": "Make each photo square by",
    "background": "Background",
    "exclude": "Files left out",
    "keep_duplicates": "Keep duplicates",
    "batch_size": "Batch size (real images per step)",
    "steps": "Training steps",
    "learning_rate_g": "Learning rate of G",
    "learning_rate_d": "Learning rate of D",
    "beta1": "Adam beta1",
    "latent_dim": "Latent size (length of z)",
    "width": "Network width (channels of the widest-resolution layer)",
    "ema_decay": "Generator averaging (EMA decay, 0 = off)",
    "seed": "Seed",
    "log_every_steps": "Log every … steps",
    "sample_every_steps": "Save a sample grid every … steps",
    "checkpoint_every_steps": "Save a checkpoint every … steps",
    "keep_checkpoints": "Checkpoints kept",
    "grid_size": "Sample grid side (faces)",
    "augment": "Augmentation (DiffAugment)",
    "ada_target": "Adaptive augmentation target",
    "loss": "Loss",
    "r1_gamma": "R1 penalty (gamma)",
    "spectral_norm": "Spectral normalisation in D",
    "minibatch_std": "Minibatch standard deviation in D",
    "label_smoothing": "Label smoothing",
    "d_steps_per_g": "D updates per G update",
    "simultaneous_updates": "D and G from one pass",
    "mode_seeking": "Mode seeking (weight)",
    "coverage_weight": "Photo coverage (weight)",
    "metrics_every_steps": "Score quality every … steps",
}


def setting_text(value) -> str:
    """A setting as a person reads it: lists joined with commas, an empty one as 'none'."""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(item) for item in value) or "none"
    return str(value)


@st.cache_resource
def shared_job_manager() -> JobManager:
    """The process's one JobManager, the same object for every tab and rerun."""
    return job_manager()


def runs_dir() -> Path:
    return default_runs_dir()


def prepare_page() -> None:
    """What every page needs before its first widget; safe to call more than once per run.

    dashboard.py calls it for every page, and each page calls it again, because a page
    opened by its own URL as a session's first page may run without dashboard.py. (Until
    some session has opened /, Streamlit serves a page URL from pages/ on its own.) The
    page settings are set here for that reason too: without them such a page was narrow.
    """
    st.set_page_config(page_title="DCGAN Studio", page_icon=":material/palette:", layout="wide")
    keep_keras_state_between_reruns()
    ensure_session_defaults()


@st.cache_resource
def _started_settings() -> dict:
    """The job the Train page last started ("job") and the page's settings that started it."""
    return {}


def remember_started_settings(job) -> None:
    """Keep the session's settings with the job they started, for sessions opened while it runs."""
    store = _started_settings()
    store.clear()
    store.update(job=job, settings={name: st.session_state[name] for name in SETTING_FIELDS})


def ensure_session_defaults() -> None:
    """Fill every setting a page may read, once per session.

    A session opened while a job started from the Train page runs (a refreshed or second tab)
    gets the settings that started it, so the page shows what is training; any other session
    gets the TrainConfig defaults.
    """
    if all(name in st.session_state for name in SETTING_FIELDS):
        return
    # The fields' own defaults, before TrainConfig resolves them: the width stays "auto" (0), so
    # it follows the resolution the user picks.
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    store, job = _started_settings(), shared_job_manager().current
    if job is not None and store.get("job") is job and job.snapshot().is_active:
        defaults.update(store["settings"])
    for name in SETTING_FIELDS:
        # A multiselect holds a list; TrainConfig turns it back into a tuple.
        default = list(defaults[name]) if name in LIST_WIDGET_FIELDS else defaults[name]
        st.session_state.setdefault(name, default)


def config_from_session() -> TrainConfig:
    """The settings the user chose as a TrainConfig; raises ValueError naming a bad field."""
    ensure_session_defaults()
    return TrainConfig(**{name: st.session_state[name] for name in SETTING_FIELDS})


def data_folder() -> Path:
    """The chosen data folder as an absolute path (relative paths start at the project).

    Raises DatasetError when the box is empty, rather than reading the project folder.
    """
    ensure_session_defaults()
    text = clean_path_text(str(st.session_state["data_dir"]))
    if not text:
        raise DatasetError("Type the path of a folder of photos in the Image folder box, or use GANs_dataset.")
    folder = Path(text).expanduser()
    return folder if folder.is_absolute() else project_root() / folder


def clean_path_text(text: str) -> str:
    """A typed or pasted path without surrounding spaces or quotes (file managers add them)."""
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def load_chosen_dataset(on_progress=None) -> tuple[LoadedDataset | None, str]:
    """The chosen folder with the chosen size, fit, background and selection,
    or (None, a message saying what is wrong)."""
    ensure_session_defaults()
    state = st.session_state
    try:
        dataset = load_folder(
            data_folder(),
            state["resolution_px"],
            state["fit_mode"],
            state["background"],
            exclude=state["exclude"],
            keep_duplicates=state["keep_duplicates"],
            on_progress=on_progress,
        )
    except (DatasetError, ValueError) as error:
        return None, str(error)
    return dataset, ""


def format_duration(seconds: float | None) -> str:
    """'1:02:03', '4:05' or '—' for unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "—"
    seconds = int(round(seconds))
    hours, remainder = divmod(seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
