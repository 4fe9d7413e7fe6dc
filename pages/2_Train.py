"""Train page: settings, Start, and a live view of the background training job.

The job runs in a thread owned by ``core.jobs``; this page only reads its snapshot,
inside fragments that rerun on a timer while the job is active.
"""

from __future__ import annotations

import functools

import streamlit as st

from core.checkpoints import CheckpointStore
from core.config import (
    AUGMENTATIONS, AUTO_COVERAGE_WEIGHT, AUTO_MODE_SEEKING, AUTO_WIDTH, LOSSES, TrainConfig, default_coverage_weight,
    default_mode_seeking, default_width,
    supported_resolutions,
)
from core.data import suggest_resolution
from core.architecture import estimate_step_memory_bytes
from core.jobs import JobSnapshot
from core.runs import RunDir, RunSummary
from core.health import health_alerts
from core.quality import QUALITY_SAMPLE_COUNT
from ui.charts import quality_curves, records_to_columns, training_curves
from ui.timeline import training_timeline
from ui.state import (
    PERSIST,
    SETTING_LABELS,
    config_from_session,
    format_duration,
    load_chosen_dataset,
    prepare_page,
    remember_started_settings,
    runs_dir,
    shared_job_manager,
)
from ui.views import (
    STATE_ICONS,
    current_snapshot,
    photos_score_text,
    plural,
    quality_wait_note,
    readable_runs,
    show_alerts,
    show_picture,
)

LIVE_REFRESH_SEC = 1.0
LIVE_CURVES_REFRESH_SEC = 5.0
MEMORY_WARNING_GB = 2.0
BATCH_SIZES = (4, 8, 16, 24, 32, 48, 64, 96, 128, 256)
LEARNING_RATES = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3)
LATENT_SIZES = (8, 16, 32, 64, 100, 128, 256, 512)
WIDTHS = (AUTO_WIDTH, 8, 16, 32, 48, 64, 96, 128)
EMA_DECAYS = (0.0, 0.9, 0.99, 0.995, 0.999, 0.9995, 0.9999)
ADA_TARGETS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8)
MODE_SEEKING_WEIGHTS = (AUTO_MODE_SEEKING, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
COVERAGE_WEIGHTS = (AUTO_COVERAGE_WEIGHT, 0.0, 1.0, 2.0, 5.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0)
R1_GAMMAS = (0.0, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
LOSS_LABELS = {
    "non_saturating": "non-saturating (DCGAN)",
    "hinge": "hinge",
    "least_squares": "least squares",
    "wgan_gp": "Wasserstein + gradient penalty",
}


def chosen_resolution_px() -> int:
    # The resolution slider may not have stored its value yet when a label is drawn.
    return st.session_state.get("resolution_px", TrainConfig.resolution_px)  # the field's default


def width_label(width: int) -> str:
    return f"auto ({default_width(chosen_resolution_px())})" if width == AUTO_WIDTH else str(width)


def weight_label(weight: float, auto: float, default_for) -> str:
    """A term's weight on its slider: "auto (N)" for the resolution's default N, "off" for 0."""
    if weight == auto:
        return f"auto ({default_for(chosen_resolution_px()):g})"
    return "off" if weight == 0 else f"{weight:g}"


def by_resolution(default_for) -> str:
    """How an auto setting follows the resolution, in words, from the function that chooses it."""
    return f"Auto: {default_for(32):g} up to 32 px, {default_for(48):g} above."


def settings_panel(disabled: bool) -> None:
    """Every training setting, written straight into session state under its config name."""
    model, optimiser, schedule = st.columns(3, gap="large")
    with model:
        st.markdown("**Model**")
        st.select_slider(SETTING_LABELS["resolution_px"], supported_resolutions(), key="resolution_px",
                         persist_state=PERSIST, disabled=disabled)
        st.select_slider(SETTING_LABELS["latent_dim"], LATENT_SIZES, key="latent_dim",
                         persist_state=PERSIST, disabled=disabled)
        st.select_slider(SETTING_LABELS["width"], WIDTHS, key="width",
                         persist_state=PERSIST, disabled=disabled, format_func=width_label,
                         help="Doubled at each lower resolution up to 512. Smaller is faster. Auto: 32 up to "
                         "32 px, 16 above, the best faces in ten CPU-minutes on a hundred photos.")
        st.select_slider(SETTING_LABELS["ema_decay"], EMA_DECAYS, key="ema_decay",
                         persist_state=PERSIST, disabled=disabled,
                         help="Samples and the exported model use an average of G's recent weights: smoother faces.")
    with optimiser:
        st.markdown("**Optimisers**")
        st.select_slider(SETTING_LABELS["learning_rate_g"], LEARNING_RATES, key="learning_rate_g", format_func="{:g}".format,
                         persist_state=PERSIST, disabled=disabled)
        st.select_slider(SETTING_LABELS["learning_rate_d"], LEARNING_RATES, key="learning_rate_d", format_func="{:g}".format,
                         persist_state=PERSIST, disabled=disabled)
        st.slider(SETTING_LABELS["beta1"], 0.0, 0.95, step=0.05, key="beta1", persist_state=PERSIST, disabled=disabled,
                  help="0.5 as in the DCGAN paper; higher values make GAN training oscillate.")
        st.select_slider(SETTING_LABELS["batch_size"], BATCH_SIZES, key="batch_size",
                         persist_state=PERSIST, disabled=disabled)
    with schedule:
        st.markdown("**Schedule**")
        st.number_input(SETTING_LABELS["steps"], min_value=1, max_value=10_000_000, step=100, key="steps",
                        persist_state=PERSIST, disabled=disabled,
                        help="One step = one update of D and one of G.")
        st.number_input(SETTING_LABELS["seed"], min_value=0, max_value=2**31 - 1, step=1, key="seed",
                        persist_state=PERSIST, disabled=disabled)
        st.number_input(SETTING_LABELS["sample_every_steps"], min_value=1, step=50, key="sample_every_steps",
                        persist_state=PERSIST, disabled=disabled)
        st.number_input(SETTING_LABELS["checkpoint_every_steps"], min_value=1, step=100, key="checkpoint_every_steps",
                        persist_state=PERSIST, disabled=disabled)
        st.number_input(SETTING_LABELS["metrics_every_steps"], min_value=0, step=100, key="metrics_every_steps",
                        persist_state=PERSIST, disabled=disabled,
                        help="SWD, diversity and near copies of the averaged G, scored beside training; 0 = off.")

    st.markdown("**Small-data tricks**")
    tricks = st.columns(4, gap="large")
    tricks[0].multiselect(SETTING_LABELS["augment"], AUGMENTATIONS, key="augment", persist_state=PERSIST,
                          disabled=disabled,
                          help="DiffAugment: D sees real and generated images through the same random changes, "
                          "so it cannot memorise a few photos.")
    tricks[0].select_slider(SETTING_LABELS["ada_target"], ADA_TARGETS, key="ada_target", persist_state=PERSIST,
                            disabled=disabled, format_func=lambda value: "off (always)" if value == 0 else f"{value:g}",
                            help="Off: every image is augmented. Otherwise the share of augmented images adapts "
                            "(ADA) so that D's mean sign on real images stays near this target; 0.6 as in ADA.")
    tricks[1].selectbox(SETTING_LABELS["loss"], LOSSES, key="loss", persist_state=PERSIST, disabled=disabled,
                        format_func=LOSS_LABELS.get)
    tricks[1].select_slider(SETTING_LABELS["r1_gamma"], R1_GAMMAS, key="r1_gamma", persist_state=PERSIST,
                            disabled=disabled, format_func=lambda value: "off" if value == 0 else f"{value:g}",
                            help="Penalises D's gradient on real images, which keeps it from overreacting.")
    tricks[2].toggle(SETTING_LABELS["spectral_norm"], key="spectral_norm", persist_state=PERSIST, disabled=disabled,
                     help="Spectral normalisation of D's layers (Miyato et al.), usually with the hinge loss.")
    tricks[2].toggle(SETTING_LABELS["minibatch_std"], key="minibatch_std", persist_state=PERSIST, disabled=disabled,
                     help="D also sees how much each group of 4 images differ (Karras et al. 2018), so a "
                     "generator that draws the same face every time is easy to catch.")
    tricks[2].slider(SETTING_LABELS["label_smoothing"], 0.0, 0.3, step=0.05, key="label_smoothing",
                     persist_state=PERSIST, disabled=disabled, help="Real images' target becomes 1 minus this.")
    tricks[3].number_input(SETTING_LABELS["d_steps_per_g"], min_value=1, max_value=10, step=1, key="d_steps_per_g",
                           persist_state=PERSIST, disabled=disabled)
    tricks[3].toggle(SETTING_LABELS["simultaneous_updates"], key="simultaneous_updates", persist_state=PERSIST,
                     disabled=disabled,
                     help="D and G both learn from the same weights, as the TensorFlow tutorial does: one "
                     "D pass fewer per step. Off: G learns against the D just updated.")
    weight_slider(tricks[3], "mode_seeking", MODE_SEEKING_WEIGHTS, AUTO_MODE_SEEKING, default_mode_seeking,
                  "MSGAN (Mao et al. 2019): G is penalised when two different z give alike faces, which keeps "
                  "it from drawing a few faces over and over.", disabled)
    weight_slider(tricks[1], "coverage_weight", COVERAGE_WEIGHTS, AUTO_COVERAGE_WEIGHT, default_coverage_weight,
                  "Every generated face claims a photo and is pulled towards it (and away from a photo it resembles "
                  "more); a photo claimed too rarely gets easier to claim, so no photo is left out. Too strong, "
                  "and faces become blurry blends of photos.",
                  disabled)


def weight_slider(column, name: str, weights, auto: float, default_for, help_text: str, disabled: bool) -> None:
    """A slider for a term whose weight is "auto" by default, following the resolution."""
    column.select_slider(SETTING_LABELS[name], weights, key=name, persist_state=PERSIST, disabled=disabled,
                         format_func=functools.partial(weight_label, auto=auto, default_for=default_for),
                         help=f"{help_text} {by_resolution(default_for)}")

def setting_warnings(dataset) -> list[str]:
    """Settings that will waste time or memory on these photos, in words."""
    try:
        config = config_from_session()
    except ValueError as error:
        return [f"Cannot start: {error}"]
    warnings = []
    suggested_px = suggest_resolution(dataset.source_sizes, prefer_max_px=supported_resolutions()[-1])
    if config.resolution_px > 2 * suggested_px:
        cost = (config.resolution_px / suggested_px) ** 2
        warnings.append(
            f"Your photos are about {suggested_px} px on their short side: training at {config.resolution_px} px "
            f"adds no detail and costs about {cost:.0f} times as much per step."
        )
    memory_gb = estimate_step_memory_bytes(config) / 1e9
    if memory_gb > MEMORY_WARNING_GB:
        warnings.append(
            f"{config.resolution_px} px with batch {config.batch_size} needs roughly {memory_gb:.0f} GB of memory "
            "per step and may be very slow or run out of memory; lower the batch size or the resolution."
        )
    return warnings


def start_training() -> None:
    """Start button callback: validate the settings and hand them to the job manager."""
    try:
        config = config_from_session()
    except ValueError as error:
        st.session_state["start_message"] = ("error", f"Cannot start: {error}")
        return
    job, started = shared_job_manager().start(config, runs_dir=runs_dir())
    if started:
        remember_started_settings(job)
    else:
        st.session_state["start_message"] = ("info", "A run is already training; this page shows it.")


def continue_run(run: RunDir) -> None:
    """Continue button callback: resume a stopped run from its last checkpoint."""
    _, started = shared_job_manager().start(run.read_config(), resume_run=run, runs_dir=runs_dir())
    if not started:
        st.session_state["start_message"] = ("info", "A run is already training; this page shows it.")


def show_live_status(snapshot: JobSnapshot) -> None:
    """State, Pause/Resume/Stop, progress with ETA and the speed numbers of the active job."""
    job = shared_job_manager().current
    run_name = snapshot.run_path.name if snapshot.run_path is not None else "new run"
    header, pause_column, stop_column = st.columns([6, 1, 1], vertical_alignment="center")
    # Pause acts between steps; the first step compiles and can take a minute, so say it was heard.
    pausing = job.pause_requested and snapshot.state in ("loading", "running")
    state_text = "Pausing after this step…" if pausing else snapshot.state.capitalize()
    header.markdown(f"{STATE_ICONS[snapshot.state]} **{state_text}** · `{run_name}`")
    if snapshot.state == "paused" or pausing:
        pause_column.button("Resume", key="resume", on_click=job.resume, icon=":material/play_arrow:")
    else:
        pause_column.button("Pause", key="pause", on_click=job.pause, icon=":material/pause:",
                            disabled=snapshot.state not in ("running", "loading"))
    stop_column.button("Stop", key="stop", on_click=job.stop, icon=":material/stop:", type="primary",
                       disabled=snapshot.state == "stopping")

    eta = format_duration(snapshot.eta_sec)
    st.progress(min(snapshot.progress, 1.0), text=f"step {snapshot.step} of {snapshot.total_steps} · ETA {eta}")
    if snapshot.state == "loading":
        st.caption("Loading images and building the networks (the first step compiles the model)…")
    elif not snapshot.records:
        st.caption("Compiling the training step: the first steps can take a minute on a CPU…")

    numbers = st.columns(4)
    numbers[0].metric("Images / s", f"{snapshot.images_per_sec:.0f}")
    numbers[1].metric("Elapsed", format_duration(snapshot.elapsed_sec))
    numbers[2].metric("ETA", eta)
    if snapshot.records:
        last = snapshot.records[-1]
        numbers[3].metric("D(x) / D(G(z))", f"{last.d_real:.2f} / {last.d_fake:.2f}")
        if shared_job_manager().current.config.ada_target > 0:
            st.caption(f"Adaptive augmentation: {last.augment_probability:.0%} of images augmented.")


def show_quality(rows, key: str, wait_note: str = "") -> None:
    """The quality panel: SWD, diversity and near copies against the photos' own values."""
    if wait_note:
        st.caption(wait_note)
    if rows:
        last = rows[-1]
        st.markdown(
            f"**Quality at step {last.step}** (averaged G, {QUALITY_SAMPLE_COUNT} fixed seeds): SWD {last.swd:.3f} "
            f"(photos vs photos {photos_score_text(last.swd_baseline)}) · MS-SSIM {last.diversity:.3f} "
            f"(photos {photos_score_text(last.diversity_training)}) · near copies {last.near_copy_fraction:.0%} · "
            f"photos no sample is nearest to {last.coverage_ignored_fraction:.0%}"
        )
        st.plotly_chart(quality_curves(rows), key=key)
    elif not wait_note:
        st.caption("This run has no quality scores.")


def show_finished_run(summary: RunSummary) -> None:
    """The newest run on disk: its outcome, curves and last grid, and Continue if it stopped early."""
    status, run = summary.status, summary.run
    state = status.get("state", "unknown")
    st.markdown(
        f"{STATE_ICONS.get(state, '')} Last run `{run.run_id}`: **{state}** at step "
        f"{status.get('step', 0)} of {status.get('total_steps', 0)}"
    )
    if state == "failed":
        st.error(f"Training failed: {status.get('reason', 'no reason recorded')}")
    if state in ("stopped", "failed") and CheckpointStore(run.checkpoints_dir, 1).newest_good()[0] is not None:
        st.button("Continue this run", key="continue", on_click=continue_run, args=(run,), icon=":material/resume:")

    metrics, quality_rows = run.read_metrics(), run.read_quality()
    show_alerts(health_alerts(metrics, quality_rows, [status.get("reason", "")]))
    curves, grid = st.columns([3, 2], gap="large")
    with curves:
        if len(metrics["step"]):
            st.plotly_chart(training_curves(metrics), key="run_curves")
        if quality_rows:
            show_quality(quality_rows, key="run_quality")
    with grid:
        training_timeline(run, key="train_timeline")


prepare_page()
st.title("Train")

snapshot = current_snapshot()
active = snapshot is not None and snapshot.is_active

dataset, problem = load_chosen_dataset()
if active:
    running = shared_job_manager().current.config
    st.caption(
        f"This run trains on `{running.data_dir}` at {running.resolution_px} px ({running.fit_mode}); "
        "changes on the Data page and below apply to the next run."
    )
elif dataset is None:
    st.error(f"{problem} Choose the images on the Data page.")
else:
    st.caption(
        f"{plural(dataset.count, 'image')} from `{dataset.folder}` at {st.session_state['resolution_px']} px "
        f"({st.session_state['fit_mode']}). Change them on the Data page."
    )

with st.expander("Settings", expanded=not active):
    settings_panel(disabled=active)
if not active and dataset is not None:
    for warning in setting_warnings(dataset):
        st.warning(warning, icon=":material/warning:")

st.button(
    "Start training",
    key="start",
    type="primary",
    icon=":material/play_arrow:",
    on_click=start_training,
    disabled=active or dataset is None,
)
kind, message = st.session_state.pop("start_message", ("", ""))
if message:
    getattr(st, kind)(message)


@st.fragment(run_every=LIVE_REFRESH_SEC if active else None)
def live_status() -> None:
    snapshot = current_snapshot()
    if snapshot is not None and snapshot.is_active:
        show_live_status(snapshot)
    elif active:
        st.rerun(scope="app")  # the job just ended: redraw the page in its idle layout


# Redrawing a plotly chart costs the browser far more than the numbers do, and on a laptop
# the browser shares the CPU with training, so the curves refresh less often.
@st.fragment(run_every=LIVE_CURVES_REFRESH_SEC)
def live_curves() -> None:
    snapshot = current_snapshot()
    if snapshot is not None:
        columns = records_to_columns(snapshot.records)
        show_alerts(health_alerts(columns, snapshot.quality_rows))
        st.plotly_chart(training_curves(columns), key="live_curves")
        wait_note = quality_wait_note(snapshot.step, snapshot.metrics_every_steps, snapshot.quality_rows,
                                      snapshot.total_steps)
        show_quality(snapshot.quality_rows, key="live_quality", wait_note=wait_note if snapshot.is_active else "")


@st.fragment(run_every=LIVE_REFRESH_SEC)
def live_grid() -> None:
    snapshot = current_snapshot()
    if snapshot is not None and snapshot.latest_grid is not None:
        show_picture(snapshot.latest_grid, f"fixed noise · step {snapshot.latest_grid_step}")
    else:
        st.caption("The first sample grid appears after the first sample interval.")


if active:
    live_status()
    curves_column, grid_column = st.columns([3, 2], gap="large")
    with curves_column:
        live_curves()
    with grid_column:
        live_grid()
else:
    if snapshot is not None and snapshot.state == "failed" and snapshot.run_path is None:
        st.error(f"Training failed before it started: {snapshot.error}")
    summaries = readable_runs()
    if summaries:
        show_finished_run(summaries[0])
    else:
        st.info("No run yet: press Start training.")
