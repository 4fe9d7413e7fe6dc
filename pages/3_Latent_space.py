"""Latent space page: browse and pin seeds, walk between faces, follow the generator's main
directions, sweep one component of z, and find a photo's z.

A seed always gives the same z (``core.latent.seed_to_z``) and the generator runs in
inference mode on fixed-size batches, so a seed's face is identical on every page of seeds,
in exports and after a restart (the training grid's eager G may round a pixel one level in
255 the other way). The maths is in
``core.latent``, ``core.directions`` and ``core.projection``; caches and session state in
``ui.latent_studio``.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.animation import MP4_MISSING_MESSAGE, gif_bytes, mp4_available, mp4_bytes
from core.data import load_image_bytes
from core.decode import UnusableImage
from core.imaging import make_grid
from core.latent import (
    INTERPOLATION_METHODS,
    RESAMPLE_LIMIT_SIGMAS,
    TRUNCATION_METHODS,
    interpolate,
    mean_latent,
    seeds_to_truncated_z,
    seeds_to_z,
    sweep_dimension,
    truncate,
    walk,
)
from core.runs import RunError
from ui.latent_studio import (
    PAGE_KEY,
    SEEDS_PER_PAGE,
    cached_directions,
    keep_within,
    on_pin_toggled,
    pin_key,
    projection_of,
    run_photos,
    show_nearest_photo,
    start_projection,
    stop_projection,
    sync_pin_toggles,
    turn_page,
)
from ui.state import PERSIST, prepare_page
from ui.views import (
    cached_generator,
    cached_inference,
    generated_faces,
    generator_version,
    pick_run,
    show_picture,
)

GRID_COLUMNS = 4
MAX_SEED = 2**31 - 1
FACE_SIDE_PX = 128
DIRECTION_SLIDERS = 5
DIRECTION_RANGE_STDS = 3.0
WALK_FRAMES = 13
SWEEP_VALUES = np.linspace(-3.0, 3.0, 7)
PROJECTION_REFRESH_SEC = 0.5
TRUNCATION_HELP = {
    "shrink": "shrink: z × ψ, every face pulled towards the average face.",
    "resample": f"resample: components of z beyond ψ × {RESAMPLE_LIMIT_SIGMAS:g} standard deviations are "
    "drawn again (from the seed) until they fall inside; the rest of z is kept.",
}
ENDPOINT_KINDS = {"seed": "A seed", "pinned": "A pinned face", "photo": "The found photo"}


prepare_page()
st.title("Latent space")

summary = pick_run("Run", key="latent_run", require_generator=True)
if summary is None:
    st.info("No run has exported a generator yet. Train one; it is saved at every checkpoint.")
    st.page_link("pages/2_Train.py", label="Train", icon=":material/model_training:")
    st.stop()

run, config = summary.run, summary.config
try:
    version = generator_version(run)
    cached_generator(*version)
except RunError as error:
    st.error(str(error))
    st.stop()
st.caption(
    f"{config.resolution_px} px, z of length {config.latent_dim}, generator as of the last checkpoint "
    f"(step {summary.status.get('step', 0)} of {summary.status.get('total_steps', 0)}); a run still training "
    "is reloaded at each new checkpoint."
)


def draw(z: np.ndarray) -> np.ndarray:
    return generated_faces(*version, np.asarray(z, dtype=np.float32))


truncation = st.columns([2, 2, 4], vertical_alignment="bottom")
psi = truncation[0].slider("Truncation ψ", 0.1, 1.0, 1.0, step=0.05, key="latent_psi", persist_state=PERSIST,
                           help="1 = untruncated. Lower trades variety for more typical, cleaner faces.")
truncation_method = truncation[1].selectbox("Truncation method", TRUNCATION_METHODS, key="latent_truncation",
                                            persist_state=PERSIST, help=" ".join(TRUNCATION_HELP.values()))
truncation[2].caption(("Untruncated. " if psi == 1.0 else "") + TRUNCATION_HELP[truncation_method]
                      + " Applies to every face made from a seed on this page.")


def seed_z(seeds) -> np.ndarray:
    return seeds_to_truncated_z(seeds, config.latent_dim, psi, truncation_method)


# Seeds, a page at a time, each with a pin toggle.
st.subheader("Seeds")
page_number = int(st.session_state.get(PAGE_KEY, 1))
paging = st.columns([1, 2, 1, 4], vertical_alignment="bottom")
paging[0].button("Previous", key="latent_previous", on_click=turn_page, args=(-1,), disabled=page_number <= 1,
                 icon=":material/chevron_left:")
page_number = int(paging[1].number_input("Page of seeds", 1, MAX_SEED // SEEDS_PER_PAGE, key=PAGE_KEY,
                                         persist_state=PERSIST))
paging[2].button("Next", key="latent_next", on_click=turn_page, args=(1,), icon=":material/chevron_right:")
seeds = list(range((page_number - 1) * SEEDS_PER_PAGE, page_number * SEEDS_PER_PAGE))
paging[3].caption(f"Seeds {seeds[0]}–{seeds[-1]}. Pinned seeds are kept with the run.")
pinned = run.read_pinned_seeds()
sync_pin_toggles(seeds, pinned)
columns = st.columns(GRID_COLUMNS)
for position, (seed, face) in enumerate(zip(seeds, draw(seed_z(seeds)))):
    with columns[position % GRID_COLUMNS]:
        show_picture(face, f"seed {seed}", min_side_px=FACE_SIDE_PX)
        st.toggle("Pin", key=pin_key(seed), on_change=on_pin_toggled, args=(run, seed))

if pinned:
    st.markdown("**Pinned**")
    strip = st.columns(min(len(pinned) + 1, 8))
    for position, (seed, face) in enumerate(zip(pinned, draw(seed_z(pinned)))):
        with strip[position % len(strip)]:
            show_picture(face, f"pinned seed {seed}", min_side_px=FACE_SIDE_PX)
            st.button("Unpin", key=f"latent_unpin::{seed}", on_click=run.unpin_seed, args=(seed,))
    if len(pinned) >= 2:
        mean_z = mean_latent(seeds_to_z(pinned, config.latent_dim))
        mean_z = truncate(mean_z, psi, truncation_method, seed=min(pinned))
        with strip[len(pinned) % len(strip)]:
            show_picture(draw(mean_z[np.newaxis])[0], f"mean of {len(pinned)} pinned",
                         min_side_px=FACE_SIDE_PX)
        st.caption("The mean face averages the pinned seeds' z and moves it back to the typical length of z.")

projection = projection_of(run)
found = projection.snapshot().result if projection is not None else None


def endpoint(label: str, prefix: str, default_seed: int) -> tuple[np.ndarray, str]:
    """One end of the walk: a seed, a pinned face or the found photo, as (z, words)."""
    available = {"seed": True, "pinned": bool(pinned), "photo": found is not None}
    kinds = [kind for kind in ENDPOINT_KINDS if available[kind]]
    kind = st.selectbox(label, kinds, key=f"{prefix}_kind", format_func=ENDPOINT_KINDS.get,
                        persist_state=PERSIST)
    if kind == "photo":
        return found.z, "the found photo"
    if kind == "pinned":
        seed = st.selectbox("Pinned seed", pinned, key=f"{prefix}_pin")
    else:
        seed = st.number_input("Seed", 0, MAX_SEED, default_seed, key=f"{prefix}_seed", persist_state=PERSIST)
    return seed_z([int(seed)])[0], f"seed {seed}"


st.subheader("Interpolation")
walk_controls = st.columns(4)
with walk_controls[0]:
    start_z, start_words = endpoint("From", "latent_from", 0)
with walk_controls[1]:
    end_z, end_words = endpoint("To", "latent_to", 1)
path_method = walk_controls[2].radio("Path", INTERPOLATION_METHODS, key="latent_method", horizontal=True,
                                     persist_state=PERSIST,
                                     help="slerp follows the sphere where Gaussian z concentrate; lerp is "
                                     "a straight line, whose middle faces are blander.")
frame_count = walk_controls[3].slider("Frames", 2, 24, 8, key="latent_frames", persist_state=PERSIST)
frames = draw(interpolate(start_z, end_z, frame_count, path_method))
keep_within("latent_frame", frame_count - 1)
frame_index = st.slider("Frame", 0, frame_count - 1, 0, key="latent_frame", persist_state=PERSIST)
show_nearest = st.toggle("Show the nearest training photo", key="latent_nearest", persist_state=PERSIST)
play = st.toggle("Play", key="latent_play", persist_state=PERSIST,
                 help="Shows the walk as a looping animation.")

frame_column, nearest_column, strip_column = st.columns([1, 1, 2], gap="large")
with frame_column:
    fraction = frame_index / (frame_count - 1)
    show_picture(frames[frame_index], f"frame {frame_index}: {fraction:.2f} of the way from {start_words} to "
                 f"{end_words}", min_side_px=256)
with nearest_column:
    if show_nearest:
        show_nearest_photo(config, frames, frame_index)
with strip_column:
    if play:
        st.image(gif_bytes(frames), caption=f"{frame_count} frames, {path_method}, looping")
    else:
        show_picture(make_grid(frames, frame_count), f"{frame_count} frames, {path_method}", min_side_px=128)
downloads = st.columns([1, 1, 3], vertical_alignment="center")
downloads[0].download_button("Walk as GIF", data=lambda: gif_bytes(frames), mime="image/gif",
                             file_name=f"{run.run_id}-walk.gif", key="latent_download_gif",
                             icon=":material/gif_box:")
downloads[1].download_button("Walk as MP4", data=lambda: mp4_bytes(frames) if mp4_available() else b"",
                             file_name=f"{run.run_id}-walk.mp4", mime="video/mp4", key="latent_download_mp4",
                             disabled=not mp4_available(), icon=":material/movie:")
if not mp4_available():
    downloads[2].caption(MP4_MISSING_MESSAGE)

st.subheader("Directions")
directions = cached_directions(*version)
shown = min(DIRECTION_SLIDERS, len(directions.stds))
st.caption(
    f"GANSpace (Härkönen et al. 2020): the main ways the generator's first layer varies, found from "
    f"{len(directions.stds)} principal components; the {shown} below explain "
    f"{directions.explained_variance_ratios[:shown].sum():.0%} of its variance. "
    "Sliders count standard deviations."
)
direction_controls, direction_face = st.columns([2, 1], gap="large")
with direction_controls:
    base_seed = int(st.number_input("Base seed (directions and sweeps)", 0, MAX_SEED, 0,
                                    key="latent_base_seed", persist_state=PERSIST))
    ratios = directions.explained_variance_ratios
    amounts = [
        st.slider(f"Component {component + 1} ({ratios[component]:.0%} of the variance)",
                  -DIRECTION_RANGE_STDS, DIRECTION_RANGE_STDS, 0.0, step=0.25,
                  key=f"latent_direction_{component}", persist_state=PERSIST)
        for component in range(shown)
    ]
base_z = seed_z([base_seed])[0]
with direction_face:
    moved = base_z + directions.offset(amounts)
    moves = [f"{amount:+g} σ on {component + 1}" for component, amount in enumerate(amounts) if amount]
    show_picture(draw(moved[np.newaxis])[0], ", ".join([f"base seed {base_seed}", *moves]), min_side_px=256)
walk_export = st.columns([2, 2, 2], vertical_alignment="bottom")
walk_component = walk_export[0].selectbox("Component to walk", range(shown), key="latent_walk_component",
                                          format_func=lambda component: f"Component {component + 1}")
walk_steps = np.linspace(-DIRECTION_RANGE_STDS, DIRECTION_RANGE_STDS, WALK_FRAMES)
infer = cached_inference(*version)
walk_export[1].download_button(
    "Direction walk as GIF", key="latent_download_walk", mime="image/gif", icon=":material/gif_box:",
    file_name=f"{run.run_id}-seed{base_seed}-component{walk_component + 1}.gif",
    # Called on click outside this script run, so it uses the compiled G, not Streamlit's caches.
    data=lambda: gif_bytes(infer(walk(base_z, directions.step(walk_component), walk_steps))),
)

st.subheader("Sweep one component of z")
keep_within("latent_sweep_dimension", config.latent_dim - 1)  # another run may have a shorter z
sweep_dimension_index = int(st.number_input("Component of z", 0, config.latent_dim - 1, 0,
                                            key="latent_sweep_dimension", persist_state=PERSIST))
sweep = draw(sweep_dimension(base_z, sweep_dimension_index, SWEEP_VALUES))
sweep_words = f"z[{sweep_dimension_index}] from {SWEEP_VALUES[0]:g} to {SWEEP_VALUES[-1]:g}"
show_picture(make_grid(sweep, len(SWEEP_VALUES)), f"base seed {base_seed}, {sweep_words}", min_side_px=128)

st.subheader("Find a photo in latent space")
st.caption("Starts from the closest of a few seeds, then adjusts z until the generator draws the photo as "
           "closely as it can. The result can be an end of the interpolation above.")
source_column, steps_column = st.columns([3, 1])
source = source_column.radio("Photo", ["A training photo", "An upload"], key="latent_projection_source",
                             horizontal=True, persist_state=PERSIST)
steps = steps_column.number_input("Steps", 10, 5000, 300, step=50, key="latent_projection_steps",
                                  persist_state=PERSIST)
target = None
if source == "A training photo":
    dataset, problem = run_photos(config)
    if dataset is None:
        st.info(problem)
    else:
        names = [record.relative_path for record in dataset.included_records]
        photo_index = st.selectbox("Training photo", range(len(names)), key="latent_projection_photo",
                                   format_func=names.__getitem__)
        target = dataset.images[photo_index]
else:
    upload = st.file_uploader("Photo to find", key="latent_projection_upload")
    if upload is not None:
        try:
            target = load_image_bytes(upload.getvalue(), config.resolution_px, config.fit_mode,
                                      config.background)
        except UnusableImage as error:
            st.error(f"{upload.name}: {error}")

running = projection is not None and projection.snapshot().is_running
st.button("Find it", key="latent_projection_start", type="primary", icon=":material/search:",
          on_click=start_projection, args=(run, version, target, steps), disabled=target is None or running)


@st.fragment(run_every=PROJECTION_REFRESH_SEC if running else None)
def projection_panel() -> None:
    task = projection_of(run)
    if task is None:
        return
    snapshot = task.snapshot()
    if running and not snapshot.is_running:
        st.rerun(scope="app")  # finished: the walk above can now start or end at the found photo
    if snapshot.is_running:
        loss = f" · loss {snapshot.last_loss:.4f}" if snapshot.last_loss is not None else ""
        st.progress(snapshot.step / snapshot.total_steps,
                    text=f"step {snapshot.step} of {snapshot.total_steps}{loss}")
        st.button("Stop", key="latent_projection_stop", on_click=stop_projection, args=(run,),
                  icon=":material/stop:")
    elif snapshot.state == "failed":
        st.error(f"Finding the photo failed: {snapshot.error}")
    if snapshot.result is not None:
        loss = min(snapshot.result.losses) if snapshot.result.losses else float("nan")
        show_picture(make_grid(np.stack([task.target, snapshot.result.reconstruction]), 2),
                     f"left: the photo; right: the generator's closest face ({snapshot.state} after "
                     f"{len(snapshot.result.losses)} steps, loss {loss:.4f})", min_side_px=256)


projection_panel()
