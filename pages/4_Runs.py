"""Runs page: every run in runs/ with its settings, final grid, curves and downloads."""

from __future__ import annotations

import streamlit as st

import numpy as np

from core.checkpoints import CheckpointError, CheckpointStore
from core.config import ARCHITECTURE_FIELDS
from core.data import DatasetError, load_for_config
from core.health import health_alerts
from core.imaging import make_grid
from core.latent import generate_images, seeds_to_z
from core.metrics import NEAR_COPY_THRESHOLD
from core.quality import QUALITY_SEED_OFFSET, closest_pairs, quality_seeds
from core.runs import RunDir, branch_run, list_runs, project_root
from ui.charts import compared_curves, quality_curves, training_curves
from ui.timeline import training_timeline
from ui.state import (
    SETTING_LABELS, config_from_session, format_duration, prepare_page, runs_dir, setting_text, shared_job_manager,
)
from ui.views import (
    STATE_ICONS,
    cached_generator,
    current_snapshot,
    latest_grid_of,
    photos_score_text,
    pick_run,
    readable_runs,
    run_label,
    show_alerts,
    show_picture,
)


def show_quality_summary(last) -> None:
    numbers = st.columns(4)
    numbers[0].metric("SWD", f"{last.swd:.3f}",
                      help=f"Photos vs photos: {photos_score_text(last.swd_baseline)}. Lower is closer.")
    numbers[1].metric("MS-SSIM", f"{last.diversity:.3f}",
                      help=f"Photos: {photos_score_text(last.diversity_training)}. Lower means more varied faces.")
    numbers[2].metric("Near copies", f"{last.near_copy_fraction:.0%}")
    numbers[3].metric("Photos ignored", f"{last.coverage_ignored_fraction:.0%}",
                      help="Training photos that no generated face is nearest to.")


def show_closest_pairs(run: RunDir, config) -> None:
    """Generated faces beside their nearest training photo, most photo-like first."""
    try:
        dataset = load_for_config(config, project_root())
    except (DatasetError, ValueError) as error:
        st.info(f"The run's photos cannot be read now ({error}), so nearest photos cannot be shown.")
        return
    generated = generate_images(cached_generator(str(run.path), run.generator_path.stat().st_mtime_ns),
                                seeds_to_z(quality_seeds(), config.latent_dim))
    pairs = closest_pairs(generated, dataset.images)
    columns = st.columns(4)
    for position, (generated_index, photo_index, score) in enumerate(pairs):
        with columns[position % 4]:
            side_by_side = make_grid(np.stack([generated[generated_index], dataset.images[photo_index]]), 2)
            label = "near copy" if score < NEAR_COPY_THRESHOLD else "not a copy"
            photo_name = dataset.included_records[photo_index].relative_path
            show_picture(side_by_side, f"copy score {score:.2f} ({label}): {photo_name}", min_side_px=192)
    st.caption(f"Left: generated (seed {QUALITY_SEED_OFFSET}+); right: its nearest training photo. A copy score is the "
               f"distance to that photo over the typical distance between two photos; under {NEAR_COPY_THRESHOLD} "
               "counts as a near copy.")


def show_comparison(summaries) -> None:
    """Loss and quality curves of several runs overlaid, and their last grids side by side."""
    metrics_by_run = {item.run.run_id: item.run.read_metrics() for item in summaries}
    charts = st.columns(2)
    charts[0].plotly_chart(compared_curves(metrics_by_run, "g_loss", "G loss"), key="compare_g")
    charts[1].plotly_chart(compared_curves(metrics_by_run, "d_loss", "D loss"), key="compare_d")
    quality_by_run = {}
    for item in summaries:
        rows = item.run.read_quality()
        if rows:
            quality_by_run[item.run.run_id] = {"step": np.array([row.step for row in rows]),
                                               "swd": np.array([row.swd for row in rows])}
    if quality_by_run:
        st.plotly_chart(compared_curves(quality_by_run, "swd", "SWD (lower is closer to the photos)"), key="compare_swd")
    grids = st.columns(len(summaries))
    for column, item in zip(grids, summaries):
        latest = latest_grid_of(item.run)
        with column:
            if latest is not None:
                show_picture(latest[1], f"{item.run.run_id} · step {latest[0]}", min_side_px=200)


def job_is_active() -> bool:
    snapshot = current_snapshot()
    return snapshot is not None and snapshot.is_active


def start_branch(parent: RunDir, step: int, until_step: int) -> None:
    """Branch button callback: the Train page's settings on the parent's networks, from `step`."""
    try:
        parent_config = parent.read_config()
        config = config_from_session().replace(
            steps=until_step, **{name: getattr(parent_config, name) for name in ARCHITECTURE_FIELDS}
        )
        dataset = load_for_config(config, project_root())
        branch = branch_run(parent, step, config, dataset, runs_dir())
    except (ValueError, CheckpointError, OSError) as error:
        st.session_state["branch_message"] = ("error", f"Cannot branch: {error}")
        return
    _, started = shared_job_manager().start(config, resume_run=branch, runs_dir=runs_dir())
    st.session_state["branch_message"] = (
        ("success", f"Started `{branch.run_id}` from step {step} of `{parent.run_id}`; watch it on the Train page.")
        if started
        else ("info", "A run is already training; the branch folder is ready and can be continued later.")
    )


prepare_page()
st.title("Runs")
st.caption(f"Run folders in `{runs_dir()}`. Headless runs (`python -m core.train`) appear here too.")

broken = [summary for summary in list_runs(runs_dir()) if summary.error]
if broken:
    with st.expander(f"{len(broken)} folder(s) that are not readable runs"):
        for summary in broken:
            st.warning(f"`{summary.run.run_id}`: {summary.error}")

summary = pick_run("Run", key="runs_selected")
if summary is None:
    st.info("No runs yet. Start one on the Train page.")
    st.page_link("pages/2_Train.py", label="Train", icon=":material/model_training:")
    st.stop()

run, config, status = summary.run, summary.config, summary.status
state = status.get("state", "unknown")
metrics = run.read_metrics()
elapsed_sec = float(metrics["elapsed_sec"][-1]) if len(metrics["elapsed_sec"]) else None

overview = st.columns(4)
overview[0].metric("State", f"{STATE_ICONS.get(state, '')} {state}")
overview[1].metric("Steps", f"{status.get('step', 0)} / {status.get('total_steps', 0)}")
overview[2].metric("Resolution", f"{config.resolution_px}×{config.resolution_px}")
overview[3].metric("Training time", format_duration(elapsed_sec))
parent = run.read_metadata().get("parent")
if parent:
    st.caption(f"Branched from `{parent.get('run')}` at step {parent.get('step')}.")
if status.get("reason"):
    (st.error if state == "failed" else st.caption)(status["reason"])

grid_column, curves_column = st.columns([2, 3], gap="large")
with grid_column:
    training_timeline(run, key="runs_timeline")
with curves_column:
    if len(metrics["step"]):
        st.plotly_chart(training_curves(metrics), key="runs_curves")

downloads = st.columns(4)
samples = run.list_samples()
has_generator = run.generator_path.is_file()
# Callables: each archive is built only when its button is clicked, not on every rerun.
downloads[0].download_button(
    "Everything (zip)", data=run.bundle_zip, file_name=f"{run.run_id}.zip", mime="application/zip",
    key="download_bundle", icon=":material/archive:",
    help="Settings, manifest with file hashes, metrics, quality, grids and the generator.",
)
downloads[1].download_button(
    f"Sample grids ({len(samples)}, zip)", data=run.samples_zip, file_name=f"{run.run_id}-samples.zip",
    mime="application/zip", key="download_samples", disabled=not samples, icon=":material/folder_zip:",
)
downloads[2].download_button(
    "Generator (.keras)", data=run.generator_path.read_bytes if has_generator else b"",
    file_name=f"{run.run_id}-generator.keras", mime="application/octet-stream", key="download_generator",
    disabled=not has_generator, icon=":material/neurology:",
)
downloads[3].download_button(
    "Metrics (csv)", data=run.metrics_path.read_bytes if run.metrics_path.is_file() else b"",
    file_name=f"{run.run_id}-metrics.csv", mime="text/csv", key="download_metrics",
    disabled=not run.metrics_path.is_file(), icon=":material/show_chart:",
)

quality_rows = run.read_quality()
show_alerts(health_alerts(metrics, quality_rows, [status.get("reason", "")]))
if quality_rows:
    st.subheader("Quality")
    show_quality_summary(quality_rows[-1])
    st.plotly_chart(quality_curves(quality_rows), key="runs_quality")
if has_generator and st.toggle("Show the generated faces closest to a training photo", key="runs_show_pairs"):
    show_closest_pairs(run, config)

others = [other for other in readable_runs() if other.run.path != run.path]
if others:
    st.subheader("Compare runs")
    labels = {other.run.run_id: other for other in others}
    compared = st.multiselect("Compare with", list(labels), key="runs_compare", format_func=lambda rid: run_label(labels[rid]))
    if compared:
        show_comparison([summary] + [labels[run_id] for run_id in compared])

st.subheader("Checkpoints")
store = CheckpointStore(run.checkpoints_dir, config.keep_checkpoints)
kept = [checkpoint for checkpoint in reversed(store.complete())]
pinned = store.pinned()
if not kept:
    st.caption("No checkpoint kept yet.")
else:
    st.caption(
        f"The newest {config.keep_checkpoints} are kept, plus any you pin. Branching starts a new run from one "
        "of them with the Train page's learning rates, batch size and other settings; the networks' shape "
        "stays the run's own."
    )
    branch_columns = st.columns([2, 2, 2, 3], vertical_alignment="bottom")
    chosen_step = branch_columns[0].selectbox(
        "Checkpoint", [checkpoint.step for checkpoint in kept], index=len(kept) - 1, key="runs_checkpoint",
        format_func=lambda step: f"step {step}" + (" (pinned)" if step in pinned else ""),
    )
    if chosen_step in pinned:
        branch_columns[1].button("Unpin", key="unpin", on_click=store.unpin, args=(chosen_step,), icon=":material/keep_off:")
    else:
        branch_columns[1].button("Pin", key="pin", on_click=store.pin, args=(chosen_step,), icon=":material/keep:")
    until_step = branch_columns[2].number_input(
        "Branch trains until step", min_value=chosen_step + 1, value=max(chosen_step + 1, config.steps),
        step=100, key="branch_until",
    )
    branch_columns[3].button(
        "Start a branch from this checkpoint", key="branch", on_click=start_branch,
        args=(run, chosen_step, int(until_step)), icon=":material/call_split:",
        disabled=job_is_active(),
    )
kind, message = st.session_state.pop("branch_message", ("", ""))
if message:
    getattr(st, kind)(message)

settings_column, dataset_column = st.columns(2, gap="large")
with settings_column:
    st.markdown("**Settings**")
    st.dataframe(
        [{"setting": SETTING_LABELS.get(name, name), "value": setting_text(value)} for name, value in config.to_dict().items()],
        hide_index=True,
        key="runs_config_table",
        height="content",  # every setting visible, no inner scroll bar
    )
with dataset_column:
    dataset = run.read_metadata().get("dataset", {})
    st.markdown("**Dataset**")
    st.markdown(
        f"{dataset.get('image_count', '?')} images from `{dataset.get('folder', '?')}`, "
        f"{dataset.get('skipped_count', 0)} skipped, {dataset.get('left_out_count', 0)} left out; "
        f"fingerprint `{str(dataset.get('fingerprint', ''))[:12]}`"
    )
    manifest = run.read_manifest()
    with st.expander("Manifest: every file, its hash and what was done to it"):
        st.dataframe(manifest.get("images", []), hide_index=True, key="runs_manifest_table")
        if manifest.get("skipped"):
            st.dataframe(manifest["skipped"], hide_index=True)
