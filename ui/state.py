"""Shared resources and session defaults for every page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.config import TrainConfig
from core.jobs import JobManager, job_manager
from core.runs import default_runs_dir, project_root

DATA_DIR_KEY = "data_dir"
FIT_MODE_KEY = "fit_mode"


@st.cache_resource
def shared_job_manager() -> JobManager:
    """The process's one JobManager, the same object for every tab and rerun."""
    return job_manager()


def runs_dir() -> Path:
    return default_runs_dir()


def ensure_session_defaults() -> None:
    """The dataset choice a page starts from: GANs_dataset padded, as in the original project."""
    defaults = TrainConfig()
    st.session_state.setdefault(DATA_DIR_KEY, defaults.data_dir)
    st.session_state.setdefault(FIT_MODE_KEY, defaults.fit_mode)


def data_folder() -> Path:
    """The chosen data folder as an absolute path (relative paths start at the project)."""
    ensure_session_defaults()
    folder = Path(st.session_state[DATA_DIR_KEY]).expanduser()
    return folder if folder.is_absolute() else project_root() / folder


def format_duration(seconds: float | None) -> str:
    """'1:02:03', '4:05' or '—' for unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "—"
    seconds = int(round(seconds))
    hours, remainder = divmod(seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
