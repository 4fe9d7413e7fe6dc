"""Training on several devices or machines: the ``--strategy`` choice and what replicas share.

    default       one process, one device: the trainer's compiled step, as before
    mirrored      the GPUs (else the logical CPUs) of one machine: MirroredStrategy
    multi-worker  several machines, listed in TF_CONFIG: MultiWorkerMirroredStrategy

A strategy says how to run, not what to train, so it never enters TrainConfig or config.json:
a run trained mirrored opens and resumes anywhere. Under a strategy every replica trains on
its share of the global batch (``BatchShare``); randomness is drawn once for the global batch
and sliced, so a run on R replicas computes what a run on one device would.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi-worker")
TF_CONFIG_ENV = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")  # what MultiWorkerMirroredStrategy accepts in TF_CONFIG's cluster
_EXAMPLE_CLUSTER = {
    "cluster": {"worker": ["host-a:12345", "host-b:12345"]},
    "task": {"type": "worker", "index": 0},
}
TF_CONFIG_EXAMPLE = f"{TF_CONFIG_ENV}='{json.dumps(_EXAMPLE_CLUSTER)}' (index 1 on the second machine)"


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a TF_CONFIG cluster."""

    cluster: dict[str, list[str]]  # task type -> "host:port" addresses
    task_type: str
    task_index: int

    @property
    def is_chief(self) -> bool:
        return is_chief_task(self.task_type, self.task_index, self.cluster)


def is_chief_task(task_type: str | None, task_index: int | None, cluster: dict | None) -> bool:
    """The task that writes the run: 'chief' if the cluster has one, else worker 0 (TensorFlow's rule)."""
    if not task_type:
        return True  # no cluster: a single process is its own chief
    if task_type == "chief":
        return True
    return task_type == "worker" and task_index == 0 and "chief" not in (cluster or {})


def parse_tf_config(text: str | None) -> ClusterTask:
    """TF_CONFIG's JSON -> ClusterTask; a ValueError says what is wrong and shows a correct one."""
    where = f"--strategy multi-worker reads the cluster from the {TF_CONFIG_ENV} environment variable"
    if not text or not text.strip():
        raise ValueError(f"{where}, which is not set. Set it on every machine, e.g. {TF_CONFIG_EXAMPLE}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"{where}, which is not valid JSON ({error}). Write it like {TF_CONFIG_EXAMPLE}"
        raise ValueError(message) from None
    cluster = value.get("cluster") if isinstance(value, dict) else None
    task = value.get("task") if isinstance(value, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"{where}; it needs a 'cluster' and a 'task' object, like {TF_CONFIG_EXAMPLE}")
    for task_type, addresses in cluster.items():
        if task_type not in TASK_TYPES:
            raise ValueError(f"{where}; its cluster has '{task_type}' tasks, but only {TASK_TYPES} are used")
        if not isinstance(addresses, list) or not addresses or not all(map(_is_address, addresses)):
            raise ValueError(
                f"{where}; cluster['{task_type}'] must be a list of 'host:port' addresses, got {addresses!r}"
            )
    if "worker" not in cluster:
        raise ValueError(f"{where}; its cluster has no 'worker' list, like {TF_CONFIG_EXAMPLE}")
    task_type, task_index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise ValueError(f"{where}; task type {task_type!r} is not one of the cluster's {sorted(cluster)}")
    task_count = len(cluster[task_type])
    if isinstance(task_index, bool) or not isinstance(task_index, int) or not 0 <= task_index < task_count:
        raise ValueError(
            f"{where}; task index {task_index!r} must be this machine's position in cluster['{task_type}'], "
            f"0 to {task_count - 1}"
        )
    return ClusterTask(cluster, task_type, task_index)


def _is_address(value) -> bool:
    return isinstance(value, str) and ":" in value


@functools.cache
def make_strategy(name: str):
    """The strategy a --strategy name asks for; None for 'default' (the single-device step).

    Create it before anything else touches TensorFlow: MultiWorkerMirroredStrategy must
    configure the runtime's collectives first, and logical devices are fixed once it starts.
    One per process and name: a second MultiWorkerMirroredStrategy cannot be made, and a
    second MirroredStrategy would only repeat the first (and miss the networks traced for it).
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy {name!r} is not known; choose one of {', '.join(STRATEGIES)}")
    if name == "default":
        return None

    task = parse_tf_config(os.environ.get(TF_CONFIG_ENV)) if name == "multi-worker" else None

    import tensorflow as tf  # imported here so the CLI checks its arguments before TensorFlow loads

    if task is not None:
        sizes = {kind: len(addresses) for kind, addresses in task.cluster.items()}
        chief = " (the chief)" if task.is_chief else ""
        logger.info("multi-worker: task %s %d of %s%s", task.task_type, task.task_index, sizes, chief)
        return tf.distribute.MultiWorkerMirroredStrategy()

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    names = [device.name for device in devices]
    if len(names) == 1:
        # One device still trains correctly, like 'default', on one replica; refusing would only
        # make a script that says mirrored everywhere fail on a laptop.
        logger.warning("--strategy mirrored found only one device (%s); training on 1 replica", names[0])
    strategy = tf.distribute.MirroredStrategy(names)
    logger.info("mirrored: %d replicas on %s", strategy.num_replicas_in_sync, ", ".join(names))
    return strategy


def strategy_is_chief(strategy) -> bool:
    """Whether this process writes the run folder under the strategy (None: one process, yes)."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None:
        return True
    return is_chief_task(resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict())


def check_global_batch(batch_size: int, replica_count: int, minibatch_std: bool, group_size: int) -> None:
    """Refuse a global batch that cannot be split so that each replica trains what one device would."""
    if replica_count <= 1:
        return
    if batch_size % replica_count:
        raise ValueError(
            f"batch_size={batch_size} does not split evenly across {replica_count} replicas; "
            f"choose a multiple of {replica_count}"
        )
    if minibatch_std and batch_size % (group_size * replica_count):
        raise ValueError(
            f"batch_size={batch_size} gives each of {replica_count} replicas {batch_size // replica_count} "
            f"images, but minibatch std compares groups of {group_size}; choose a multiple of "
            f"{group_size * replica_count} or turn minibatch_std off"
        )


class BatchShare:
    """Which rows of the global batch one replica holds, and the way back to the whole batch.

    With minibatch std on, D's groups are rows (j, j + B/4, j + 2B/4, j + 3B/4) of a batch of B
    (``core.models.MinibatchStdDev`` reshapes to (4, B/4, ...)), so a replica takes the same
    columns of every quarter: each of its groups is then one whole group of the global batch.
    Built inside the replica function, where the replica context says which replica this is.
    """

    def __init__(self, global_batch: int, group_size: int) -> None:
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        self.replica_count = context.num_replicas_in_sync
        self.replica_id = context.replica_id_in_sync_group
        self.global_batch = global_batch
        self.group_size = group_size
        self.local_batch = global_batch // self.replica_count
        self._context = context

    def take(self, values):
        """(global_batch, ...) -> this replica's (local_batch, ...) rows."""
        import tensorflow as tf

        rest = tf.shape(values)[1:]
        columns = tf.reshape(values, tf.concat([[self.group_size, self.replica_count, -1], rest], 0))
        mine = tf.gather(columns, self.replica_id, axis=1)
        return tf.reshape(mine, tf.concat([[self.local_batch], rest], 0))

    def whole(self, local):
        """This replica's rows -> the global batch in its order, for a term that pairs rows of two replicas.

        The gradient flows into this replica's rows only; every replica computes the same term,
        so each counts it once in full and the summed gradients are the one-device gradient.
        """
        import tensorflow as tf

        rank = local.shape.rank
        # (replicas, rows, ...): every replica's rows, as values only.
        gathered = self._context.all_gather(tf.stop_gradient(local)[tf.newaxis], axis=0)
        is_mine = tf.reshape(tf.equal(tf.range(self.replica_count), self.replica_id), [-1] + [1] * rank)
        blocks = tf.where(is_mine, local[tf.newaxis], gathered)
        # (replicas, groups, rows per group, ...) -> (groups, replicas, ...): undoes take().
        rest = tf.shape(local)[1:]
        blocks = tf.reshape(blocks, tf.concat([[self.replica_count, self.group_size, -1], rest], 0))
        blocks = tf.transpose(blocks, [1, 0, 2, *range(3, 3 + rank - 1)])
        return tf.reshape(blocks, tf.concat([[self.global_batch], rest], 0))

    def scaled(self, loss):
        """A replica's mean loss over its rows, scaled so the replicas' gradients sum to the global mean's."""
        return loss / self.replica_count


def per_image_uniform(shape, seed, share: BatchShare | None = None, minval=0, maxval=None, dtype=None):
    """tf.random.stateless_uniform(shape, ...) with shape[0] the images of the batch.

    On a replica (share given) it draws for the whole global batch and keeps this replica's
    rows, so each image gets the same random number however the batch is split.
    """
    import tensorflow as tf

    dtype = dtype or tf.float32
    draw = xla_compiled(tf.random.stateless_uniform)
    if share is None:
        return draw(shape, seed, minval, maxval, dtype)
    global_shape = [share.global_batch, *shape[1:]]
    return share.take(draw(global_shape, seed, minval, maxval, dtype))


@functools.cache
def xla_compiled(function):
    """function compiled by XLA, for the random draws inside the (uncompiled) training step.

    For the same seed or generator state, XLA draws other random numbers than TensorFlow's
    own kernels (TF 2.21 on CPU: uniform floats, ranged integers and normal draws all differ).
    The step itself once was XLA-compiled; drawing through XLA keeps the numbers of those runs,
    and gives one device and many replicas the same. Under a strategy only functions that
    touch no variable, or only variables of one device, compile.
    """
    import tensorflow as tf

    return tf.function(function, jit_compile=True, autograph=False)
