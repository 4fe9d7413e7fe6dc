"""Latent space page: faces for a range of seeds, and a walk between two seeds.

A seed always gives the same z (``core.latent.seed_to_z``) and the generator runs in
inference mode, so a seed's face is the same here, in the training grid and in exports.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.imaging import make_grid
from core.latent import INTERPOLATION_METHODS, blend, generate_images, interpolate, seed_to_z, seeds_to_z
from core.runs import RunError
from ui.state import PERSIST, prepare_page
from ui.views import cached_generator, pick_run, show_picture

GRID_COLUMNS = 6
MAX_SEED = 2**31 - 1


prepare_page()
st.title("Latent space")

summary = pick_run("Run", key="latent_run", require_generator=True)
if summary is None:
    st.info("No run has exported a generator yet. Train one; it is saved at every checkpoint.")
    st.page_link("pages/2_Train.py", label="Train", icon=":material/model_training:")
    st.stop()

run, config = summary.run, summary.config
try:
    generator = cached_generator(str(run.path), run.generator_path.stat().st_mtime_ns)
except RunError as error:
    st.error(str(error))
    st.stop()
st.caption(
    f"{config.resolution_px} px, z of length {config.latent_dim}, generator as of the last checkpoint "
    f"(step {summary.status.get('step', 0)} of {summary.status.get('total_steps', 0)})."
)

st.subheader("Seeds")
seed_controls = st.columns(2)
first_seed = seed_controls[0].number_input("First seed", 0, MAX_SEED, 0, key="latent_first_seed",
                                           persist_state=PERSIST)
rows = seed_controls[1].slider("Rows", 1, 6, 3, key="latent_rows", persist_state=PERSIST)
seeds = list(range(int(first_seed), int(first_seed) + rows * GRID_COLUMNS))
faces = generate_images(generator, seeds_to_z(seeds, config.latent_dim))
show_picture(make_grid(faces, GRID_COLUMNS), f"seeds {seeds[0]}–{seeds[-1]}, left to right, top to bottom",
             min_side_px=600)

st.subheader("Interpolation")
walk_controls = st.columns(4)
start_seed = walk_controls[0].number_input("From seed", 0, MAX_SEED, 0, key="latent_from_seed", persist_state=PERSIST)
end_seed = walk_controls[1].number_input("To seed", 0, MAX_SEED, 1, key="latent_to_seed", persist_state=PERSIST)
method = walk_controls[2].radio("Path", INTERPOLATION_METHODS, key="latent_method", horizontal=True,
                                persist_state=PERSIST,
                                help="slerp follows the sphere where Gaussian z concentrate; lerp is a straight line.")
frame_count = walk_controls[3].slider("Frames", 2, 16, 8, key="latent_frames", persist_state=PERSIST)

start_z = seed_to_z(int(start_seed), config.latent_dim)
end_z = seed_to_z(int(end_seed), config.latent_dim)
frames = generate_images(generator, interpolate(start_z, end_z, frame_count, method))
position = st.slider("Position along the path", 0.0, 1.0, 0.5, step=0.01, key="latent_position",
                     persist_state=PERSIST)
point = blend(start_z, end_z, position, method)
face = generate_images(generator, point[np.newaxis])[0]
picture_column, strip_column = st.columns([1, 3], gap="large")
with picture_column:
    show_picture(face, f"{position:.2f} of the way from seed {start_seed} to {end_seed}", min_side_px=256)
with strip_column:
    show_picture(make_grid(frames, frame_count), f"{frame_count} frames, {method}", min_side_px=128)
