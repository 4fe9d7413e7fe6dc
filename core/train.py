"""Headless training with the dashboard's config: ``python -m core.train ...``.

    python -m core.train --data GANs_dataset --resolution 32 --steps 2000
    python -m core.train --resume runs/20261203-120000-32px --steps 4000
    python -m core.train --branch runs/20261203-120000-32px --from-step 1500 --lr-g 1e-4 --steps 3000
    python -m core.train --strategy mirrored --data GANs_dataset --batch-size 64   # all local GPUs
    TF_CONFIG='{...}' python -m core.train --strategy multi-worker ...             # on every machine

Shows a progress bar, logs one line per logged step, and prints the run directory as its
last line, so scripts can pick it up. Bad arguments exit with status 2 and a message.
Under --strategy multi-worker only the chief (worker 0) writes and prints the run directory;
the other workers train into a scratch folder that they delete at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from core.config import (
    AUGMENTATIONS, BACKGROUNDS, FIT_MODES, LOSSES, TrainConfig, default_coverage_weight, default_mode_seeking,
)
from core.precision import PRECISIONS
from core.distribute import STRATEGIES
from core.runs import RunDir, RunError, default_runs_dir, project_root

logger = logging.getLogger("core.train")

# Command-line flag -> TrainConfig field. One table, so the two never drift apart.
FLAG_TO_FIELD = {
    "data": "data_dir",
    "resolution": "resolution_px",
    "fit": "fit_mode",
    "background": "background",
    "exclude": "exclude",
    "keep_duplicates": "keep_duplicates",
    "batch_size": "batch_size",
    "steps": "steps",
    "lr_g": "learning_rate_g",
    "lr_d": "learning_rate_d",
    "beta1": "beta1",
    "latent_dim": "latent_dim",
    "width": "width",
    "ema_decay": "ema_decay",
    "augment": "augment",
    "ada_target": "ada_target",
    "loss": "loss",
    "r1_gamma": "r1_gamma",
    "spectral_norm": "spectral_norm",
    "minibatch_std": "minibatch_std",
    "label_smoothing": "label_smoothing",
    "d_steps": "d_steps_per_g",
    "simultaneous_updates": "simultaneous_updates",
    "mode_seeking": "mode_seeking",
    "coverage_weight": "coverage_weight",
    "metrics_every": "metrics_every_steps",
    "seed": "seed",
    "log_every": "log_every_steps",
    "sample_every": "sample_every_steps",
    "checkpoint_every": "checkpoint_every_steps",
}


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m core.train", description="Train a DCGAN on a folder of photos, without the dashboard."
    )
    parser.add_argument("--data", help=f"folder of images (default {defaults.data_dir})")
    parser.add_argument("--resolution", type=int, help=f"square size in pixels (default {defaults.resolution_px})")
    parser.add_argument("--fit", choices=FIT_MODES, help="make photos square: pad, centre crop, or crop around the face")
    parser.add_argument("--background", choices=tuple(BACKGROUNDS), help="colour of padding and transparent areas")
    parser.add_argument(
        "--exclude", action="append", metavar="FILE", help="leave this file (relative to --data) out; repeatable"
    )
    parser.add_argument(
        "--keep-duplicates", action="store_const", const=True, help="train on exact and near-duplicate photos too"
    )
    parser.add_argument("--batch-size", type=int, help=f"images per step (default {defaults.batch_size})")
    parser.add_argument("--steps", type=int, help=f"total training steps (default {defaults.steps})")
    parser.add_argument("--lr-g", type=float, help=f"generator learning rate (default {defaults.learning_rate_g})")
    parser.add_argument("--lr-d", type=float, help=f"discriminator learning rate (default {defaults.learning_rate_d})")
    parser.add_argument("--beta1", type=float, help=f"Adam beta1 (default {defaults.beta1})")
    parser.add_argument("--latent-dim", type=int, help=f"size of z (default {defaults.latent_dim})")
    parser.add_argument(
        "--width", type=int, help="base channel count (default: 32 up to 32 px, 16 above; 0 chooses the same)"
    )
    parser.add_argument("--ema-decay", type=float, help=f"averaged-generator decay, 0 = off (default {defaults.ema_decay})")
    parser.add_argument(
        "--augment", type=_augment_list, metavar="LIST",
        help=f"DiffAugment policy, comma-separated from {','.join(AUGMENTATIONS)}, or none "
        f"(default {','.join(defaults.augment) or 'none'})",
    )
    parser.add_argument("--ada-target", type=float, help="steer augmentation ADA-style to this D(x) sign mean; 0 = off")
    parser.add_argument("--loss", choices=LOSSES, help=f"GAN loss (default {defaults.loss})")
    parser.add_argument("--r1-gamma", type=float, help=f"R1 penalty weight, 0 = off (default {defaults.r1_gamma})")
    parser.add_argument("--spectral-norm", action="store_const", const=True, help="spectral normalisation in D")
    parser.add_argument(
        "--minibatch-std", action=argparse.BooleanOptionalAction,
        help=f"D sees the spread of each group of images (default {'on' if defaults.minibatch_std else 'off'})",
    )
    parser.add_argument("--label-smoothing", type=float, help="one-sided label smoothing of real targets")
    parser.add_argument("--d-steps", type=int, help=f"D updates per G update (default {defaults.d_steps_per_g})")
    parser.add_argument(
        "--simultaneous-updates", action=argparse.BooleanOptionalAction,
        help="D and G step from one forward pass, as the TensorFlow tutorial does (fewer passes per step; "
        f"default {'on' if defaults.simultaneous_updates else 'off'})",
    )
    parser.add_argument(
        "--mode-seeking", type=float,
        help="weight of the term keeping different z apart, 0 = off (default: "
        f"{default_mode_seeking(32):g} up to 32 px, {default_mode_seeking(48):g} above; -1 chooses the same)",
    )
    parser.add_argument(
        "--coverage-weight", type=float,
        help="weight of the term pulling each generated face towards a photo it claims, so no photo is left "
        f"out; 0 = off (default: {default_coverage_weight(32):g}; -1 chooses the same)",
    )
    parser.add_argument(
        "--metrics-every", type=int, help=f"steps between quality metrics, 0 = off (default {defaults.metrics_every_steps})"
    )
    parser.add_argument("--seed", type=int, help=f"random seed (default {defaults.seed})")
    parser.add_argument("--log-every", type=int, help=f"steps between log lines (default {defaults.log_every_steps})")
    parser.add_argument("--sample-every", type=int, help=f"steps between sample grids (default {defaults.sample_every_steps})")
    parser.add_argument(
        "--checkpoint-every", type=int, help=f"steps between checkpoints (default {defaults.checkpoint_every_steps})"
    )
    parser.add_argument("--runs-dir", type=Path, help="where run directories go (default runs/)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run to --steps total steps")
    parser.add_argument(
        "--branch", type=Path, metavar="RUN_DIR", help="start a new run from a kept checkpoint of this run"
    )
    parser.add_argument("--from-step", type=int, metavar="N", help="with --branch: the checkpoint's step")
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default="default",
        help="default: one device; mirrored: every GPU of this machine (else its CPU); multi-worker: the "
        "machines listed in TF_CONFIG. Not a setting of the run: it resumes under any strategy",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="float32",
        help="float32 (default); mixed_float16 with loss scaling for GPUs; mixed_bfloat16 for CPUs with "
        "bfloat16 instructions. Not a setting of the run: weights and checkpoints stay float32",
    )
    return parser


def _augment_list(text: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); 'none' or '' -> ()."""
    names = tuple(name.strip() for name in text.split(",") if name.strip() and name.strip() != "none")
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
    return names


def in_flag_names(message: str) -> str:
    """A TrainConfig message with its field names replaced by the flags a CLI user typed."""
    for flag, field in FLAG_TO_FIELD.items():
        message = re.sub(rf"\b{field}\b", "--" + flag.replace("_", "-"), message)
    return message


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, RunDir | None]:
    """The config to train with, and the run to resume (None for a new run)."""
    given = {
        field: getattr(args, flag) for flag, field in FLAG_TO_FIELD.items() if getattr(args, flag) is not None
    }
    if args.resume is not None and args.branch is not None:
        raise ValueError("use --resume or --branch, not both")
    if args.branch is not None:
        if args.from_step is None:
            raise ValueError("--branch needs --from-step N, the step of a kept checkpoint")
        # The parent's settings, changed where a flag says so; its shape is checked on branching.
        return RunDir.open(args.branch).read_config().replace(**given), None
    if args.resume is None:
        return TrainConfig(**given), None

    # A resumed run keeps its own architecture and data; only the length may change.
    run = RunDir.open(args.resume)
    ignored = sorted(set(given) - {"steps"})
    if ignored:
        raise ValueError(f"--resume keeps the run's own settings; remove {', '.join(ignored)} (only steps may change)")
    config = run.read_config()
    if "steps" in given:
        config = config.replace(steps=given["steps"])
    return config, run


class _ProgressHooks:
    """Draws a Keras progress bar and stops cleanly on Ctrl+C or SIGTERM."""

    def __init__(self, total_steps: int, start_step: int) -> None:
        import keras

        self._bar = keras.utils.Progbar(total_steps, stateful_metrics=["D loss", "G loss", "img/s"])
        self._bar.update(start_step)
        self._stop = False

    def request_stop(self, *_unused) -> None:
        logger.warning("stopping after the current step; a checkpoint will be written")
        self._stop = True

    def should_stop(self) -> bool:
        return self._stop

    def is_paused(self) -> bool:
        return False

    def on_record(self, record) -> None:
        self._bar.update(
            record.step,
            values=[("D loss", record.d_loss), ("G loss", record.g_loss), ("img/s", record.images_per_sec)],
        )

    def on_sample(self, step: int, grid) -> None:
        pass

    def on_quality(self, row) -> None:
        pass  # the trainer logs each row


@contextlib.contextmanager
def _runs_folder_of_this_worker(is_chief: bool, runs_dir: Path | None):
    """Where a new run goes: the chosen runs folder on the chief (None: the default one); on
    other workers a scratch folder, deleted afterwards, so they never add a run to the real one."""
    if is_chief:
        yield runs_dir
        return
    scratch = Path(tempfile.mkdtemp(prefix="dcgan-studio-worker-runs-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    try:
        config, run = config_from_args(args)
    except (ValueError, RunError) as error:
        parser.error(in_flag_names(str(error)))

    # Before anything else starts TensorFlow: a multi-worker strategy must set up its runtime first.
    from core.distribute import check_global_batch, make_strategy, strategy_is_chief
    from core.precision import use_precision

    try:
        strategy = make_strategy(args.strategy)
        use_precision(args.precision)  # before any network is built
        if strategy is not None:
            from core.models import MINIBATCH_GROUP

            replicas = strategy.num_replicas_in_sync
            check_global_batch(config.batch_size, replicas, config.minibatch_std, MINIBATCH_GROUP)
    except ValueError as error:
        parser.error(in_flag_names(str(error)))
    is_chief = strategy_is_chief(strategy)

    from core.data import DatasetError, load_for_config  # TensorFlow loads only past argument checks

    try:
        dataset = load_for_config(config, project_root())
    except DatasetError as error:
        parser.error(str(error))
    logger.info("training on %d images from %s (%d skipped)", dataset.count, dataset.folder, len(dataset.skipped))
    for skipped in dataset.skipped:
        logger.warning("skipped %s: %s", skipped.path, skipped.reason)

    from core.trainer import Trainer

    with _runs_folder_of_this_worker(is_chief, args.runs_dir) as runs_dir:
        if args.branch is not None:
            from core.checkpoints import CheckpointError
            from core.runs import branch_run

            try:
                run = branch_run(RunDir.open(args.branch), args.from_step, config, dataset, runs_dir)
            except (ValueError, CheckpointError) as error:
                parser.error(in_flag_names(str(error)))
        elif run is None:
            run = RunDir.create(runs_dir or default_runs_dir(), config, dataset)
        try:
            trainer = Trainer(config, dataset.images, run, strategy)
        except ValueError as error:  # e.g. resuming to fewer steps than the run has done
            parser.error(str(error))
        hooks = _ProgressHooks(config.steps, trainer.current_step)
        # TODO: under multi-worker a stop on one machine should stop all (needs the stop flag
        # all-reduced every step); for now each worker is stopped on its own machine.
        signal.signal(signal.SIGINT, hooks.request_stop)
        signal.signal(signal.SIGTERM, hooks.request_stop)

        state = trainer.run(hooks)
        trainer.close()  # a caller that trains again in this process reuses the traced step
    logger.info("run %s %s at step %d", run.run_id, state, trainer.current_step)
    if not is_chief:
        logger.info("this worker is not the chief; the chief's run folder holds the result")
        return 0
    print(run.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
