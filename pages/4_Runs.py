"""Runs page: every run in runs/ with its settings, final grid, curves and downloads."""

from __future__ import annotations

import streamlit as st

from core.runs import list_runs
from ui.charts import training_curves
from ui.state import SETTING_LABELS, format_duration, prepare_page, runs_dir
from ui.views import STATE_ICONS, latest_grid_of, pick_run, show_picture

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
