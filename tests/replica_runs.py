"""Training runs on two logical CPU devices, for tests/test_distribute.py, in a process of their own.

TensorFlow fixes its logical devices when it initialises, and the pytest process has long
initialised it, so the tests start this script instead:

    python tests/replica_runs.py FOLDER

trains the same tiny run on one device and, through ``python -m core.train --strategy
mirrored``, on two replicas, resumes each one's checkpoint under the other, and asks the
command line for global batches that two replicas cannot split.

It prints one JSON object as its last line of stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TESTS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS_DIR.parent), str(TESTS_DIR)]

import tensorflow as tf  # noqa: E402  (the path above must come first)

REPLICAS = 2
# The compared run: the project's default tricks (colour + translation augmentation, minibatch
# std, mode seeking, EMA 0.99) and the coverage term, whose nearest images span replicas, on a
# tiny model. A global batch of 16 gives each replica 8 images, two whole groups of 4 for minibatch std.
COMPARED_ARGS = [
    "--resolution", "16", "--width", "8", "--latent-dim", "8", "--batch-size", "16", "--steps", "4",
    "--coverage-weight", "1",
    "--log-every", "1", "--sample-every", "2", "--checkpoint-every", "2", "--metrics-every", "0",
]  # fmt: skip
RESUMED_FROM_STEP = 2


def use_two_logical_cpus() -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS)


def losses(run) -> dict[str, list[float]]:
    metrics = run.read_metrics()
    return {name: metrics[name].tolist() for name in ("step", "d_loss", "g_loss")}


def resumed_copy(run, folder: Path, strategy, images) -> dict:
    """A copy of run cut back to its step-RESUMED_FROM_STEP checkpoint, trained to the end under strategy."""
    from core.runs import RunDir
    from core.trainer import Trainer

    copy = RunDir(shutil.copytree(run.path, folder))
    for checkpoint in copy.checkpoints_dir.iterdir():
        if checkpoint.name.startswith("step_") and int(checkpoint.name[5:]) > RESUMED_FROM_STEP:
            shutil.rmtree(checkpoint)
    trainer = Trainer(copy.read_config(), images, copy, strategy)
    started_at = trainer.current_step
    trainer.run()
    trainer.close()
    logging.info("resumed %s", folder.name)
    return {"started_at_step": started_at, **losses(copy)}


def compare(folder: Path) -> dict:
    """The same run mirrored on two devices (through the CLI) and on one; then each one's
    checkpoint resumed by the other. Ordered so each kind of step is traced once: a closed
    Trainer's networks serve the next Trainer of the same shape and strategy."""
    from conftest import write_blob_faces
    from core.data import load_folder
    from core.distribute import make_strategy
    from core.runs import RunDir
    from core.train import build_parser, config_from_args, main
    from core.trainer import Trainer

    write_blob_faces(folder / "faces", 12)
    arguments = ["--data", str(folder / "faces"), *COMPARED_ARGS]
    config, _ = config_from_args(build_parser().parse_args(arguments))
    dataset = load_folder(folder / "faces", config.resolution_px)

    exit_code = main(["--strategy", "mirrored", "--runs-dir", str(folder / "mirrored"), *arguments])
    (mirrored_path,) = (folder / "mirrored").iterdir()
    mirrored_run = RunDir.open(mirrored_path)
    single_run = RunDir.create(folder / "single", config, dataset)
    single = Trainer(config, dataset.images, single_run)
    single.run()
    single.close()
    mirrored = make_strategy("mirrored")  # the command line's: the networks traced for it are reused
    mirrored_resumed_on_one_device = resumed_copy(mirrored_run, folder / "one-device", None, dataset.images)
    single_resumed_mirrored = resumed_copy(single_run, folder / "resumed-mirrored", mirrored, dataset.images)
    # The simultaneous step (one forward pass for D and G) has its own replicated path.
    simultaneous = config.replace(simultaneous_updates=True)
    simultaneous_losses = {}
    for name, strategy in (("single", None), ("mirrored", mirrored)):
        run = RunDir.create(folder / f"simultaneous-{name}", simultaneous, dataset)
        trainer = Trainer(simultaneous, dataset.images, run, strategy)
        trainer.run()
        trainer.close()
        simultaneous_losses[name] = losses(run)
    refused = {
        batch_size: cli_outcome(["--strategy", "mirrored", "--runs-dir", str(folder / "refused"), *arguments,
                                 "--batch-size", batch_size])
        for batch_size in ("5", "12")  # odd; even, but 6 per replica breaks minibatch std's groups of 4
    }  # fmt: skip
    return {
        "refused": refused,
        "cli_exit_code": exit_code,
        "mirrored_run": str(mirrored_path),
        "replicas": mirrored.num_replicas_in_sync,
        "single": losses(single_run),
        "mirrored": losses(mirrored_run),
        "mirrored_resumed_on_one_device": mirrored_resumed_on_one_device,
        "single_resumed_mirrored": single_resumed_mirrored,
        "simultaneous": simultaneous_losses,
    }


def cli_outcome(arguments: list[str]) -> dict:
    """Exit code and stderr of one command line that is expected to stop at its argument checks."""
    from core.train import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            code = main(arguments)
        except SystemExit as exit_:
            code = exit_.code
    return {"exit_code": code, "stderr": stderr.getvalue()}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    use_two_logical_cpus()
    print(json.dumps(compare(Path(sys.argv[1]))))
