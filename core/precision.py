"""Which number format training computes in: ``--precision`` of ``python -m core.train``.

    float32          every layer in float32 (the default; the only fast choice on most CPUs)
    mixed_float16    layers compute in float16, weights stay float32, losses are scaled so small
                     gradients do not underflow; for NVIDIA GPUs with tensor cores
    mixed_bfloat16   layers compute in bfloat16, weights stay float32; for CPUs and accelerators
                     with bfloat16 arithmetic (AVX-512 BF16, AMX, TPUs)

Like the strategy, precision is how to run, not what to train: the weights, checkpoints and
the exported generator are float32 whichever is chosen, so a run resumes in any precision.
It is a Keras global dtype policy, set once per process before the networks are built; the
output layers of G and D stay float32 (``core.models``), as Keras' mixed-precision guide asks.

Measured (bench/speed.py --precision): on a 2-core AVX2 CPU without bfloat16 instructions the
tutorial step at 32 px ran about 6x slower in mixed_bfloat16 than in float32; on a 2-core AMD
EPYC with AVX-512 BF16 the trainer at 64 px ran 1.34x faster in mixed_bfloat16 (112 against
84 images/s). Keras keeps the policy per thread: set it in the thread that builds the networks.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
_CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 arithmetic


def use_precision(name: str) -> None:
    """Make every network built from now on in this process compute in `name`."""
    if name not in PRECISIONS:
        raise ValueError(f"--precision {name!r} is not one of {', '.join(PRECISIONS)}")
    import keras  # here, so the CLI can check its arguments before TensorFlow loads

    keras.config.set_dtype_policy(name)
    warning = slowness_warning(name)
    if warning:
        logger.warning(warning)


def current_precision() -> str:
    """The global policy's name: one of PRECISIONS for policies set through use_precision."""
    import keras

    return keras.config.dtype_policy().name


def needs_loss_scaling() -> bool:
    """float16 has too few exponent bits for small gradients; bfloat16 has float32's."""
    return current_precision() == "mixed_float16"


def slowness_warning(name: str) -> str:
    """Why `name` will likely train slower than float32 on this machine, or '' if it should not."""
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if name == "mixed_float16" and not has_gpu:
        return "--precision mixed_float16 without a GPU: CPUs emulate float16, expect it far slower than float32"
    if name == "mixed_bfloat16" and not has_gpu and not _cpu_has_bfloat16():
        return (
            "--precision mixed_bfloat16 on a CPU without bfloat16 instructions (AVX-512 BF16 or AMX): "
            "expect it several times slower than float32"
        )
    return ""


def _cpu_has_bfloat16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return True  # not Linux: cannot tell, so no warning
    return any(flag in flags for flag in _CPU_BFLOAT16_FLAGS)
