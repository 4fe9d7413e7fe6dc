"""Data page: choose or upload the photos and see exactly what the model will train on."""

from __future__ import annotations

import streamlit as st

from core.config import BACKGROUNDS, FIT_MODES, supported_resolutions
from core.data import EXCLUDED_BY_USER, SUPPORTED_EXTENSIONS, relative_name, suggest_resolution
from core.decode import MAX_SOURCE_MEGAPIXELS
from core.duplicates import NEAR_DUPLICATE_CORRELATION
from core.uploads import UploadError, save_upload, upload_limits_text
from ui.state import PERSIST, load_chosen_dataset, prepare_page
from ui.views import plural, show_picture

FACES_PER_PAGE = 40
GRID_COLUMNS = 8
FIT_LABELS = {
    "pad": "Pad to square (keeps the whole photo)",
    "crop": "Crop the centre square",
    "face": "Crop around the face (centre crop where none is found)",
}


def suggest_resolution_for_new_folder() -> None:
    """When the folder changes, start with no exclusions and the resolution that suits it."""
    st.session_state["exclude"] = ()
    st.session_state["preview_page"] = 1
    dataset, _ = load_chosen_dataset()
    if dataset is None:
        return
    suggested_px = suggest_resolution(dataset.source_sizes)
    if suggested_px != st.session_state["resolution_px"]:
        # Said on the page, so that the slider moving by itself is not a surprise.
        st.session_state["resolution_note"] = (
            f"Training resolution set to {suggested_px} px for this folder (was {st.session_state['resolution_px']} "
            "px): the median short side of its photos, between 32 and 64. Change it with the slider."
        )
    st.session_state["resolution_px"] = suggested_px


def short_name(relative_path: str, max_characters: int = 18) -> str:
    """The file name, shortened in the middle so the end (often a number) stays visible."""
    name = relative_path.rsplit("/", 1)[-1]
    if len(name) <= max_characters:
        return name
    keep = max_characters - 1
    return f"{name[: keep - keep // 2]}…{name[-(keep // 2):]}"


def set_included(relative_path: str, widget_key: str) -> None:
    excluded = set(st.session_state["exclude"])
    if st.session_state[widget_key]:
        excluded.discard(relative_path)
    else:
        excluded.add(relative_path)
    st.session_state["exclude"] = tuple(sorted(excluded))


def include_everything() -> None:
    st.session_state["exclude"] = ()
    for key in [key for key in st.session_state if str(key).startswith("include::")]:
        del st.session_state[key]  # the checkboxes redraw from the empty exclusion list


def save_uploaded_files() -> None:
    uploaded = st.session_state.get("uploader") or []
    try:
        result = save_upload((file.name, file.getvalue()) for file in uploaded)
    except UploadError as error:
        st.session_state["upload_message"] = ("error", str(error))
        return
    st.session_state["data_dir"] = str(result.folder)
    suggest_resolution_for_new_folder()
    message = f"Saved {plural(len(result.saved), 'file')} to `{result.folder}`; it is now the chosen folder."
    if result.rejected:
        message += " Not saved: " + "; ".join(f"{name} ({reason})" for name, reason in result.rejected[:10])
    st.session_state["upload_message"] = ("success" if not result.rejected else "warning", message)


prepare_page()
st.title("Data")

st.text_input(
    "Image folder",
    key="data_dir",
    on_change=suggest_resolution_for_new_folder,
    persist_state=PERSIST,
    help="A folder of photos, searched with its sub-folders. Relative paths start at the project folder. "
    "Files are recognised by their content; any format PIL reads works.",
)
with st.expander("Upload photos or a zip archive instead"):
    st.caption(upload_limits_text() + " They are saved as a new folder under `datasets/`; your files are not changed.")
    st.file_uploader(
        "Photos or zip archives",
        type=[extension.lstrip(".") for extension in SUPPORTED_EXTENSIONS] + ["zip"],
        accept_multiple_files=True,
        key="uploader",
    )
    st.button("Save as a new dataset", key="save_upload", on_click=save_uploaded_files,
              disabled=not st.session_state.get("uploader"))
kind, message = st.session_state.pop("upload_message", ("", ""))
if message:
    getattr(st, kind)(message)

settings = st.columns([3, 2, 3, 2], gap="medium")
settings[0].radio("Make each photo square by", FIT_MODES, key="fit_mode", format_func=FIT_LABELS.get,
                  persist_state=PERSIST)
settings[1].selectbox("Background", tuple(BACKGROUNDS), key="background", persist_state=PERSIST,
                      help="Colour of the padding bars and of transparent areas of PNG, GIF and WebP files.")
settings[2].select_slider(
    "Training resolution (pixels)",
    options=supported_resolutions(),
    key="resolution_px",
    persist_state=PERSIST,
    help="Sizes the generator can reach: 4 to 7 pixels doubled. Cost grows with the square of the size.",
)
settings[3].toggle("Keep duplicates", key="keep_duplicates", persist_state=PERSIST,
                   help="Off: a photo that repeats an earlier one (same bytes, or a re-saved or resized copy "
                   f"whose thumbnail correlates at {NEAR_DUPLICATE_CORRELATION} or more) is trained on once.")

if note := st.session_state.pop("resolution_note", None):
    st.info(note, icon=":material/photo_size_select_large:")

progress = st.empty()


def show_progress(done: int, total: int) -> None:
    if total >= 20 and done % 10 == 0:
        progress.progress(done / total, text=f"Reading images: {done} of {total}")


dataset, problem = load_chosen_dataset(on_progress=show_progress)
progress.empty()
if dataset is None:
    st.error(problem)
    if st.session_state["exclude"]:
        st.button("Include every image again", key="include_all_after_error", on_click=include_everything)
    st.stop()

resolution_px = st.session_state["resolution_px"]
left_out = [record for record in dataset.records if not record.included]
short_sides_px = [min(size) for size in dataset.source_sizes]
counts = st.columns(5)
counts[0].metric("Images used", dataset.count)
counts[1].metric("Files skipped", len(dataset.skipped))
counts[2].metric("Left out", len(left_out), help="Excluded by you, or duplicates of another photo.")
counts[3].metric("Training size", f"{resolution_px}×{resolution_px}")
counts[4].metric("Original short side", f"{min(short_sides_px)}–{max(short_sides_px)} px")
suggested_px = suggest_resolution(dataset.source_sizes)
if suggested_px != resolution_px:
    st.caption(f"Suggested for these photos: {suggested_px} px (the median short side, between 32 and 64).")
if dataset.count < st.session_state["batch_size"]:
    st.info(
        f"{plural(dataset.count, 'image')} is fewer than the batch size ({st.session_state['batch_size']}): "
        "each batch repeats images. That works, but more photos give more varied faces."
    )
if st.session_state["fit_mode"] == "face":
    missed = sum("no face found" in record.preparation for record in dataset.records)
    if missed:
        st.caption(f"No face found in {missed} photo(s); they are centre-cropped instead.")

st.subheader("What the model sees")
st.caption("Untick a photo to leave it out of training. Pages hold "
           f"{FACES_PER_PAGE} photos; the order is the files' order.")
page_count = max(1, -(-len(dataset.records) // FACES_PER_PAGE))
top = st.columns([2, 2, 6], vertical_alignment="bottom")
page = top[0].number_input("Page", 1, page_count, key="preview_page", persist_state=PERSIST) if page_count > 1 else 1
if left_out:
    top[1].button("Include every image", key="include_all", on_click=include_everything)
first = (int(page) - 1) * FACES_PER_PAGE
shown = list(enumerate(dataset.records))[first : first + FACES_PER_PAGE]
for row_start in range(0, len(shown), GRID_COLUMNS):
    columns = st.columns(GRID_COLUMNS)
    for column, (index, record) in zip(columns, shown[row_start : row_start + GRID_COLUMNS]):
        with column:
            show_picture(dataset.all_images[index], short_name(record.relative_path), min_side_px=96)
            widget_key = f"include::{record.relative_path}"
            st.checkbox(
                "use",
                value=record.note != EXCLUDED_BY_USER,
                key=widget_key,
                on_change=set_included,
                args=(record.relative_path, widget_key),
                help=f"{record.source_format} {record.source_mode} {record.source_size[0]}×{record.source_size[1]}, "
                f"{record.preparation}" + (f"; {record.note}" if record.note else ""),
            )
            if record.note:
                st.caption(record.note)

if dataset.skipped:
    st.subheader("Skipped files")
    st.dataframe(
        [
            {"file": relative_name(dataset.folder, skipped.path), "reason": skipped.reason}
            for skipped in dataset.skipped
        ],
        hide_index=True,
        key="skipped_table",
    )
    st.caption(f"Photos over {MAX_SOURCE_MEGAPIXELS} megapixels are skipped to keep memory bounded.")

with st.expander(f"Manifest: all {len(dataset.records)} usable files"):
    st.dataframe([record.manifest_row() for record in dataset.records], hide_index=True, key="manifest_table")

st.page_link("pages/2_Train.py", label="Train on these images", icon=":material/model_training:")
