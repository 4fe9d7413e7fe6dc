"""Resident memory over repeated training runs and generator loads in one process.

    python bench/memory_cycles.py --resolution 64 --cycles 10 --steps 20

Each cycle starts a background job as the dashboard does, lets it finish, then loads
its exported generator twice (as the Latent space page would). Prints resident memory
after every cycle and the growth from the second cycle to the last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import psutil

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from core.config import TrainConfig  # noqa: E402  (after the path is set)
from core.jobs import JobManager, wait_for  # noqa: E402
from core.runs import RunDir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    config = TrainConfig(
        data_dir=str(REPOSITORY_ROOT / "GANs_dataset"),
        resolution_px=args.resolution,
        steps=args.steps,
        sample_every_steps=args.steps // 2,
        checkpoint_every_steps=args.steps // 2,
    )
    process = psutil.Process()
    manager = JobManager()
    resident_mb = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for cycle in range(args.cycles):
            job, _ = manager.start(config, runs_dir=Path(runs_dir))
            snapshot = wait_for(job, ("finished", "failed", "stopped"), timeout_sec=3600)
            if snapshot.state != "finished":
                raise SystemExit(f"cycle {cycle + 1} ended {snapshot.state}: {snapshot.error}")
            for _ in range(2):
                RunDir(snapshot.run_path).load_generator()
            resident_mb.append(process.memory_info().rss / 2**20)
            print(f"cycle {cycle + 1}: {resident_mb[-1]:.0f} MB resident", flush=True)

    growth = (resident_mb[-1] - resident_mb[1]) / resident_mb[1]
    print(f"{args.resolution} px: {resident_mb[1]:.0f} MB after cycle 2, {resident_mb[-1]:.0f} MB after cycle "
          f"{args.cycles}: {growth:+.1%}")


if __name__ == "__main__":
    main()
