"""Tests for core.distribute and training under tf.distribute: the --strategy choice and its
messages, TF_CONFIG and the chief, a mirrored run that computes what a one-device run does,
checkpoints that resume under either, and a two-process multi-worker run on localhost.

Two replicas need two logical CPU devices, which TensorFlow fixes when it starts; this
process started it long ago, so those runs happen in subprocesses (tests/replica_runs.py,
and ``python -m core.train`` for the workers).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import run_cli, tiny_config
from core.config import TrainConfig
from core.distribute import (
    STRATEGIES,
    TF_CONFIG_ENV,
    check_global_batch,
    is_chief_task,
    make_strategy,
    parse_tf_config,
)
from core.latent import generate_images, seeds_to_z
from core.models import build_generator, spread_out_weights
from core.pixel_cache import CACHE_DIR_ENV
from core.runs import RUNS_DIR_ENV, RunDir

TESTS_DIR = Path(__file__).resolve().parent
PROJECT_DIR = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))
from replica_runs import COMPARED_ARGS, RESUMED_FROM_STEP  # noqa: E402

# Measured largest relative differences over the 4 compared steps: 9e-8 (D loss) and 6e-7
# (G loss); after a resume across strategies, 6e-7. They are not 0 because the replicas add
# up partial sums in another order than the one-device step, and synchronised batch norm
# computes the variance as E[x^2] - E[x]^2 rather than in two passes: a few float32 ulps
# that grow a little each step. 1e-5 leaves a margin of 15. Drawing the random numbers
# differently is far outside it: augmentation drawn by TensorFlow's kernels instead of XLA
# moved the first D loss by 2e-4 relative, and z drawn so moved the first G loss by 11%.
RELATIVE_TOLERANCE = 1e-5
SUBPROCESS_TIMEOUT_SEC = 300  # a hung collective fails the test instead of the whole session


def subprocess_environment(folder: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != TF_CONFIG_ENV}
    environment[CACHE_DIR_ENV] = str(folder / "pixel_cache")
    environment[RUNS_DIR_ENV] = str(folder / "runs")
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return environment


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> dict:
    """tests/replica_runs.py's results: one-device and mirrored runs, resumes across them, refusals."""
    folder = tmp_path_factory.mktemp("replicas")
    finished = subprocess.run(
        [sys.executable, str(TESTS_DIR / "replica_runs.py"), str(folder)],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_SEC, env=subprocess_environment(folder),
        cwd=PROJECT_DIR,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-4000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def assert_same_losses(actual: dict, expected: dict, steps: list[float]) -> None:
    for name in ("d_loss", "g_loss"):
        chosen = [actual[name][actual["step"].index(step)] for step in steps]
        wanted = [expected[name][expected["step"].index(step)] for step in steps]
        np.testing.assert_allclose(chosen, wanted, rtol=RELATIVE_TOLERANCE, atol=0, err_msg=name)


# The strategy factory and TF_CONFIG.


def test_an_unknown_strategy_name_is_refused_naming_the_flag_and_the_choices():
    with pytest.raises(ValueError) as refused:
        make_strategy("tpu")

    assert "--strategy 'tpu'" in str(refused.value)
    assert all(name in str(refused.value) for name in STRATEGIES)


def test_multi_worker_without_tf_config_says_to_set_it_and_shows_one(monkeypatch):
    monkeypatch.delenv(TF_CONFIG_ENV, raising=False)

    with pytest.raises(ValueError) as refused:
        make_strategy("multi-worker")

    message = str(refused.value)
    assert "--strategy multi-worker" in message and "TF_CONFIG" in message and "not set" in message
    assert '"worker": ["host-a:12345", "host-b:12345"]' in message  # an example to copy


@pytest.mark.parametrize(
    ("text", "named_in_message"),
    [
        ("{cluster", "not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster' and a 'task'"),
        ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "ps", "index": 0}}', "'ps' tasks"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "'host:port' addresses"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "0 to 1"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief' is not one of"),
    ],
)
def test_a_bad_tf_config_is_refused_saying_what_is_wrong(text, named_in_message):
    with pytest.raises(ValueError) as refused:
        parse_tf_config(text)

    assert named_in_message in str(refused.value)
    assert "TF_CONFIG" in str(refused.value)


def test_a_two_machine_tf_config_gives_each_machine_its_task():
    cluster = {"worker": ["host-a:12345", "host-b:12345"]}

    first = parse_tf_config(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    second = parse_tf_config(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))

    assert (first.task_type, first.task_index, first.cluster) == ("worker", 0, cluster)
    assert first.is_chief and not second.is_chief


def test_the_chief_is_the_chief_task_else_worker_zero_else_a_lone_process():
    assert is_chief_task(None, None, None)  # no cluster at all
    assert is_chief_task("worker", 0, {"worker": ["a:1", "b:1"]})
    assert not is_chief_task("worker", 1, {"worker": ["a:1", "b:1"]})
    assert is_chief_task("chief", 0, {"chief": ["c:1"], "worker": ["a:1"]})
    assert not is_chief_task("worker", 0, {"chief": ["c:1"], "worker": ["a:1"]})


def test_a_global_batch_must_split_evenly_and_keep_minibatch_std_groups_whole():
    check_global_batch(16, 2, minibatch_std=True, group_size=4)  # 8 per replica: two groups
    check_global_batch(6, 2, minibatch_std=False, group_size=4)
    check_global_batch(7, 1, minibatch_std=True, group_size=4)  # one replica takes anything

    with pytest.raises(ValueError, match=r"batch_size=6 does not split evenly across 4 replicas; choose a"):
        check_global_batch(6, 4, minibatch_std=False, group_size=4)
    with pytest.raises(ValueError, match=r"choose a multiple of 8 or turn minibatch_std off"):
        check_global_batch(12, 2, minibatch_std=True, group_size=4)


def test_mirrored_on_a_machine_with_one_device_trains_on_one_replica_and_says_so(caplog):
    make_strategy.cache_clear()  # so this call makes the strategy, and logs
    with caplog.at_level(logging.WARNING, logger="core.distribute"):
        strategy = make_strategy("mirrored")

    assert strategy.num_replicas_in_sync == 1
    assert "--strategy mirrored found only one device" in caplog.text
    assert make_strategy("mirrored") is strategy  # one per process


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_worker_that_is_not_the_chief_resumes_a_run_but_leaves_its_folder_as_it_was(
    tmp_path, face_folder, monkeypatch
):
    from core.data import load_folder
    from core.trainer import Trainer

    dataset = load_folder(face_folder, 16)
    config = tiny_config(face_folder, steps=2, checkpoint_every_steps=1, sample_every_steps=1)
    run = RunDir.create(tmp_path / "runs", config, dataset)
    chief = Trainer(config, dataset.images, run)
    chief.run()
    chief.close()  # the worker below reuses its compiled step
    before = folder_contents(run.path)
    # Worker 1 of a cluster; which workers write does not depend on the strategy, so one device will do.
    monkeypatch.setattr("core.trainer.strategy_is_chief", lambda strategy: False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()

    worker = Trainer(config.replace(steps=3), dataset.images, run)
    assert worker.current_step == 2  # resumed from the run's own checkpoint
    assert worker.run() == "finished"

    assert worker.current_step == 3
    assert folder_contents(run.path) == before
    assert list((tmp_path / "scratch").iterdir()) == []  # its scratch copy is gone


# The command line's flag.


def test_a_bad_strategy_flag_exits_with_code_two_naming_the_choices(tmp_path, capsys):
    code, out, err = run_cli(["--strategy", "tpu", "--runs-dir", str(tmp_path / "runs")], capsys)

    assert code == 2 and out == ""
    assert "--strategy: invalid choice: 'tpu'" in err and "multi-worker" in err
    assert not (tmp_path / "runs").exists()


def test_multi_worker_without_tf_config_exits_with_code_two_and_makes_no_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TF_CONFIG_ENV, raising=False)

    code, _, err = run_cli(["--strategy", "multi-worker", "--runs-dir", str(tmp_path / "runs")], capsys)

    assert code == 2
    assert "TF_CONFIG" in err and "not set" in err
    assert not (tmp_path / "runs").exists()


def test_the_strategy_is_not_a_setting_of_the_run():
    assert "strategy" not in TrainConfig().to_dict()


def test_a_generator_with_synchronised_batch_norm_saves_loads_and_draws_like_a_plain_one(tmp_path):
    config = TrainConfig(resolution_px=16, width=8, latent_dim=8)
    plain = spread_out_weights(build_generator(config))
    synchronised = build_generator(config, synchronized_batch_norm=True)
    synchronised.set_weights(plain.get_weights())  # the same variables: checkpoints fit both
    synchronised.save(tmp_path / "generator.keras")

    loaded = keras.saving.load_model(tmp_path / "generator.keras", safe_mode=True)
    z = seeds_to_z(range(4), config.latent_dim)

    np.testing.assert_array_equal(generate_images(loaded, z), generate_images(plain, z))
    assert [weight.path for weight in synchronised.weights] == [weight.path for weight in plain.weights]


# Two replicas against one device (tests/replica_runs.py).


def test_a_mirrored_run_on_two_replicas_logs_the_losses_of_a_one_device_run(compared):
    assert compared["replicas"] == 2
    assert compared["single"]["step"] == compared["mirrored"]["step"] == [1.0, 2.0, 3.0, 4.0]

    assert_same_losses(compared["mirrored"], compared["single"], compared["single"]["step"])


def test_simultaneous_updates_on_two_replicas_log_the_losses_of_one_device(compared):
    single, mirrored = compared["simultaneous"]["single"], compared["simultaneous"]["mirrored"]
    assert single["step"] == mirrored["step"] == [1.0, 2.0, 3.0, 4.0]
    assert single["g_loss"] != compared["single"]["g_loss"]  # a different step from the alternating one

    assert_same_losses(mirrored, single, single["step"])


def test_the_mirrored_command_line_run_is_a_normal_run_that_opens_here(compared):
    assert compared["cli_exit_code"] == 0
    run = RunDir.open(compared["mirrored_run"])
    metadata = json.loads(run.config_path.read_text())

    assert set(metadata["config"]) == set(TrainConfig().to_dict())  # no trace of the strategy
    status = run.read_status()
    assert (status["state"], status["step"], status["total_steps"]) == ("finished", 4, 4)
    assert [step for step, _ in run.list_samples()] == [2, 4]
    checkpoints = sorted(path.name for path in run.checkpoints_dir.iterdir())
    assert checkpoints == ["step_000000", "step_000002", "step_000004"]
    generator = keras.saving.load_model(run.generator_path, safe_mode=True)
    assert generate_images(generator, seeds_to_z([0, 1], 8)).shape == (2, 16, 16, 3)


def test_a_mirrored_checkpoint_resumes_on_one_device_and_continues_the_same(compared):
    resumed = compared["mirrored_resumed_on_one_device"]

    assert resumed["started_at_step"] == RESUMED_FROM_STEP
    assert_same_losses(resumed, compared["mirrored"], [3.0, 4.0])
    assert_same_losses(resumed, compared["single"], [3.0, 4.0])


def test_a_one_device_checkpoint_resumes_mirrored_and_continues_the_same(compared):
    resumed = compared["single_resumed_mirrored"]

    assert resumed["started_at_step"] == RESUMED_FROM_STEP
    assert_same_losses(resumed, compared["single"], [3.0, 4.0])


@pytest.mark.parametrize(
    ("batch_size", "named_in_message"),
    [("5", "--batch-size=5 does not split evenly across 2 replicas"), ("12", "turn --minibatch-std off")],
)
def test_a_global_batch_two_replicas_cannot_split_exits_with_code_two(compared, batch_size, named_in_message):
    refused = compared["refused"][batch_size]

    assert refused["exit_code"] == 2
    assert named_in_message in refused["stderr"]


# Two workers on localhost.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_two_workers_on_localhost_train_one_run_that_only_the_chief_writes(compared, tmp_path):
    faces = Path(compared["mirrored_run"]).parent.parent / "faces"  # the compared run's photos
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    scratch = tmp_path / "scratch"  # the workers' temporary folders, which must be gone at the end
    scratch.mkdir()
    runs_dir = tmp_path / "runs"  # both workers are told the same one: only the chief may write there
    arguments = ["--strategy", "multi-worker", "--data", str(faces), "--runs-dir", str(runs_dir)]
    arguments += COMPARED_ARGS
    workers = []
    for index in range(2):
        environment = subprocess_environment(tmp_path / f"worker{index}") | {
            TF_CONFIG_ENV: json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TMPDIR": str(scratch),
        }
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "core.train", *arguments], cwd=PROJECT_DIR, env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    try:
        outputs = [worker.communicate(timeout=SUBPROCESS_TIMEOUT_SEC) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()

    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-4000:]
    (run_path,) = runs_dir.iterdir()  # one run: the second worker wrote none
    assert outputs[0][0].strip().splitlines()[-1] == str(run_path)
    assert str(runs_dir) not in outputs[1][0]
    run = RunDir.open(run_path)
    assert run.read_status()["state"] == "finished"
    metrics = {name: values.tolist() for name, values in run.read_metrics().items()}
    assert_same_losses(metrics, compared["single"], [1.0, 2.0, 3.0, 4.0])
    assert list(scratch.iterdir()) == []  # the second worker's scratch copy is gone
