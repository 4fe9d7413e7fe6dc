"""Tests for core.train, the command line: a tiny run end to end, the exported generator,
what is printed, argument errors, and resuming a run to more steps.

The shared `tiny_run` fixture is a finished 4-step run made with TINY_RUN_ARGS; tests that
change a run work on a copy of it.
"""

from __future__ import annotations

import json
import shutil
import signal

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_RUN_ARGS, run_cli, write_blob_faces
from core.latent import generate_images, seeds_to_z
from core.runs import RunDir

TINY_STEPS = 4
TINY_RESOLUTION_PX = 16
TINY_LATENT_DIM = 8
# main() points Ctrl+C at its own run; read before any test runs, so each test can put them back.
ORIGINAL_SIGNAL_HANDLERS = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    yield
    for number, handler in ORIGINAL_SIGNAL_HANDLERS.items():
        signal.signal(number, handler)


def test_a_tiny_run_writes_every_file_of_a_finished_run(tiny_run):
    config = tiny_run.read_config()
    assert (config.resolution_px, config.width, config.latent_dim, config.steps) == (16, 8, 8, TINY_STEPS)
    metadata = json.loads(tiny_run.config_path.read_text())
    assert metadata["dataset"]["image_count"] == 12
    assert set(metadata["versions"]) >= {"tensorflow", "keras", "numpy", "python"}

    assert tiny_run.read_metrics()["step"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert [step for step, _ in tiny_run.list_samples()] == [2, 4]
    assert all(Image.open(path).mode == "RGB" for _, path in tiny_run.list_samples())
    # Step 0 (so a first bad step can roll back), then every checkpoint interval; keep_checkpoints=3.
    assert sorted(path.name for path in tiny_run.checkpoints_dir.iterdir()) == [
        "step_000000",
        "step_000002",
        "step_000004",
    ]
    assert all((folder / "complete.json").is_file() for folder in tiny_run.checkpoints_dir.iterdir())
    assert tiny_run.generator_path.is_file()
    status = tiny_run.read_status()
    assert (status["state"], status["step"], status["total_steps"]) == ("finished", TINY_STEPS, TINY_STEPS)
    assert not list(tiny_run.path.rglob(".*tmp*")), "a temporary file was left behind"


def test_the_exported_generator_loads_in_safe_mode_and_makes_pictures_of_the_run_size(tiny_run):
    generator = keras.saving.load_model(tiny_run.generator_path, safe_mode=True)

    pictures = generate_images(generator, seeds_to_z([0, 1, 2], TINY_LATENT_DIM))

    assert generator.input_shape == (None, TINY_LATENT_DIM)
    assert pictures.shape == (3, TINY_RESOLUTION_PX, TINY_RESOLUTION_PX, 3)
    assert pictures.dtype == np.uint8


def test_the_last_line_printed_is_the_new_run_directory(tmp_path, capsys):
    write_blob_faces(tmp_path / "faces", 8)
    arguments = ["--data", str(tmp_path / "faces"), "--runs-dir", str(tmp_path / "runs"), *TINY_RUN_ARGS]

    code, out, _ = run_cli([*arguments, "--steps", "1"], capsys)

    (run_path,) = (tmp_path / "runs").iterdir()
    assert code == 0
    assert out.strip().splitlines()[-1] == str(run_path)
    assert RunDir.open(run_path).read_status()["state"] == "finished"


@pytest.mark.parametrize(
    ("arguments", "named_in_message"),
    [
        (["--resolution", "36"], "--resolution=36 is not supported"),
        (["--resolution", "300"], "--resolution=300 must be between"),
        (["--batch-size", "0"], "--batch-size=0"),
        (["--fit", "stretch"], "--fit: invalid choice: 'stretch'"),
        (["--steps", "many"], "--steps: invalid int value: 'many'"),
    ],
)
def test_a_bad_setting_exits_with_code_two_naming_it(tmp_path, capsys, arguments, named_in_message):
    write_blob_faces(tmp_path / "faces", 2)

    code, out, err = run_cli(["--data", str(tmp_path / "faces"), *arguments], capsys)

    assert code == 2
    assert named_in_message in err
    assert out == ""
    assert not (tmp_path / "runs").exists()


def test_a_missing_data_folder_exits_with_code_two_naming_it(tmp_path, capsys):
    missing = tmp_path / "holiday_photos"

    code, _, err = run_cli(["--data", str(missing), "--runs-dir", str(tmp_path / "runs")], capsys)

    assert code == 2
    assert f"Folder '{missing}' does not exist" in err
    assert not (tmp_path / "runs").exists()


def test_resume_refuses_settings_other_than_steps(tiny_run, tmp_path, capsys):
    copy = shutil.copytree(tiny_run.path, tmp_path / tiny_run.run_id)

    code, _, err = run_cli(["--resume", str(copy), "--steps", "6", "--width", "16"], capsys)

    assert code == 2
    assert "remove --width" in err
    assert RunDir(copy).read_status()["step"] == TINY_STEPS


def test_resume_of_a_folder_that_is_not_a_run_exits_with_code_two_naming_it(tmp_path, capsys):
    (tmp_path / "not_a_run").mkdir()

    code, _, err = run_cli(["--resume", str(tmp_path / "not_a_run")], capsys)

    assert code == 2
    assert "not_a_run' is not a run directory" in err


def test_resume_continues_a_finished_run_to_the_new_total_steps(tiny_run, tmp_path, capsys):
    copy = RunDir(shutil.copytree(tiny_run.path, tmp_path / tiny_run.run_id))
    old_metrics = copy.read_metrics()

    code, out, _ = run_cli(["--resume", str(copy.path), "--steps", "6"], capsys)

    assert code == 0
    assert out.strip().splitlines()[-1] == str(copy.path)
    status = copy.read_status()
    assert (status["state"], status["step"], status["total_steps"]) == ("finished", 6, 6)
    metrics = copy.read_metrics()
    assert metrics["step"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    np.testing.assert_array_equal(metrics["d_loss"][:TINY_STEPS], old_metrics["d_loss"])
    assert metrics["elapsed_sec"][TINY_STEPS] > old_metrics["elapsed_sec"][-1]
    assert [step for step, _ in copy.list_samples()] == [2, 4, 6]
    assert tiny_run.read_status()["step"] == TINY_STEPS  # the shared run is untouched
    assert copy.read_config().steps == 6  # config.json records the new target


def test_resume_to_no_more_steps_than_done_exits_with_code_two_and_says_why(tiny_run, tmp_path, capsys):
    copy = RunDir(shutil.copytree(tiny_run.path, tmp_path / tiny_run.run_id))

    code, _, err = run_cli(["--resume", str(copy.path), "--steps", str(TINY_STEPS - 1)], capsys)

    assert code == 2
    assert f"steps={TINY_STEPS - 1}" in err and f"{TINY_STEPS} steps" in err
    assert copy.read_status()["state"] == "finished"


def test_the_small_data_flags_reach_the_config_and_the_boolean_ones_can_be_turned_off():
    from core.train import build_parser, config_from_args

    flags = [
        "--augment", "translation,color", "--ada-target", "0.6", "--loss", "hinge", "--r1-gamma", "0.5",
        "--spectral-norm", "--minibatch-std", "--label-smoothing", "0.1", "--d-steps", "2", "--metrics-every", "50",
        "--ema-decay", "0.99",
    ]  # fmt: skip
    config, _ = config_from_args(build_parser().parse_args(flags))
    turned_off, _ = config_from_args(build_parser().parse_args(["--no-minibatch-std", "--augment", "none"]))

    assert config.augment == ("color", "translation")
    assert (config.ada_target, config.loss, config.r1_gamma, config.label_smoothing) == (0.6, "hinge", 0.5, 0.1)
    assert config.spectral_norm and config.minibatch_std
    assert (config.d_steps_per_g, config.metrics_every_steps, config.ema_decay) == (2, 50, 0.99)
    assert not turned_off.minibatch_std
    assert turned_off.augment == ()
