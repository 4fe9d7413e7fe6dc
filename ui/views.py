"""Small view pieces more than one page draws: pictures, run labels, the run being watched."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.imaging import enlarge, read_rgb
from core.jobs import JobSnapshot
from core.latent import compiled_inference
from core.runs import RunDir, RunError, RunSummary, list_runs
from ui.state import runs_dir, shared_job_manager

STATE_ICONS = {  # Streamlit bundles Material icons, so they render without system emoji fonts
    "loading": ":material/hourglass_top:",
    "running": ":material/play_circle:",
    "paused": ":material/pause_circle:",
    "stopping": ":material/stop_circle:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
    "unknown": ":material/help:",
}


def plural(count: int, noun: str) -> str:
    """'1 image', '3 images'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def photos_score_text(value: float) -> str:
    """The photos' own SWD or MS-SSIM, or why there is none (it needs at least 4 photos, or 2)."""
    return f"{value:.3f}" if np.isfinite(value) else "none, too few photos"


def quality_wait_note(step: int, metrics_every_steps: int, rows, total_steps: int = 0) -> str:
    """What the live quality panel says while the newest scores are not in yet ('' once they are).

    Scores are drawn in a low-priority process (core.quality_worker), so on a CPU that training
    fills they can lag some intervals behind; the page says so rather than look stuck.
    """
    if metrics_every_steps <= 0:
        return "Quality scoring is off for this run (Score quality every … steps: 0)."
    newest_asked = step // metrics_every_steps * metrics_every_steps
    if newest_asked == 0:
        # The last step is always scored, so a run shorter than the interval is scored at its end.
        first = min(metrics_every_steps, total_steps) if total_steps > 0 else metrics_every_steps
        return f"Quality metrics appear after step {first}."
    if rows and rows[-1].step >= newest_asked:
        return ""
    return (
        f"Quality of step {newest_asked} is being scored in the background, at the lowest CPU priority so that "
        "training never waits for it; while training fills the CPU, scores arrive late and some steps are skipped."
    )


def show_picture(picture: np.ndarray, caption: str = "", min_side_px: int = 384) -> None:
    """A uint8 picture scaled up by whole pixels, so small faces stay crisp on screen."""
    st.image(enlarge(picture, min_side_px), caption=caption or None)


def current_snapshot() -> JobSnapshot | None:
    """The snapshot of this process's job (running or last finished), or None if none ran yet."""
    job = shared_job_manager().current
    return job.snapshot() if job is not None else None


def run_label(summary: RunSummary) -> str:
    """'20261203-120000-32px — finished, step 2000/2000' for select boxes."""
    if summary.error:
        return f"{summary.run.run_id} — broken"
    status = summary.status
    state = status.get("state", "unknown")
    return f"{summary.run.run_id} — {state}, step {status.get('step', 0)}/{status.get('total_steps', 0)}"


def readable_runs() -> list[RunSummary]:
    """Runs that parse, newest first (broken folders are shown by the Runs page only)."""
    return [summary for summary in list_runs(runs_dir()) if not summary.error]


def pick_run(label: str, key: str, require_generator: bool = False) -> RunSummary | None:
    """A select box of runs, defaulting to the one the current job trains, else the newest."""
    summaries = readable_runs()
    if require_generator:
        summaries = [summary for summary in summaries if summary.run.generator_path.is_file()]
    if not summaries:
        return None

    snapshot = current_snapshot()
    default_index = 0
    if snapshot is not None and snapshot.run_path is not None:
        for index, summary in enumerate(summaries):
            if summary.run.path == snapshot.run_path:
                default_index = index
    ids = [summary.run.run_id for summary in summaries]
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[default_index]
    by_id = {summary.run.run_id: summary for summary in summaries}
    chosen = st.selectbox(
        label, ids, key=key, format_func=lambda run_id: run_label(by_id[run_id]), persist_state="session"
    )
    return by_id[chosen]


def latest_grid_of(run: RunDir) -> tuple[int, np.ndarray] | None:
    """(step, picture) of the newest saved fixed-noise grid of a run."""
    latest = run.latest_sample()
    if latest is None:
        return None
    step, path = latest
    return step, read_rgb(path)


def generator_version(run: RunDir) -> tuple[str, int]:
    """(run path, generator.keras modification time): the cache key of everything G draws.

    Raises RunError when the run has no generator (it may have been deleted since listing).
    """
    try:
        return str(run.path), run.generator_path.stat().st_mtime_ns
    except OSError as error:
        raise RunError(f"run '{run.run_id}' has no readable generator.keras: {error}") from error


@st.cache_resource(max_entries=3, show_spinner="Loading the generator…")
def cached_generator(run_path: str, modified_ns: int):
    """A run's generator, reloaded only when generator.keras changes (each checkpoint rewrites it)."""
    return RunDir(run_path).load_generator()


@st.cache_resource(max_entries=3, show_spinner=False)
def cached_inference(run_path: str, modified_ns: int):
    """The generator as one compiled function z -> uint8 pictures (core.latent.compiled_inference)."""
    return compiled_inference(cached_generator(run_path, modified_ns))


@st.cache_data(max_entries=32, show_spinner=False)
def generated_faces(run_path: str, modified_ns: int, z: np.ndarray) -> np.ndarray:
    """G's pictures of z, remembered so a rerun that leaves a strip's z alone costs nothing."""
    return cached_inference(run_path, modified_ns)(z)


def show_alerts(alerts) -> None:
    """core.health alerts as warnings, each with its remedy."""
    for alert in alerts:
        st.warning(f"**{alert.title}**: {alert.detail}. *Try:* {alert.remedy}", icon=":material/monitor_heart:")
