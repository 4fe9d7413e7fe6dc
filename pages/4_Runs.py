"""Runs page: every run in runs/ with its settings, final grid, curves and downloads."""

from __future__ import annotations

import streamlit as st

from core.checkpoints import CheckpointError, CheckpointStore
from core.config import ARCHITECTURE_FIELDS
from core.data import load_for_config
from core.runs import RunDir, branch_run, list_runs, project_root
from ui.charts import training_curves
from ui.state import SETTING_LABELS, config_from_session, format_duration, prepare_page, runs_dir, shared_job_manager
from ui.views import STATE_ICONS, current_snapshot, latest_grid_of, pick_run, show_picture


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
    latest = latest_grid_of(run)
    if latest is not None:
        show_picture(latest[1], f"fixed-noise grid at step {latest[0]}")
    else:
        st.caption("No sample grid saved yet.")
with curves_column:
    if len(metrics["step"]):
        st.plotly_chart(training_curves(metrics), key="runs_curves")

downloads = st.columns(3)
samples = run.list_samples()
downloads[0].download_button(
    f"Sample grids ({len(samples)}, zip)",
    data=run.samples_zip() if samples else b"",
    file_name=f"{run.run_id}-samples.zip",
    mime="application/zip",
    key="download_samples",
    disabled=not samples,
    icon=":material/folder_zip:",
)
has_generator = run.generator_path.is_file()
downloads[1].download_button(
    "Generator (.keras)",
    data=run.generator_path.read_bytes() if has_generator else b"",
    file_name=f"{run.run_id}-generator.keras",
    mime="application/octet-stream",
    key="download_generator",
    disabled=not has_generator,
    icon=":material/neurology:",
)
downloads[2].download_button(
    "Metrics (csv)",
    data=run.metrics_path.read_bytes() if run.metrics_path.is_file() else b"",
    file_name=f"{run.run_id}-metrics.csv",
    mime="text/csv",
    key="download_metrics",
    disabled=not run.metrics_path.is_file(),
    icon=":material/show_chart:",
)

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
        [{"setting": SETTING_LABELS.get(name, name), "value": str(value)} for name, value in config.to_dict().items()],
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
