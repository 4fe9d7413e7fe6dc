"""How long the Latent space page takes, server side, to redraw a 4x4 grid of seeds after a slider move.

    python bench/latent_speed.py                 # a freshly built 64 px generator, TrainConfig defaults
    python bench/latent_speed.py --run runs/ID   # a trained run's generator instead

One repetition does what a truncation or direction slider move costs the page: the 16
seeds' z, truncation (resample, the slower method), a GANSpace direction offset, G's
inference, then each face enlarged to the page's size and encoded as st.image encodes a
numpy picture (JPEG, quality 100). Each repetition uses another psi, so no cache helps.
The compiled path (core.latent.compiled_inference, what the page uses) is timed against
G called eagerly (core.latent.generate_images). The target is under 100 ms on a 2-core CPU.

Fresh DCGAN weights draw flat grey pictures, which encode faster than faces; the weights
are redrawn larger (core.models.spread_out_weights) so the pictures have texture.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GRID_SEEDS = range(16)
FACE_SIDE_PX = 128  # pages/3_Latent_space.py FACE_SIDE_PX
WARM_UP_REPEATS = 5
TARGET_MS = 100.0


def textured_generator():
    """A 64 px G with the default width, its weights redrawn so its pictures are not flat."""
    from core.config import TrainConfig
    from core.models import build_generator, spread_out_weights

    return spread_out_weights(build_generator(TrainConfig(resolution_px=64)))


def redraw_once(draw, directions, latent_dim: int, psi: float) -> None:
    """What one slider move costs the page for the grid of seeds."""
    from PIL import Image

    from core.imaging import enlarge
    from core.latent import seeds_to_truncated_z

    z = seeds_to_truncated_z(GRID_SEEDS, latent_dim, psi, "resample")
    z = z + directions.offset([1.5, -0.5, 0.0, 0.25, 0.0])
    for face in draw(z):
        buffer = io.BytesIO()
        Image.fromarray(enlarge(face, FACE_SIDE_PX)).save(buffer, format="JPEG", quality=100)


def time_redraws(draw, directions, latent_dim: int, repeats: int) -> np.ndarray:
    """Milliseconds per redraw, after WARM_UP_REPEATS untimed ones."""
    psis = np.linspace(0.3, 0.99, WARM_UP_REPEATS + repeats)
    times_ms = []
    for index, psi in enumerate(psis):
        start = time.perf_counter()
        redraw_once(draw, directions, latent_dim, float(psi))
        if index >= WARM_UP_REPEATS:
            times_ms.append((time.perf_counter() - start) * 1000)
    return np.asarray(times_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run folder whose generator.keras to use")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    from core.directions import find_directions
    from core.latent import compiled_inference, generate_images
    from core.runs import RunDir

    generator = RunDir.open(args.run).load_generator() if args.run else textured_generator()
    latent_dim, resolution_px = int(generator.input_shape[-1]), int(generator.output_shape[1])
    start = time.perf_counter()
    directions = find_directions(generator)
    directions_sec = time.perf_counter() - start

    compiled = time_redraws(compiled_inference(generator), directions, latent_dim, args.repeats)
    eager = time_redraws(lambda z: generate_images(generator, z), directions, latent_dim, args.repeats)

    verdict = "meets" if np.median(compiled) < TARGET_MS else "misses"
    print(
        f"4x4 grid redraw at {resolution_px} px, z {latent_dim}: median {np.median(compiled):.0f} ms, "
        f"p95 {np.percentile(compiled, 95):.0f} ms (eager G: median {np.median(eager):.0f} ms, "
        f"p95 {np.percentile(eager, 95):.0f} ms) over {args.repeats} redraws; "
        f"{verdict} the {TARGET_MS:.0f} ms target; directions found in {directions_sec:.1f} s; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
