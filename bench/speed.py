"""Training speed, side by side in one process: a tutorial-style step, the trainer, the trainer in a job.

    python bench/speed.py                          # 32 and 64 px, batch 64, the classic 64-512 channel nets
    python bench/speed.py --resolutions 64 --rounds 2
    python bench/speed.py --tricks default         # the project's default tricks instead of a plain DCGAN
    python bench/speed.py --updates simultaneous   # D and G from one forward pass, as the tutorial does

For each resolution a fresh process (so its peak memory is its own) times, in alternating
order over several rounds:

(a) bench/tutorial_dcgan.py: the step as the TensorFlow tutorial writes it, same networks;
(b) core.trainer.Trainer alone: the step loop with its logging, nothing else;
(c) the trainer inside core.jobs.TrainingJob, as the dashboard runs it, while a poller
    reads the snapshot and builds the live page's charts on the page's own timers. Here
    the trainer also saves a grid about every GRID_EVERY_SEC and checkpoints and scores
    quality about every CHECKPOINT_EVERY_SEC, far more often than the defaults do, so any
    stall they cause shows. Quality is scored in a low-priority process of its own
    (core.quality_worker), which skips a sample when a newer one overtakes it; (c) also
    counts the quality rows that arrived against the samples handed over.

It prints images/s for each (the median over rounds), b/a, c/b, the quality rows of (c),
and the peak resident memory of the process plus that of the scoring process. "plain" tricks (the default here) train exactly what the tutorial does:
no augmentation, no averaged G, no minibatch std, no mode seeking, no coverage term.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from core.precision import PRECISIONS  # noqa: E402  (after the path change above; loads no TensorFlow)

PLAIN_TRICKS = {
    "augment": (), "ema_decay": 0.0, "minibatch_std": False, "mode_seeking": 0.0, "coverage_weight": 0.0,
}
UPDATES = ("alternating", "simultaneous")  # TrainConfig.simultaneous_updates off, on
CLASSIC_WIDTH = 64  # Radford et al.'s networks: 64 channels at the image side, doubling to 512
WARM_UP_SEC = 8.0  # each side runs this long once before any round, so compiling is not timed
GRID_EVERY_SEC = 5.0
CHECKPOINT_EVERY_SEC = 30.0
POLL_EVERY_SEC = 1.0  # pages/2_Train.py LIVE_REFRESH_SEC
CHARTS_EVERY_SEC = 5.0  # pages/2_Train.py LIVE_CURVES_REFRESH_SEC
DEFAULT_SECONDS = {32: 30.0, 64: 60.0}  # per side per round; 64 px needs longer for enough logged steps


def measure_resolution(
    resolution_px: int, tricks: str, rounds: int, seconds: float, precision: str, updates: str
) -> dict:
    """In this process: a, b and c for one resolution; images/s per round and peak memory."""
    from bench.tutorial_dcgan import TutorialDCGAN
    from core.config import TrainConfig
    from core.data import load_for_config
    from core.precision import use_precision
    from core.quality_worker import helper_peak_rss_bytes, stop_helper

    use_precision(precision)  # both sides build their networks in it

    settings = {} if tricks == "default" else PLAIN_TRICKS
    config = TrainConfig(
        resolution_px=resolution_px, width=CLASSIC_WIDTH, batch_size=64, steps=1_000_000,
        sample_every_steps=1_000_000, checkpoint_every_steps=1_000_000, metrics_every_steps=0,
        simultaneous_updates=updates == "simultaneous", **settings,
    )
    dataset = load_for_config(config, REPOSITORY_ROOT)

    tutorial = TutorialDCGAN(config, dataset.images)
    tutorial.images_per_sec(WARM_UP_SEC)
    steps_per_sec = trainer_alone(config, dataset, WARM_UP_SEC) / config.batch_size
    # The job's grids, checkpoints and quality scores, spaced in time rather than steps.
    job_config = config.replace(
        sample_every_steps=max(1, round(GRID_EVERY_SEC * steps_per_sec)),
        checkpoint_every_steps=max(1, round(CHECKPOINT_EVERY_SEC * steps_per_sec)),
        metrics_every_steps=max(1, round(CHECKPOINT_EVERY_SEC * steps_per_sec)),
    )

    sides = {
        "tutorial": lambda: tutorial.images_per_sec(seconds),
        "trainer": lambda: trainer_alone(config, dataset, seconds),
        "job": lambda: trainer_in_job(job_config, seconds, quality_rows),
    }
    results = {name: [] for name in sides}
    quality_rows = {"scored": 0, "asked": 0}
    for round_index in range(rounds):
        names = list(sides)
        names = names[round_index % 3 :] + names[: round_index % 3]  # rotate, so drift hits each side alike
        for name in names:
            results[name].append(sides[name]())
            logging.info("%d px round %d: %s %.1f img/s", resolution_px, round_index + 1, name, results[name][-1])

    scoring_peak_bytes = helper_peak_rss_bytes() or 0
    stop_helper()  # the next resolution's scoring process starts afresh
    return {
        "resolution_px": resolution_px,
        "images_per_sec": results,
        "job_intervals_steps": {
            "grid": job_config.sample_every_steps,
            "checkpoint_and_quality": job_config.checkpoint_every_steps,
        },
        "job_quality_rows": quality_rows,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "scoring_process_peak_rss_bytes": scoring_peak_bytes,
    }


def trainer_alone(config, dataset, seconds: float) -> float:
    """Images/s of Trainer.run in this thread for about `seconds`, from its own metrics.csv."""
    from core.runs import RunDir
    from core.trainer import Trainer, TrainingHooks

    with tempfile.TemporaryDirectory() as runs_dir:
        run = RunDir.create(Path(runs_dir), config, dataset)
        trainer = Trainer(config, dataset.images, run)
        enough_steps = 2 * config.log_every_steps + 1  # two logged rows at least, to time between

        class OutOfTime(TrainingHooks):
            """Stops `seconds` after the first step (which may compile) and never before enough_steps."""

            calls, started = 0, 0.0

            def should_stop(self) -> bool:
                self.calls += 1  # called once before every step
                if self.calls == 2:
                    self.started = time.perf_counter()
                return self.calls > enough_steps and time.perf_counter() - self.started > seconds

        try:
            trainer.run(OutOfTime())
        finally:
            trainer.close()  # the job's trainer reuses these networks and their compiled step
        return _logged_images_per_sec(run, config.batch_size)


def trainer_in_job(config, seconds: float, quality_rows: dict) -> float:
    """Images/s of a TrainingJob for about `seconds` while a dashboard-like poller reads it.

    Adds to quality_rows the rows scored and the samples handed over (one per interval).
    """
    from core.jobs import TrainingJob, wait_for
    from core.runs import RunDir

    with tempfile.TemporaryDirectory() as runs_dir:
        job = TrainingJob(config, runs_dir=Path(runs_dir))
        job.start()
        wait_for(job, ("running", "failed"), timeout_sec=120)
        stop_polling = threading.Event()
        poller = threading.Thread(target=_poll_like_the_dashboard, args=(job, stop_polling), daemon=True)
        poller.start()
        started, enough_steps = time.perf_counter(), 2 * config.log_every_steps + 1
        while time.perf_counter() - started < seconds or job.snapshot().step < enough_steps:
            time.sleep(0.1)
        job.stop()
        job.join(timeout_sec=120)
        stop_polling.set()
        poller.join()

        snapshot = job.snapshot()
        if snapshot.state == "failed":
            raise RuntimeError(f"the job failed: {snapshot.error}")
        run = RunDir.open(snapshot.run_path)
        quality_rows["scored"] += len(snapshot.quality_rows)
        # The step the run stopped at, from its status: the snapshot's is that of the last logged
        # step, which can lie before a scored one. A stopped run asks for no last score.
        quality_rows["asked"] += run.read_status()["step"] // config.metrics_every_steps
        return _logged_images_per_sec(run, config.batch_size)


def _poll_like_the_dashboard(job, stop: threading.Event) -> None:
    """What pages/2_Train.py does while a job runs: status every second, charts every five."""
    from PIL import Image

    from core.health import health_alerts
    from ui.charts import quality_curves, records_to_columns, training_curves

    last_charts = 0.0
    while not stop.wait(POLL_EVERY_SEC):
        snapshot = job.snapshot()
        if snapshot.latest_grid is not None:  # st.image encodes the grid for the browser
            Image.fromarray(snapshot.latest_grid).save(io.BytesIO(), format="PNG")
        if time.monotonic() - last_charts >= CHARTS_EVERY_SEC:
            columns = records_to_columns(snapshot.records)
            health_alerts(columns, snapshot.quality_rows)
            training_curves(columns).to_json()  # st.plotly_chart sends the figure as JSON
            if snapshot.quality_rows:
                quality_curves(snapshot.quality_rows).to_json()
            last_charts = time.monotonic()


def _logged_images_per_sec(run, batch_size: int) -> float:
    """From the first logged step to the last: steps x batch over training seconds."""
    metrics = run.read_metrics()
    steps, elapsed_sec = metrics["step"], metrics["elapsed_sec"]
    if len(steps) < 2:
        raise RuntimeError(f"only {len(steps)} logged steps in {run.path}; give each side more --seconds")
    return float((steps[-1] - steps[0]) * batch_size / (elapsed_sec[-1] - elapsed_sec[0]))


def print_table(rows: list[dict], tricks: str, precision: str, updates: str) -> None:
    print(f"\nimages/s, batch 64, width {CLASSIC_WIDTH} (64-512 channels at 64 px), {tricks} tricks, "
          f"{precision}, {updates} updates; median over rounds")
    print("| resolution | (a) tutorial step | (b) trainer | (c) trainer in job + poller | b/a | c/b "
          "| (c) quality rows scored | peak RSS (+ scoring process) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        speeds = {name: statistics.median(values) for name, values in row["images_per_sec"].items()}
        print(
            f"| {row['resolution_px']} px | {speeds['tutorial']:.1f} | {speeds['trainer']:.1f} | {speeds['job']:.1f} "
            f"| {speeds['trainer'] / speeds['tutorial']:.2f} | {speeds['job'] / speeds['trainer']:.2f} "
            f"| {row['job_quality_rows']['scored']} of {row['job_quality_rows']['asked']} "
            f"| {row['peak_rss_bytes'] / 2**30:.2f} GB (+ {row['scoring_process_peak_rss_bytes'] / 2**30:.2f} GB) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--tricks", choices=("plain", "default"), default="plain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, help="per side per round (default 30 at 32 px, 60 at 64 px)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument(
        "--updates", choices=UPDATES, help="the trainer's D and G updates (default: TrainConfig's)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one resolution, JSON out
    args = parser.parse_args()
    if args.updates is None:
        from core.config import TrainConfig  # loads no TensorFlow

        args.updates = UPDATES[TrainConfig().simultaneous_updates]

    if args.one:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger(__name__).setLevel(logging.INFO)
        logging.getLogger().setLevel(logging.INFO)
        for noisy in ("core", "tensorflow", "absl"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        seconds = args.seconds or DEFAULT_SECONDS.get(args.one, 60.0)
        row = measure_resolution(args.one, args.tricks, args.rounds, seconds, args.precision, args.updates)
        print(json.dumps(row))
        return

    rows = []
    for resolution_px in args.resolutions:
        command = [sys.executable, __file__, "--one", str(resolution_px), "--tricks", args.tricks,
                   "--rounds", str(args.rounds), "--precision", args.precision, "--updates", args.updates]
        if args.seconds:
            command += ["--seconds", str(args.seconds)]
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        finished = subprocess.run(command, stdout=subprocess.PIPE, env=environment, check=True, text=True)
        rows.append(json.loads(finished.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print_table(rows, args.tricks, args.precision, args.updates)


if __name__ == "__main__":
    main()
