"""Home page: the current dataset, the current or last run, and where to go next.

It only summarises what is on disk and in the process's training job; the other pages
do the work.
"""

from __future__ import annotations

import streamlit as st

from core.imaging import make_grid
from ui.state import data_folder, format_duration, load_chosen_dataset, prepare_page
from ui.views import STATE_ICONS, current_snapshot, latest_grid_of, plural, readable_runs, show_picture

PREVIEW_FACES = 16


prepare_page()
st.title("DCGAN Studio")
st.caption("Train a generative adversarial network on your own photos and explore what it learned.")

dataset_column, run_column = st.columns(2, gap="large")

with dataset_column:
    st.subheader("Dataset")
    dataset, problem = load_chosen_dataset()
    if dataset is None:
        st.error(problem)
    else:
        resolution_px = st.session_state["resolution_px"]
        st.markdown(
            f"**{plural(dataset.count, 'image')}** from `{data_folder()}`, "
            f"trained at {resolution_px}×{resolution_px} px ({st.session_state['fit_mode']})"
        )
        if dataset.skipped:
            st.warning(f"{plural(len(dataset.skipped), 'file')} skipped; the Data page lists them and why.")
        show_picture(make_grid(dataset.images[:PREVIEW_FACES], columns=8), min_side_px=160)
    st.page_link("pages/1_Data.py", label="Choose images", icon=":material/photo_library:")

with run_column:
    st.subheader("Training")
    snapshot = current_snapshot()
    summaries = readable_runs()
    if snapshot is not None and snapshot.is_active:
        st.markdown(
            f"{STATE_ICONS[snapshot.state]} **{snapshot.state}**: step {snapshot.step} of "
            f"{snapshot.total_steps}, {snapshot.images_per_sec:.0f} images/s, "
            f"ETA {format_duration(snapshot.eta_sec)}"
        )
        st.progress(min(snapshot.progress, 1.0))
        if snapshot.latest_grid is not None:
            show_picture(snapshot.latest_grid, f"step {snapshot.latest_grid_step}", min_side_px=256)
    elif summaries:
        last = summaries[0]
        state = last.status.get("state", "unknown")
        st.markdown(
            f"Last run **{last.run.run_id}**: {STATE_ICONS.get(state, '')} {state} at step "
            f"{last.status.get('step', 0)} of {last.status.get('total_steps', 0)}"
        )
        if last.status.get("reason") and state == "failed":
            st.error(last.status["reason"])
        latest = latest_grid_of(last.run)
        if latest is not None:
            show_picture(latest[1], f"fixed-noise grid at step {latest[0]}", min_side_px=256)
    else:
        st.info("No run yet. The Train page starts one on the images at the left.")
    st.page_link("pages/2_Train.py", label="Train", icon=":material/model_training:")

st.divider()
st.subheader("Next")
link_columns = st.columns(4)
link_columns[0].page_link("pages/1_Data.py", label="Data: pick images", icon=":material/photo_library:")
link_columns[1].page_link("pages/2_Train.py", label="Train and watch", icon=":material/model_training:")
link_columns[2].page_link("pages/3_Latent_space.py", label="Explore latent space", icon=":material/explore:")
link_columns[3].page_link("pages/4_Runs.py", label="Runs and downloads", icon=":material/folder_open:")
