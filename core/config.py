"""TrainConfig: every setting a user can change, validated once, saved as JSON.

Pages, the command line and run directories all build or read this one dataclass, so
a run can always be reproduced from its ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIT_MODES = ("pad", "crop", "face")  # pad (the original project), centre crop, crop around the face
# Colour of padding bars and of transparent areas, as RGB.
BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128)}
# Settings that shape the networks: a run's checkpoints only fit a model built with these.
ARCHITECTURE_FIELDS = ("resolution_px", "latent_dim", "width", "spectral_norm", "minibatch_std")
AUGMENTATIONS = ("color", "translation", "cutout")
LOSSES = ("non_saturating", "hinge", "least_squares", "wgan_gp")
MIN_RESOLUTION_PX = 16
MAX_RESOLUTION_PX = 256
MAX_CHANNELS = 512  # cap on the widest layer, as in the classic 64x64 DCGAN
AUTO_WIDTH = 0  # width=0: the width default_width gives for the resolution
AUTO_MODE_SEEKING = -1.0  # mode_seeking=-1: the weight default_mode_seeking gives for the resolution
AUTO_COVERAGE_WEIGHT = -1.0  # coverage_weight=-1: the weight default_coverage_weight gives for the resolution
_SMALL_RESOLUTION_PX = 32  # up to here the first defaults below, above it the second


def default_width(resolution_px: int) -> int:
    """The network width for a resolution when none is chosen.

    Measured by bench/quality.py at ten CPU-minutes (README): width 32 at 32 px; at 48 px,
    width 16 trains twice the steps of 32 and reached a lower SWD (0.055 against 0.083).
    """
    return 32 if resolution_px <= _SMALL_RESOLUTION_PX else 16


def default_mode_seeking(resolution_px: int) -> float:
    """The mode-seeking weight for a resolution when none is chosen.

    With the default widths and the coverage term with its claim margin, the weight that kept
    the faces' diversity (MS-SSIM) within 10% of the photos' own on two seeds in bench/quality.py
    (README): 0.3 at 32 px (-1% and +9%; 0.2 gave +7% and +20%), 0.2 at 48 px (+8% and -1%;
    0.1 gave +22% and +1%). The claim margin pulls every face towards its own photo, which
    makes faces more alike, so it needs more mode seeking than the terms before it did.
    """
    return 0.3 if resolution_px <= _SMALL_RESOLUTION_PX else 0.2


def default_coverage_weight(resolution_px: int) -> float:
    """The coverage term's weight for a resolution when none is chosen.

    Measured by bench/quality.py (README), where single runs vary widely. With a face also paying
    when another photo is nearer than its claim (losses.CLAIM_MARGIN), 8 served both resolutions
    measured: at 32 px it covered 90% of the photos in two seeds, with SWD 0.056 and 0.051 and faces
    7% and 20% more alike than the photos (MS-SSIM), where 12 covered 88-89% with SWD 0.094 and
    0.065 at +23% and +15%; at 48 px (with mode seeking 0.1) it covered 79% and 86% in two seeds,
    where 5 covered 78%. The resolution stays an argument so that a size measured apart can get its
    own weight, as width and mode seeking do.
    """
    del resolution_px  # the same weight was best at every resolution measured so far
    return 8.0


def supported_resolutions() -> list[int]:
    """Square sizes s * 2**k with s in 4..7 and k >= 2, within the allowed range.

    G starts from an s x s map and doubles k times, so these are the sizes it can reach.
    """
    sizes = {
        start * 2**doublings
        for start in range(4, 8)
        for doublings in range(2, 8)
        if MIN_RESOLUTION_PX <= start * 2**doublings <= MAX_RESOLUTION_PX
    }
    return sorted(sizes)


def resolution_levels(resolution_px: int) -> tuple[int, int]:
    """Split a resolution into (start size s, number of doublings k)."""
    for doublings in range(7, 1, -1):
        start, remainder = divmod(resolution_px, 2**doublings)
        if remainder == 0 and 4 <= start <= 7:
            return start, doublings
    raise ValueError(
        f"resolution_px={resolution_px} is not supported; "
        f"choose one of {supported_resolutions()}"
    )


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings. Build it with keywords; invalid values raise ValueError."""

    data_dir: str = "GANs_dataset"
    resolution_px: int = 32
    fit_mode: str = "pad"
    background: str = "black"  # padding and transparency; black as in the original project
    exclude: tuple[str, ...] = ()  # files (relative to data_dir, '/'-separated) left out by the user
    keep_duplicates: bool = False  # exact and near-duplicate photos are trained on once unless True
    batch_size: int = 64
    steps: int = 2000  # total steps; one step = one D update and one G update
    learning_rate_g: float = 2e-4
    learning_rate_d: float = 2e-4
    beta1: float = 0.5  # Adam beta1; 0.5 as in Radford et al., 0.9 makes GANs oscillate
    latent_dim: int = 100
    width: int = AUTO_WIDTH  # channels of G's last hidden layer and D's first, doubled per level;
    # 0 picks default_width(resolution_px) and the config keeps that number. 32 trains 3.5x faster
    # than the classic 64 on a CPU and suffices for a few hundred photos.
    ema_decay: float = 0.99  # averaged G for samples and export; 0 turns it off (0.99 won bench/quality.py)
    augment: tuple[str, ...] = ("color", "translation")  # DiffAugment policy; () = off; cutout slowed learning
    ada_target: float = 0.0  # 0: augment every image; else steer the probability ADA-style to this r
    loss: str = "non_saturating"
    r1_gamma: float = 0.0  # R1 penalty weight on real images; 0 = off
    spectral_norm: bool = False  # spectral normalisation of D's layers
    minibatch_std: bool = True  # D also sees how much a group of images differ, so G cannot collapse
    label_smoothing: float = 0.0  # one-sided: real target 1 - this
    d_steps_per_g: int = 1  # D updates per G update
    simultaneous_updates: bool = False  # D and G step from one forward pass (the TF tutorial's way,
    # fewer passes per step); False: G steps against the D just updated
    mode_seeking: float = AUTO_MODE_SEEKING  # weight of MSGAN's term that pushes different z to different
    # faces; 0 = off; -1 picks default_mode_seeking(resolution_px) and the config keeps that number
    coverage_weight: float = AUTO_COVERAGE_WEIGHT  # weight of the term that pulls each generated face
    # towards the photo it claims, every photo claimed equally often, so that no photo is left out;
    # 0 = off; -1 picks default_coverage_weight(resolution_px) and the config keeps that number
    metrics_every_steps: int = 500  # quality metrics (SWD, diversity, copies) on the averaged G; 0 = off
    seed: int = 0
    log_every_steps: int = 10
    sample_every_steps: int = 100
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    grid_size: int = 4  # the fixed-noise grid is grid_size x grid_size faces

    def __post_init__(self) -> None:
        self._check_int("resolution_px", MIN_RESOLUTION_PX, MAX_RESOLUTION_PX)
        resolution_levels(self.resolution_px)
        if self.fit_mode not in FIT_MODES:
            raise ValueError(f"fit_mode={self.fit_mode!r} must be one of {FIT_MODES}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background={self.background!r} must be one of {tuple(BACKGROUNDS)}")
        if isinstance(self.exclude, str) or not all(isinstance(name, str) for name in self.exclude):
            raise ValueError(f"exclude={self.exclude!r} must be a list of file names")
        object.__setattr__(self, "exclude", tuple(sorted(set(self.exclude))))  # JSON gives a list
        if not isinstance(self.keep_duplicates, bool):
            raise ValueError(f"keep_duplicates={self.keep_duplicates!r} must be true or false")
        if not str(self.data_dir).strip():
            raise ValueError("data_dir must name a folder of images")
        self._check_int("batch_size", 1, 1024)
        self._check_int("steps", 1, 10_000_000)
        self._check_float("learning_rate_g", 1e-7, 1.0)
        self._check_float("learning_rate_d", 1e-7, 1.0)
        self._check_float("beta1", 0.0, 0.999)
        self._check_int("latent_dim", 2, 1024)
        if self.width == AUTO_WIDTH and not isinstance(self.width, bool):
            object.__setattr__(self, "width", default_width(self.resolution_px))
        self._check_int("width", 4, MAX_CHANNELS)
        self._check_float("ema_decay", 0.0, 0.9999)
        if isinstance(self.augment, str) or not set(self.augment) <= set(AUGMENTATIONS):
            raise ValueError(f"augment={self.augment!r} must be a list drawn from {AUGMENTATIONS}")
        object.__setattr__(self, "augment", tuple(name for name in AUGMENTATIONS if name in self.augment))
        self._check_float("ada_target", 0.0, 0.99)
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r} must be one of {LOSSES}")
        self._check_float("r1_gamma", 0.0, 100.0)
        if not isinstance(self.spectral_norm, bool):
            raise ValueError(f"spectral_norm={self.spectral_norm!r} must be true or false")
        if not isinstance(self.minibatch_std, bool):
            raise ValueError(f"minibatch_std={self.minibatch_std!r} must be true or false")
        self._check_float("label_smoothing", 0.0, 0.5)
        self._check_int("d_steps_per_g", 1, 10)
        if not isinstance(self.simultaneous_updates, bool):
            raise ValueError(f"simultaneous_updates={self.simultaneous_updates!r} must be true or false")
        if self.mode_seeking == AUTO_MODE_SEEKING and not isinstance(self.mode_seeking, bool):
            object.__setattr__(self, "mode_seeking", default_mode_seeking(self.resolution_px))
        self._check_float("mode_seeking", 0.0, 10.0)
        if self.coverage_weight == AUTO_COVERAGE_WEIGHT and not isinstance(self.coverage_weight, bool):
            object.__setattr__(self, "coverage_weight", default_coverage_weight(self.resolution_px))
        self._check_float("coverage_weight", 0.0, 100.0)
        self._check_int("metrics_every_steps", 0, 1_000_000)
        self._check_int("seed", 0, 2**31 - 1)
        self._check_int("log_every_steps", 1, 100_000)
        self._check_int("sample_every_steps", 1, 1_000_000)
        self._check_int("checkpoint_every_steps", 1, 1_000_000)
        self._check_int("keep_checkpoints", 1, 100)
        self._check_int("grid_size", 1, 16)

    def _check_int(self, name: str, low: int, high: int) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}={value!r} must be a whole number")
        if not low <= value <= high:
            raise ValueError(f"{name}={value} must be between {low} and {high}")

    def _check_float(self, name: str, low: float, high: float) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}={value!r} must be a number")
        if not low <= float(value) <= high:
            raise ValueError(f"{name}={value} must be between {low} and {high}")

    @property
    def grid_count(self) -> int:
        return self.grid_size * self.grid_size

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed, validated again. The width and mode-seeking weight stay
        the numbers they are unless changed too (AUTO_WIDTH, AUTO_MODE_SEEKING follow the resolution)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a dict; unknown keys are an error so typos never pass silently."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    def resolved_data_dir(self, base_dir: Path) -> Path:
        """The data folder as an absolute path; relative paths are taken from base_dir."""
        folder = Path(self.data_dir).expanduser()
        return folder if folder.is_absolute() else base_dir / folder
