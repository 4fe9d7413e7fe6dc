"""AppTest runs of every page: they render without exceptions and do what their controls say.

The tests run the app in-process, so the training job a page starts is the same
``core.jobs`` job the test can wait on.
"""

from __future__ import annotations

import io
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import TINY_SETTINGS, write_blob_faces
from core.config import AUTO_WIDTH, TrainConfig
from core.jobs import job_manager
from core.runs import RunDir

DASHBOARD = str(Path(__file__).resolve().parents[1] / "dashboard.py")
PAGE_TIMEOUT_SEC = 60
PAGE_RUN_SETTINGS = {**TINY_SETTINGS, "steps": 6, "sample_every_steps": 2, "checkpoint_every_steps": 3}


def open_page(page: str, **session_values) -> AppTest:
    """The app switched to `page`, with session values set before its first run."""
    app = AppTest.from_file(DASHBOARD, default_timeout=PAGE_TIMEOUT_SEC)
    for name, value in session_values.items():
        app.session_state[name] = value
    app.run()
    if page != "pages/0_Home.py":
        app.switch_page(page).run()
    assert not app.exception, [item.message for item in app.exception]
    return app


def page_metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def wait_until(condition, timeout_sec: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_sec
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def no_job_left_running():
    yield
    job_manager().shutdown(timeout_sec=60)


def test_home_page_shows_the_default_dataset_and_links_to_every_page():
    app = open_page("pages/0_Home.py")

    assert any("100 images" in markdown.value for markdown in app.markdown)
    assert len(app.image) == 1
    linked = {link.proto.page for link in app.get("page_link")}
    assert {"Data", "Train", "Latent_space", "Runs"} <= linked


def test_data_page_previews_a_typed_folder_and_lists_skipped_files_with_reasons(tmp_path):
    folder = tmp_path / "photos"
    write_blob_faces(folder, 5)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    app = open_page("pages/1_Data.py")

    app.text_input(key="data_dir").input(str(folder)).run()

    assert not app.exception
    assert page_metrics(app)["Images used"] == "5"
    assert page_metrics(app)["Files skipped"] == "1"
    skipped_table = app.dataframe[0].value  # the first table on the page; the manifest comes later
    assert list(skipped_table["file"]) == ["broken.jpg"]
    assert "not an image" in skipped_table["reason"][0]
    assert len(app.image) == 5  # one preview per usable photo
    assert {box.key for box in app.checkbox} == {f"include::face_{index:03d}.png" for index in range(5)}
    assert all(box.value for box in app.checkbox)


def test_a_new_folder_sets_its_suggested_resolution_and_the_page_says_so(tmp_path):
    folder = tmp_path / "photos"
    write_blob_faces(folder, 3, size_px=60)  # suggests 64 px, the default is 32
    app = open_page("pages/1_Data.py")

    app.text_input(key="data_dir").input(str(folder)).run()

    assert not app.exception
    assert app.select_slider(key="resolution_px").value == 64
    (note,) = [info.value for info in app.info if "resolution" in info.value]
    assert "set to 64 px" in note and "was 32 px" in note
    app.run()  # said once, not on every rerun
    assert not [info.value for info in app.info if "resolution set" in info.value]


def test_unticking_a_photo_on_the_data_page_leaves_it_out_of_training_until_included_again(tmp_path):
    folder = tmp_path / "photos"
    write_blob_faces(folder, 5)
    app = open_page("pages/1_Data.py", data_dir=str(folder))

    app.checkbox(key="include::face_002.png").uncheck().run()

    assert page_metrics(app)["Images used"] == "4"
    assert page_metrics(app)["Left out"] == "1"
    assert app.session_state["exclude"] == ("face_002.png",)
    assert any("excluded by you" in caption.value for caption in app.caption)
    app.switch_page("pages/2_Train.py").run()
    assert any("4 images" in caption.value for caption in app.caption)

    app.switch_page("pages/1_Data.py").run()
    app.button(key="include_all").click().run()
    assert page_metrics(app)["Images used"] == "5"
    assert app.checkbox(key="include::face_002.png").value is True


def test_data_page_reports_a_duplicate_photo_and_trains_on_it_once(tmp_path):
    folder = tmp_path / "photos"
    (original,) = write_blob_faces(folder, 1)
    write_blob_faces(folder / "more", 3, seed=5)
    (folder / "zz copy of face.png").write_bytes(original.read_bytes())  # sorts after the original
    app = open_page("pages/1_Data.py", data_dir=str(folder))

    assert page_metrics(app)["Images used"] == "4"
    assert any("exact duplicate of face_000.png" in caption.value for caption in app.caption)

    app.toggle(key="keep_duplicates").set_value(True).run()
    assert page_metrics(app)["Images used"] == "5"


def test_uploading_photos_and_a_zip_makes_a_new_dataset_and_chooses_it(tmp_path):
    photos = write_blob_faces(tmp_path / "to_upload", 3)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(photos[1], "holiday/one.png")
        bundle.write(photos[2], "holiday/two.png")
        bundle.writestr("../escape.png", photos[2].read_bytes())
    app = open_page("pages/1_Data.py")

    app.get("file_uploader")[0].set_value(
        [("single.png", photos[0].read_bytes(), "image/png"), ("bundle.zip", archive.getvalue(), "application/zip")]
    ).run()
    app.button(key="save_upload").click().run()

    assert not app.exception
    chosen = Path(app.session_state["data_dir"])
    assert chosen.parent.name == "datasets" and chosen.name.startswith("upload-")
    assert sorted(path.relative_to(chosen).as_posix() for path in chosen.rglob("*.png")) == [
        "holiday/one.png", "holiday/two.png", "single.png"
    ]
    assert page_metrics(app)["Images used"] == "3"
    assert any("unsafe path" in warning.value for warning in app.warning)


def test_data_page_names_a_missing_folder_in_its_error(tmp_path):
    app = open_page("pages/1_Data.py")

    app.text_input(key="data_dir").input(str(tmp_path / "no such folder")).run()

    assert not app.exception
    assert any("no such folder" in error.value and "does not exist" in error.value for error in app.error)


def test_data_page_asks_for_a_folder_when_the_box_is_empty_and_accepts_a_quoted_path(face_folder):
    app = open_page("pages/1_Data.py")

    app.text_input(key="data_dir").input("   ").run()
    assert any("Type the path of a folder" in error.value for error in app.error)

    app.text_input(key="data_dir").input(f'"{face_folder}"').run()
    assert not app.error
    assert page_metrics(app)["Images used"] == "12"


def test_a_session_that_opens_on_the_data_page_keeps_the_default_resolution_on_train():
    app = AppTest.from_file(str(Path(DASHBOARD).parent / "pages" / "1_Data.py"), default_timeout=PAGE_TIMEOUT_SEC)
    app.run()  # as when a browser opens /Data first and the page runs without dashboard.py
    # Run as the main script, the page's links to its siblings cannot resolve; nothing else fails.
    assert all("Could not find page" in item.message for item in app.exception)

    assert app.select_slider(key="resolution_px").value == 32
    assert app.session_state["resolution_px"] == 32


def test_the_train_pages_width_mode_seeking_and_coverage_start_at_auto_and_follow_the_resolution():
    app = open_page("pages/2_Train.py")
    assert app.select_slider(key="width").value == AUTO_WIDTH
    assert app.select_slider(key="width").options[0] == "auto (32)"

    assert app.select_slider(key="mode_seeking").options[0] == "auto (0.3)"
    assert app.select_slider(key="coverage_weight").options[0] == "auto (8)"

    app.select_slider(key="resolution_px").set_value(48).run()
    assert app.select_slider(key="width").options[0] == "auto (16)"
    assert app.select_slider(key="mode_seeking").options[0] == "auto (0.2)"
    assert app.select_slider(key="coverage_weight").options[0] == "auto (8)"
    names = ("resolution_px", "width", "mode_seeking", "coverage_weight")
    chosen = TrainConfig(**{name: app.session_state[name] for name in names})
    assert (chosen.width, chosen.mode_seeking, chosen.coverage_weight) == (16, 0.2, 8.0)


def test_train_page_starts_a_tiny_run_and_shows_live_metrics_then_the_final_grid(face_folder):
    app = open_page("pages/2_Train.py", data_dir=str(face_folder), **PAGE_RUN_SETTINGS)
    assert not app.button(key="start").disabled

    app.button(key="start").click().run()
    job = job_manager().current
    assert job is not None
    wait_until(lambda: job.snapshot().latest_grid is not None or not job.snapshot().is_active)
    app.run()
    assert not app.exception
    if job.snapshot().is_active:
        assert {"Images / s", "Elapsed", "ETA"} <= {metric.label for metric in app.metric}
        assert app.button(key="start").disabled

    assert job.join(120)
    app.run()
    assert not app.exception
    snapshot = job.snapshot()
    assert snapshot.state == "finished", snapshot.error
    assert any("fixed noise · step 6" in caption for image in app.image for caption in image.captions)
    assert len(app.get("plotly_chart")) == 1
    assert not app.button(key="start").disabled


def test_the_live_quality_panel_says_which_step_is_being_scored_until_its_row_arrives():
    from core.quality import QualityRow
    from ui.views import quality_wait_note

    def row(step: int) -> QualityRow:
        return QualityRow(step, 0.1, 0.05, "{}", 0.3, 0.3, 0.0, 0.1, 0.05)

    assert quality_wait_note(40, 50, ()) == "Quality metrics appear after step 50."
    assert "step 50 is being scored" in quality_wait_note(60, 50, ())
    assert "step 150 is being scored" in quality_wait_note(170, 50, (row(50),))  # 100 was skipped
    assert quality_wait_note(170, 50, (row(50), row(150))) == ""
    assert "off" in quality_wait_note(170, 0, ())
    # A run (or a branch) shorter than the interval is scored at its last step.
    assert quality_wait_note(40, 500, (), total_steps=300) == "Quality metrics appear after step 300."
    assert quality_wait_note(40, 500, (), total_steps=2000) == "Quality metrics appear after step 500."


def test_a_tab_opened_while_a_run_trains_shows_the_settings_that_started_it(face_folder):
    started_tab = open_page("pages/2_Train.py", data_dir=str(face_folder), **{**PAGE_RUN_SETTINGS, "steps": 400})
    started_tab.button(key="start").click().run()
    job = job_manager().current

    refreshed_tab = open_page("pages/2_Train.py")  # a new session: nothing set before its first run

    assert refreshed_tab.session_state["steps"] == 400
    assert refreshed_tab.session_state["data_dir"] == str(face_folder)
    assert refreshed_tab.session_state["width"] == PAGE_RUN_SETTINGS["width"]
    refreshed_tab.button(key="stop").click().run()
    assert job.join(60)
    after_the_run = open_page("pages/2_Train.py")
    assert after_the_run.session_state["steps"] == TrainConfig.steps


def test_a_second_start_attaches_to_the_running_job_instead_of_starting_another(face_folder):
    first_tab = open_page("pages/2_Train.py", data_dir=str(face_folder), **{**PAGE_RUN_SETTINGS, "steps": 400})
    second_tab = open_page("pages/2_Train.py", data_dir=str(face_folder), **{**PAGE_RUN_SETTINGS, "steps": 400})

    first_tab.button(key="start").click().run()
    job = job_manager().current
    second_tab.run()
    assert second_tab.button(key="start").disabled

    # A click that raced the first (the button was still enabled in that tab) attaches.
    started_again = job_manager().start(job.config)[1]
    assert started_again is False
    assert job_manager().current is job

    second_tab.button(key="stop").click().run()
    assert job.join(60)
    assert job.snapshot().state == "stopped"


def test_train_page_refuses_to_start_when_the_folder_has_no_images(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    app = open_page("pages/2_Train.py", data_dir=str(empty))

    assert app.button(key="start").disabled
    assert any("contains no image files" in error.value for error in app.error)


def captions(app: AppTest) -> list[str]:
    return [caption for image in app.image for caption in image.captions]


def picture_of(app: AppTest, caption: str) -> str:
    """The URL of the one picture with this caption; Streamlit names media by a hash of their bytes."""
    (url,) = [
        url for image in app.image for shown, url in zip(image.captions, image.value) if shown == caption
    ]
    return url


def test_latent_space_page_pins_a_seed_into_the_strip_and_the_run_folder(runs_dir_with_tiny_run):
    (run_path,) = runs_dir_with_tiny_run.iterdir()
    app = open_page("pages/3_Latent_space.py")
    assert [caption for caption in captions(app) if re.fullmatch(r"seed \d+", caption)] == [
        f"seed {seed}" for column in range(4) for seed in range(column, 16, 4)
    ]  # four columns, filled top to bottom
    face_of_seed_3 = picture_of(app, "seed 3")

    app.toggle(key="latent_pin::3").set_value(True).run()
    app.toggle(key="latent_pin::9").set_value(True).run()

    assert not app.exception
    assert RunDir(run_path).read_pinned_seeds() == [3, 9]
    assert picture_of(app, "pinned seed 3") == face_of_seed_3
    assert "mean of 2 pinned" in captions(app)
    restarted = open_page("pages/3_Latent_space.py")
    assert restarted.toggle(key="latent_pin::3").value is True
    assert picture_of(restarted, "seed 3") == face_of_seed_3  # the same face after a restart
    restarted.button(key="latent_unpin::9").click().run()
    assert RunDir(run_path).read_pinned_seeds() == [3]
    assert restarted.toggle(key="latent_pin::9").value is False


def test_latent_space_page_turns_pages_of_seeds(runs_dir_with_tiny_run):
    app = open_page("pages/3_Latent_space.py")
    assert app.button(key="latent_previous").disabled

    app.button(key="latent_next").click().run()
    assert "seed 16" in captions(app) and "seed 0" not in captions(app)
    app.number_input(key="latent_page").set_value(4).run()
    assert "seed 48" in captions(app) and "seed 63" in captions(app)
    app.button(key="latent_previous").click().run()

    assert not app.exception
    assert "seed 32" in captions(app)


def test_truncation_changes_the_seed_faces_and_psi_one_gives_them_back(runs_dir_with_tiny_run):
    app = open_page("pages/3_Latent_space.py")
    untruncated = picture_of(app, "seed 5")

    for method in ("shrink", "resample"):
        app.selectbox(key="latent_truncation").set_value(method)
        app.slider(key="latent_psi").set_value(0.3).run()
        assert not app.exception
        assert picture_of(app, "seed 5") != untruncated, method
        app.slider(key="latent_psi").set_value(1.0).run()
        assert picture_of(app, "seed 5") == untruncated, method
    assert any("resample" in caption.value and "Untruncated" in caption.value for caption in app.caption)


def test_interpolation_follows_its_controls_and_offers_gif_and_mp4(runs_dir_with_tiny_run):
    app = open_page("pages/3_Latent_space.py")

    app.number_input(key="latent_to_seed").set_value(7).run()
    app.slider(key="latent_frame").set_value(7).run()
    app.radio(key="latent_method").set_value("lerp").run()

    assert not app.exception
    assert "frame 7: 1.00 of the way from seed 0 to seed 7" in captions(app)
    app.number_input(key="latent_base_seed").set_value(7).run()
    # The last frame is seed 7's own face.
    assert picture_of(app, "frame 7: 1.00 of the way from seed 0 to seed 7") == picture_of(app, "base seed 7")
    assert "8 frames, lerp" in captions(app)
    downloads = {button.label: button for button in app.download_button}
    assert {"Walk as GIF", "Walk as MP4", "Direction walk as GIF"} <= set(downloads)
    app.slider(key="latent_frames").set_value(4).run()  # fewer frames than the chosen one
    assert "frame 3: 1.00 of the way from seed 0 to seed 7" in captions(app)
    app.toggle(key="latent_play").set_value(True).run()
    assert "4 frames, lerp, looping" in captions(app)


def test_interpolation_can_start_at_a_pinned_face(runs_dir_with_tiny_run):
    (run_path,) = runs_dir_with_tiny_run.iterdir()
    RunDir(run_path).pin_seed(12)
    app = open_page("pages/3_Latent_space.py")

    app.selectbox(key="latent_from_kind").set_value("pinned").run()
    app.number_input(key="latent_base_seed").set_value(12).run()

    assert app.selectbox(key="latent_from_pin").value == 12
    assert "frame 0: 0.00 of the way from seed 12 to seed 1" in captions(app)
    first_frame = picture_of(app, "frame 0: 0.00 of the way from seed 12 to seed 1")
    assert first_frame == picture_of(app, "base seed 12")


def test_direction_sliders_move_the_base_face_and_zero_leaves_it(runs_dir_with_tiny_run):
    app = open_page("pages/3_Latent_space.py")
    assert len([slider for slider in app.slider if slider.key.startswith("latent_direction_")]) == 5
    assert any("of its variance" in caption.value for caption in app.caption)
    app.number_input(key="latent_base_seed").set_value(5).run()
    base = picture_of(app, "base seed 5")

    app.slider(key="latent_direction_0").set_value(2.5).run()
    assert picture_of(app, "base seed 5, +2.5 σ on 1") != base
    app.slider(key="latent_direction_0").set_value(0.0).run()

    assert not app.exception
    assert picture_of(app, "base seed 5") == base


def test_sweeping_a_component_of_z_draws_a_strip_for_it(runs_dir_with_tiny_run):
    app = open_page("pages/3_Latent_space.py")
    first = picture_of(app, "base seed 0, z[0] from -3 to 3")

    app.number_input(key="latent_sweep_dimension").set_value(3).run()

    assert not app.exception
    assert picture_of(app, "base seed 0, z[3] from -3 to 3") != first


def test_finding_a_training_photo_shows_the_result_and_makes_it_a_walk_endpoint(runs_dir_with_tiny_run):
    app = open_page("pages/3_Latent_space.py")

    app.number_input(key="latent_projection_steps").set_value(10).run()
    app.button(key="latent_projection_start").click().run()
    task = app.session_state["latent_projection"][1]
    assert task.join(60)
    app.run()

    assert not app.exception
    result = "left: the photo; right: the generator's closest face (finished after 10 steps"
    assert any(caption.startswith(result) for caption in captions(app))
    assert "The found photo" in app.selectbox(key="latent_to_kind").options
    app.selectbox(key="latent_to_kind").set_value("photo").run()
    assert any(caption.endswith("from seed 0 to the found photo") for caption in captions(app))


def test_finding_an_uploaded_photo_stops_when_asked_and_shows_the_face_so_far(
    runs_dir_with_tiny_run, tmp_path
):
    (photo,) = write_blob_faces(tmp_path / "upload", 1, size_px=40)
    app = open_page("pages/3_Latent_space.py")
    app.radio(key="latent_projection_source").set_value("An upload").run()
    app.get("file_uploader")[0].set_value([("me.png", photo.read_bytes(), "image/png")]).run()

    app.number_input(key="latent_projection_steps").set_value(5000).run()
    app.button(key="latent_projection_start").click().run()
    app.button(key="latent_projection_stop").click().run()
    task = app.session_state["latent_projection"][1]
    assert task.join(30)
    app.run()

    assert not app.exception
    snapshot = task.snapshot()
    assert snapshot.state == "stopped" and snapshot.step < 5000
    assert any(caption.startswith("left: the photo; right: the generator's closest face (stopped after")
               for caption in captions(app))


def test_the_nearest_training_photo_shows_beside_the_frame_or_says_it_is_gone(runs_dir_with_tiny_run):
    (run_path,) = runs_dir_with_tiny_run.iterdir()
    app = open_page("pages/3_Latent_space.py")

    app.toggle(key="latent_nearest").set_value(True).run()
    assert not app.exception
    assert any(caption.startswith("nearest photo face_") and "copy score" in caption
               for caption in captions(app))

    run = RunDir(run_path)
    run.update_config(run.read_config().replace(data_dir=str(runs_dir_with_tiny_run / "gone")))
    app.run()
    assert not app.exception
    assert any("cannot be read now" in info.value for info in app.info)


def test_latent_space_page_explains_when_no_run_has_a_generator():
    app = open_page("pages/3_Latent_space.py")

    assert any("No run has exported a generator" in info.value for info in app.info)


def test_runs_page_lists_the_run_with_its_grid_curves_and_downloads(runs_dir_with_tiny_run):
    app = open_page("pages/4_Runs.py")

    (run_path,) = runs_dir_with_tiny_run.iterdir()
    assert app.selectbox(key="runs_selected").value == run_path.name
    assert len(app.image) == 1
    assert len(app.get("plotly_chart")) == 1
    downloads = {button.label: button for button in app.download_button}
    assert {"Generator (.keras)", "Metrics (csv)"} <= set(downloads)
    assert not any(button.disabled for button in downloads.values())


def test_runs_page_timeline_scrubs_the_saved_grids_and_offers_the_training_as_gif(runs_dir_with_tiny_run):
    app = open_page("pages/4_Runs.py")
    assert app.select_slider(key="runs_timeline_step").options == ["2", "4"]
    assert "fixed noise · step 4" in captions(app)
    latest = picture_of(app, "fixed noise · step 4")

    app.select_slider(key="runs_timeline_step").set_value(2).run()

    assert not app.exception
    assert picture_of(app, "fixed noise · step 2") != latest
    assert "Training as GIF" in {button.label for button in app.download_button}


def test_runs_page_lists_a_broken_run_folder_without_failing(runs_dir_with_tiny_run):
    (runs_dir_with_tiny_run / "not-a-run").mkdir()
    (runs_dir_with_tiny_run / "garbled").mkdir()
    (runs_dir_with_tiny_run / "garbled" / "config.json").write_text("{ this is not json")

    app = open_page("pages/4_Runs.py")

    warnings = " ".join(warning.value for warning in app.warning)
    assert "not-a-run" in warnings and "garbled" in warnings
    assert len(app.image) == 1


def test_page_reruns_leave_the_training_threads_keras_state_alone():
    from keras.src.backend.common import global_state

    app = open_page("pages/0_Home.py")
    global_state.set_global_attribute("probe_from_test", 42)

    app.run()  # Streamlit would call keras.backend.clear_session() here

    assert global_state.get_global_attribute("probe_from_test") == 42


def test_runs_page_pins_a_checkpoint_and_starts_a_branch_from_it(runs_dir_with_tiny_run):
    from core.checkpoints import CheckpointStore

    (parent_path,) = runs_dir_with_tiny_run.iterdir()
    app = open_page("pages/4_Runs.py")
    assert app.selectbox(key="runs_checkpoint").options == ["step 0", "step 2", "step 4"]

    app.selectbox(key="runs_checkpoint").set_value(2).run()
    app.button(key="pin").click().run()
    assert CheckpointStore(parent_path / "checkpoints", 3).pinned() == {2}

    app.number_input(key="branch_until").set_value(3).run()
    app.button(key="branch").click().run()
    assert not app.exception
    job = job_manager().current
    assert job is not None and job.join(120)
    assert job.snapshot().state == "finished", job.snapshot().error
    branch = RunDir(job.snapshot().run_path)
    assert branch.read_metadata()["parent"]["step"] == 2
    assert branch.read_status()["step"] == 3


def test_train_page_shows_why_the_last_run_failed(runs_dir_with_tiny_run):
    (run_path,) = runs_dir_with_tiny_run.iterdir()
    RunDir(run_path).write_status("failed", 3, 4, "Cannot write to the runs folder: No space left on device.")

    app = open_page("pages/2_Train.py")

    assert any("No space left on device" in error.value for error in app.error)
    assert not app.button(key="start").disabled


def test_continue_on_the_train_page_resumes_a_stopped_run_to_its_target(runs_dir_with_tiny_run):
    (run_path,) = runs_dir_with_tiny_run.iterdir()
    run = RunDir(run_path)
    run.update_config(run.read_config().replace(steps=6))
    run.write_status("stopped", 4, 6, "stopped by the user")

    app = open_page("pages/2_Train.py")
    app.button(key="continue").click().run()

    job = job_manager().current
    assert job is not None and job.join(120)
    assert job.snapshot().state == "finished", job.snapshot().error
    assert run.read_status()["step"] == 6
    assert run.read_metrics()["step"].tolist() == [1, 2, 3, 4, 5, 6]


@pytest.fixture
def runs_dir_with_scored_run(isolated_runs_dir, tmp_path):
    """A tiny run trained through the CLI with quality metrics at steps 2 and 4."""
    import signal

    from conftest import TINY_RUN_ARGS
    from core.train import main

    write_blob_faces(tmp_path / "scored_faces", 12)
    arguments = [*TINY_RUN_ARGS[: TINY_RUN_ARGS.index("--metrics-every")], "--metrics-every", "2"]
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert main(["--data", str(tmp_path / "scored_faces"), "--runs-dir", str(isolated_runs_dir), *arguments]) == 0
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return isolated_runs_dir


def test_runs_page_shows_quality_the_closest_photo_pairs_and_offers_the_whole_run(runs_dir_with_scored_run):
    app = open_page("pages/4_Runs.py")

    assert {"SWD", "MS-SSIM", "Near copies", "Photos ignored"} <= set(page_metrics(app))
    assert len(app.get("plotly_chart")) == 2  # training curves and quality curves
    assert "Everything (zip)" in {button.label for button in app.download_button}
    images_before = len(app.image)

    app.toggle(key="runs_show_pairs").set_value(True).run()

    assert not app.exception
    assert len(app.image) == images_before + 8
    assert any("copy score" in caption for image in app.image for caption in image.captions)


def test_runs_page_overlays_two_runs_and_shows_their_grids(runs_dir_with_tiny_run, tiny_run):
    shutil.copytree(tiny_run.path, runs_dir_with_tiny_run / "20000101-000000-16px")
    app = open_page("pages/4_Runs.py")

    other = app.multiselect(key="runs_compare")
    other.set_value([other.options[0]]).run()

    assert not app.exception
    titles = [chart.proto.spec for chart in app.get("plotly_chart")]
    assert sum('"G loss"' in spec or "G loss" in spec for spec in titles) >= 1
    assert sum(caption.endswith("step 4") for image in app.image for caption in image.captions) >= 2


def test_bundle_holds_the_settings_manifest_metrics_grids_and_generator(runs_dir_with_scored_run):
    (run_path,) = runs_dir_with_scored_run.iterdir()
    names = set(zipfile.ZipFile(io.BytesIO(RunDir(run_path).bundle_zip())).namelist())

    expected = {"config.json", "manifest.json", "metrics.csv", "quality.csv", "status.json", "generator.keras"}
    assert {f"{run_path.name}/{name}" for name in expected} <= names
    assert f"{run_path.name}/samples/step_000004.png" in names
    assert not any("checkpoints" in name for name in names)


def test_pause_pressed_while_the_first_step_compiles_says_so_and_offers_resume(face_folder):
    app = open_page("pages/2_Train.py", data_dir=str(face_folder), **{**PAGE_RUN_SETTINGS, "steps": 400})
    app.button(key="start").click().run()
    job = job_manager().current

    app.button(key="pause").click().run()  # whether or not the first step is still compiling

    assert not app.exception
    assert job.pause_requested
    assert app.button(key="resume") is not None
    assert any(text in markdown.value for markdown in app.markdown for text in ("Pausing after this step", "Paused"))
    app.button(key="resume").click().run()
    assert not job.pause_requested
    app.button(key="stop").click().run()
    assert job.join(60)


def test_the_photos_own_scores_read_as_missing_rather_than_nan_when_there_are_too_few_photos():
    from ui.views import photos_score_text

    assert photos_score_text(0.04632) == "0.046"
    assert photos_score_text(float("nan")) == "none, too few photos"


def test_compared_swd_curves_show_a_run_scored_only_once():
    import numpy as np

    from ui.charts import compared_curves

    figure = compared_curves({"a": {"step": np.array([200]), "swd": np.array([0.17])},
                              "b": {"step": np.arange(0, 5000, 10), "swd": np.linspace(1, 0, 500)}}, "swd", "SWD")

    once, long = figure.data
    assert "markers" in once.mode  # a line through a single point would draw nothing
    assert long.mode == "lines"


def test_the_quality_charts_tick_at_the_steps_scored_while_there_are_few():
    from core.quality import QualityRow
    from ui.charts import quality_curves

    def row(step: int) -> QualityRow:
        return QualityRow(step, 0.1, 0.05, "{}", 0.3, 0.3, 0.0, 0.1, 0.05)

    scored_once = quality_curves([row(200)])
    assert all(tuple(axis.tickvals) == (200,) for axis in (scored_once.layout.xaxis, scored_once.layout.xaxis3))

    scored_often = quality_curves([row(step) for step in range(100, 2100, 100)])
    assert scored_often.layout.xaxis.tickvals is None  # plotly spaces its own ticks
