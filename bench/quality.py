"""Which training tricks pay on a small photo folder, at equal CPU time.

    python bench/quality.py GANs_dataset --minutes 10
    python bench/quality.py /tmp/lfw48 --minutes 10 --resolution 48 --fit crop

Trains each configuration below for the same CPU time (user + system seconds of its own
process, so a busy machine does not favour anyone), then scores the averaged generator
(or G, where averaging is off) on 256 fixed seeds with ``core.quality``: SWD against the
photos beside the photos' own two-halves baseline, MS-SSIM diversity beside the photos'
(lower is more varied), the share of photos that are the nearest photo of some generated
image, and the share of near copies. Each configuration runs in a fresh process.

    python bench/quality.py --make-lfw-folder /tmp/lfw48   # the second test folder
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from core.config import (  # noqa: E402  (after the path change above)
    TrainConfig, default_coverage_weight, default_mode_seeking, default_width,
)
from core.precision import PRECISIONS  # noqa: E402

DEFAULTS = TrainConfig()
# The original project's DCGAN: no augmentation, no averaging, no regulariser. Width 32 at every
# resolution, as measured before the default width came to depend on the resolution.
PLAIN = {
    "augment": [], "ema_decay": 0.0, "r1_gamma": 0.0, "minibatch_std": False, "mode_seeking": 0.0,
    "width": 32, "coverage_weight": 0.0, "simultaneous_updates": False,
}
WITH_AUGMENTATION = {**PLAIN, "augment": list(DEFAULTS.augment)}
WITH_AVERAGING = {**WITH_AUGMENTATION, "ema_decay": DEFAULTS.ema_decay}
CONFIGURATIONS = {
    "plain DCGAN": PLAIN,
    "+ augmentation": WITH_AUGMENTATION,
    "+ augmentation + EMA": WITH_AVERAGING,
    "+ augmentation + EMA + R1 (gamma 1)": {**WITH_AVERAGING, "r1_gamma": 1.0},
    "default": {},
}
LFW_FACE_COUNT = 100  # the first 100 entries of skimage's lfw_subset are faces
LFW_SIDE_PX = 64


def train_one(settings: dict, minutes: float, steps: int | None = None, precision: str = "float32") -> dict:
    """In this process: train for `minutes` of CPU time (or `steps`), then score the sampling generator."""
    from core.config import TrainConfig
    from core.data import load_for_config
    from core.precision import use_precision

    use_precision(precision)  # this thread builds and trains the networks
    from core.quality import draw_quality_sample, measure, training_reference
    from core.runs import RunDir
    from core.trainer import Trainer, TrainingHooks

    config = TrainConfig(
        steps=steps or 10_000_000, sample_every_steps=1_000_000, checkpoint_every_steps=1_000_000,
        metrics_every_steps=0, log_every_steps=100, **settings,
    )
    dataset = load_for_config(config, REPOSITORY_ROOT)
    with tempfile.TemporaryDirectory() as runs_dir:
        trainer = Trainer(config, dataset.images, RunDir.create(Path(runs_dir), config, dataset))
        budget_sec = minutes * 60
        started = time.process_time()

        class OutOfTime(TrainingHooks):
            def should_stop(self) -> bool:
                return steps is None and time.process_time() - started > budget_sec

        trainer.run(OutOfTime())
        steps_done, cpu_minutes = int(trainer.step), (time.process_time() - started) / 60
        generated = draw_quality_sample(trainer.sampling_generator, config.latent_dim)
    row = measure(steps_done, generated, dataset.images, training_reference(dataset.images))
    return {"steps": steps_done, "cpu_minutes": cpu_minutes, "images": dataset.count, **row.as_row()}


def make_lfw_folder(folder: Path) -> None:
    """The default set's source, another way: 100 LFW faces as 64 px PNGs (train them at 48)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    faces = data.lfw_subset()[:LFW_FACE_COUNT]
    for index, face in enumerate(faces):
        picture = Image.fromarray(np.rint(face * 255).astype(np.uint8)).resize(
            (LFW_SIDE_PX, LFW_SIDE_PX), Image.Resampling.LANCZOS
        )
        picture.save(folder / f"lfw_{index:03d}.png")
    print(f"wrote {len(faces)} faces to {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU minutes per configuration")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--fit", default="pad")
    parser.add_argument("--only", action="append", help="run just these configurations (repeatable)")
    parser.add_argument(
        "--steps", type=int,
        help="train each configuration this many steps instead of --minutes of CPU time: to compare with rows "
        "measured on a faster machine, give the steps a configuration reached there",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=JSON",
        help="change a TrainConfig field in every configuration, e.g. --set coverage_weight=8 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="the runs' seed (weights, noise, batches)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="as python -m core.train's")
    parser.add_argument("--make-lfw-folder", type=Path, metavar="FOLDER")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, JSON
    args = parser.parse_args()

    if args.make_lfw_folder:
        make_lfw_folder(args.make_lfw_folder)
        return
    if args.one:
        job = json.loads(args.one)
        print(json.dumps(train_one(job["settings"], job["minutes"], job.get("steps"), job.get("precision", "float32"))))
        return
    if args.folder is None:
        parser.error("give a folder of photos")

    overrides = {field: json.loads(value) for field, _, value in (change.partition("=") for change in args.set)}
    results = {}
    for name, changes in CONFIGURATIONS.items():
        if args.only and name not in args.only:
            continue
        settings = {"data_dir": str(args.folder.resolve()), "resolution_px": args.resolution, "fit_mode": args.fit,
                    "seed": args.seed, **changes, **overrides}
        job = json.dumps({"settings": settings, "minutes": args.minutes, "steps": args.steps, "precision": args.precision})
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        finished = subprocess.run(
            [sys.executable, __file__, "--one", job], capture_output=True, text=True, env=environment, check=False
        )
        if finished.returncode != 0:
            print(finished.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        results[name] = json.loads(finished.stdout.strip().splitlines()[-1])
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)

    any_result = next(iter(results.values()))
    print(f"\n{args.folder.name}: {any_result['images']} images at {args.resolution} px, "
          f"{f'{args.steps} steps' if args.steps else f'{args.minutes:g} CPU minutes'} per configuration, "
          f"seed {args.seed}, {args.precision}\n")
    print(f"default: augmentation {', '.join(DEFAULTS.augment) or 'off'}, EMA {DEFAULTS.ema_decay}, "
          f"minibatch std {'on' if DEFAULTS.minibatch_std else 'off'}, "
          f"mode seeking {default_mode_seeking(args.resolution)}, "
          f"coverage {default_coverage_weight(args.resolution)}, "
          f"R1 {DEFAULTS.r1_gamma}, loss {DEFAULTS.loss}, "
          f"width {default_width(args.resolution)}, batch {DEFAULTS.batch_size}, "
          f"learning rates G {DEFAULTS.learning_rate_g} / D {DEFAULTS.learning_rate_d}\n")
    if overrides:
        print(f"changed in every configuration: {overrides}\n")
    print("| configuration | steps | SWD | SWD photos vs photos | MS-SSIM | MS-SSIM photos | photos covered "
          "| near copies |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        print(
            f"| {name} | {result['steps']} | {result['swd']:.3f} | {result['swd_baseline']:.3f} | "
            f"{result['diversity']:.3f} | {result['diversity_training']:.3f} | "
            f"{1 - result['coverage_ignored_fraction']:.0%} | {result['near_copy_fraction']:.0%} |"
        )


if __name__ == "__main__":
    main()
