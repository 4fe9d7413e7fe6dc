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

PERSIST = "session"  # widget values outlive page switches
SETTING_FIELDS = tuple(field.name for field in dataclasses.fields(TrainConfig))


@st.cache_resource
def shared_job_manager() -> JobManager:
    """The process's one JobManager, the same object for every tab and rerun."""
    return job_manager()


def runs_dir() -> Path:
    return default_runs_dir()


def ensure_session_defaults() -> None:
    """Fill every setting a page may read with the TrainConfig default, once per session."""
    defaults = TrainConfig().to_dict()
    for name in SETTING_FIELDS:
        st.session_state.setdefault(name, defaults[name])


def config_from_session() -> TrainConfig:
    """The settings the user chose as a TrainConfig; raises ValueError naming a bad field."""
    ensure_session_defaults()
    return TrainConfig(**{name: st.session_state[name] for name in SETTING_FIELDS})


def data_folder() -> Path:
    """The chosen data folder as an absolute path (relative paths start at the project)."""
    ensure_session_defaults()
    folder = Path(str(st.session_state["data_dir"]).strip()).expanduser()
    return folder if folder.is_absolute() else project_root() / folder


def load_chosen_dataset() -> tuple[LoadedDataset | None, str]:
    """The chosen folder at the chosen size and fit, or (None, a message saying what is wrong)."""
    ensure_session_defaults()
    try:
        dataset = load_folder(data_folder(), st.session_state["resolution_px"], st.session_state["fit_mode"])
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
