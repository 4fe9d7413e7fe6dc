"""How long loading a folder of camera-sized photos takes, and how much memory it needs.

    python bench/load_photos.py --count 1000            # makes the photos once, then measures
    python bench/load_photos.py --folder DIR --resolution 64

Synthetic photos (smooth random scenes, about 3000x4000 in both orientations, nine in
ten JPEG, some with an EXIF rotation, one in ten PNG) are written once to --folder. Each measurement then runs in a
fresh Python process so its peak resident memory is its own: first with an empty pixel
cache (cold), then again with the cache that run filled (warm).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
PHOTO_SIZES = ((4000, 3000), (3000, 4000), (4032, 3024), (3024, 4032))
EXIF_ORIENTATION_TAG = 0x0112


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    """Write `count` smooth random JPEGs; every seventh carries an EXIF rotation."""
    folder.mkdir(parents=True, exist_ok=True)
    random = np.random.default_rng(seed)
    for index in range(count):
        width, height = PHOTO_SIZES[index % len(PHOTO_SIZES)]
        coarse = random.integers(0, 256, size=(height // 200, width // 200, 3), dtype=np.uint8)
        # Every tenth is a PNG, which has no reduced-size decoding: the slow, memory-hungry case.
        path = folder / f"photo_{index:04d}.{'png' if index % 10 == 9 else 'jpg'}"
        if path.exists():
            continue  # made by an earlier run; the random stream stays the same either way
        photo = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        exif = Image.Exif()
        if index % 7 == 0:
            exif[EXIF_ORIENTATION_TAG] = 6
        if path.suffix == ".png":
            photo.save(path, compress_level=1)
        else:
            photo.save(path, quality=90, exif=exif)
        if (index + 1) % 100 == 0:
            print(f"made {index + 1}/{count} photos", file=sys.stderr)


def measure_once(folder: Path, resolution_px: int, cache_dir: Path) -> dict:
    """Load the folder in a new process; its wall time and peak resident memory."""
    code = (
        "import json, resource, sys, time\n"
        "from core.data import load_folder\n"
        "from core.pixel_cache import PixelCache\n"
        "started = time.perf_counter()\n"
        f"dataset = load_folder({str(folder)!r}, {resolution_px}, pixel_cache=PixelCache({str(cache_dir)!r}))\n"
        "elapsed = time.perf_counter() - started\n"
        "peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': elapsed, 'images': dataset.count, 'peak_rss_mb': peak_mb}))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY_ROOT, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "dcgan-bench-photos")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()

    started = time.perf_counter()
    make_photos(args.folder, args.count)
    size_gb = sum(path.stat().st_size for path in args.folder.glob("photo_*")) / 1e9
    print(f"{args.count} photos, {size_gb:.2f} GB, ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    with tempfile.TemporaryDirectory() as cache_dir:
        cold = measure_once(args.folder, args.resolution, Path(cache_dir))
        warm = measure_once(args.folder, args.resolution, Path(cache_dir))

    print("| cache | images | seconds | images/s | peak memory (MB) |")
    print("|---|---|---|---|---|")
    for name, result in (("cold", cold), ("warm", warm)):
        rate = result["images"] / result["seconds"]
        print(f"| {name} | {result['images']} | {result['seconds']:.1f} | {rate:.0f} | {result['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
