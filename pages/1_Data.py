"""Data page: choose the photo folder and see exactly what the model will train on."""

from __future__ import annotations

import streamlit as st

from core.config import FIT_MODES, supported_resolutions
from core.data import SUPPORTED_EXTENSIONS, DatasetError, load_folder, suggest_resolution
from core.imaging import make_grid
from ui.state import PERSIST, data_folder, load_chosen_dataset
from ui.views import show_picture

PREVIEW_LIMIT = 200  # faces drawn in the preview grid; the count and file list cover the rest
PREVIEW_COLUMNS = 10
FIT_LABELS = {"pad": "Pad with black to square (keeps the whole photo)", "crop": "Crop the centre square"}


def suggest_resolution_for_new_folder() -> None:
    """When the folder changes, pick the resolution that suits its photos."""
    try:
        dataset = load_folder(data_folder(), st.session_state["resolution_px"], st.session_state["fit_mode"])
    except (DatasetError, ValueError):
        return  # the page shows the problem below the input
    st.session_state["resolution_px"] = suggest_resolution(dataset.source_sizes)


st.title("Data")

st.text_input(
    "Image folder",
    key="data_dir",
    on_change=suggest_resolution_for_new_folder,
    persist_state=PERSIST,
    help="A folder of photos, searched with its sub-folders. Relative paths start at the project folder. "
    f"Formats: {', '.join(SUPPORTED_EXTENSIONS)}.",
)
settings = st.columns(2)
settings[0].radio(
    "Make each photo square by", FIT_MODES, key="fit_mode", format_func=FIT_LABELS.get, persist_state=PERSIST
)
settings[1].select_slider(
    "Training resolution (pixels)",
    options=supported_resolutions(),
    key="resolution_px",
    persist_state=PERSIST,
    help="Sizes the generator can reach: 4 to 7 pixels doubled. Cost grows with the square of the size.",
)

with st.spinner("Reading images…"):
    dataset, problem = load_chosen_dataset()
if dataset is None:
    st.error(problem)
    st.stop()

resolution_px = st.session_state["resolution_px"]
short_sides_px = [min(size) for size in dataset.source_sizes]
counts = st.columns(4)
counts[0].metric("Images used", dataset.count)
counts[1].metric("Files skipped", len(dataset.skipped))
counts[2].metric("Training size", f"{resolution_px}×{resolution_px}")
counts[3].metric("Original short side", f"{min(short_sides_px)}–{max(short_sides_px)} px")
suggested_px = suggest_resolution(dataset.source_sizes)
if suggested_px != resolution_px:
    st.caption(f"Suggested for these photos: {suggested_px} px (the median short side, between 32 and 64).")
if dataset.count < st.session_state["batch_size"]:
    st.info(
        f"{dataset.count} images is fewer than the batch size ({st.session_state['batch_size']}): "
        "each batch repeats images. That works, but more photos give more varied faces."
    )

st.subheader("What the model sees")
shown = dataset.images[:PREVIEW_LIMIT]
caption = f"{len(shown)} of {dataset.count} images after {st.session_state['fit_mode']} and resize, in file order"
show_picture(make_grid(shown, columns=PREVIEW_COLUMNS), caption, min_side_px=720)

if dataset.skipped:
    st.subheader("Skipped files")
    st.dataframe(
        [
            {"file": skipped.path.relative_to(dataset.folder).as_posix(), "reason": skipped.reason}
            for skipped in dataset.skipped
        ],
        hide_index=True,
        key="skipped_table",
    )

with st.expander(f"All {dataset.count} files used"):
    st.dataframe(
        [
            {"file": path.relative_to(dataset.folder).as_posix(), "original size": f"{width}×{height}"}
            for path, (width, height) in zip(dataset.paths, dataset.source_sizes)
        ],
        hide_index=True,
    )

st.page_link("pages/2_Train.py", label="Train on these images", icon=":material/model_training:")
