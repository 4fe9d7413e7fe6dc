"""The training timeline: scrub a run's fixed-noise grids step by step, or download them as a GIF.

Shared by the Train and Runs pages. The grids come from the run folder (samples/), so a
run trained headless or in another process scrubs the same way.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.animation import gif_bytes
from core.imaging import read_rgb
from core.runs import RunDir
from ui.views import show_picture

MAX_GIF_FRAMES = 200  # a long run saves thousands of grids; evenly spaced ones tell the story
TIMELINE_FRAME_MS = 200
TIMELINE_GIF_SIDE_PX = 384


def evenly_spaced(count: int, limit: int) -> list[int]:
    """At most `limit` indices of range(count), spread evenly, always the first and the last."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(position)) for position in np.linspace(0, count - 1, limit)})


def training_gif(run: RunDir) -> bytes:
    """Every saved grid of the run (at most MAX_GIF_FRAMES of them), oldest first, as a GIF."""
    samples = run.list_samples()
    pictures = [read_rgb(samples[index][1]) for index in evenly_spaced(len(samples), MAX_GIF_FRAMES)]
    # A branch run's grids all share the run's grid size; a foreign file of another size is left out.
    frames = np.stack([picture for picture in pictures if picture.shape == pictures[-1].shape])
    return gif_bytes(frames, TIMELINE_FRAME_MS, TIMELINE_GIF_SIDE_PX)


def training_timeline(run: RunDir, key: str) -> None:
    """A slider over the steps that saved a grid, that step's grid, and a GIF download of all."""
    samples = dict(run.list_samples())
    if not samples:
        st.caption("No sample grid saved yet.")
        return

    steps = list(samples)
    step = steps[-1]
    if len(steps) > 1:
        step = st.select_slider("Training step", steps, value=steps[-1], key=f"{key}_step",
                                help="The same fixed noise at every step, so the faces compare across time.")
    show_picture(read_rgb(samples[step]), f"fixed noise · step {step}")
    st.download_button(
        "Training as GIF", data=lambda: training_gif(run), file_name=f"{run.run_id}-training.gif",
        mime="image/gif", key=f"{key}_gif", icon=":material/animation:",
    )
