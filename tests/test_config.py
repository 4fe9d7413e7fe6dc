"""Tests for core.config: TrainConfig validation, its JSON form, and the supported resolutions."""

from __future__ import annotations

import dataclasses

import pytest

from core.config import (
    AUTO_COVERAGE_WEIGHT, AUTO_MODE_SEEKING, AUTO_WIDTH, TrainConfig, default_coverage_weight, default_mode_seeking,
    default_width, resolution_levels,
    supported_resolutions,
)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("resolution_px", 36, r"resolution_px=36 is not supported; choose one of \[16, 20"),
        ("resolution_px", 300, r"resolution_px=300 must be between 16 and 256"),
        ("resolution_px", 12, r"resolution_px=12 must be between 16 and 256"),
        ("batch_size", 0, r"batch_size=0 must be between 1 and 1024"),
        ("learning_rate_g", -1e-4, r"learning_rate_g=-0.0001 must be between"),
        ("fit_mode", "stretch", r"fit_mode='stretch' must be one of \('pad', 'crop', 'face'\)"),
        ("batch_size", True, r"batch_size=True must be a whole number"),
        ("learning_rate_d", True, r"learning_rate_d=True must be a number"),
        ("steps", 10.0, r"steps=10.0 must be a whole number"),
        ("data_dir", "  ", r"data_dir must name a folder"),
        ("coverage_weight", -2.0, r"coverage_weight=-2.0 must be between 0.0 and 100.0"),
        ("simultaneous_updates", "yes", r"simultaneous_updates='yes' must be true or false"),
    ],
)
def test_an_invalid_value_raises_a_value_error_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_replace_validates_the_changed_copy_and_leaves_the_original_alone():
    config = TrainConfig(batch_size=8)

    with pytest.raises(ValueError, match="batch_size=0"):
        config.replace(batch_size=0)
    assert config.replace(batch_size=16).batch_size == 16
    assert config.batch_size == 8


def test_config_is_frozen():
    config = TrainConfig()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 1  # type: ignore[misc]


def test_json_round_trip_gives_back_an_equal_config():
    config = TrainConfig(
        data_dir="some/photos",
        resolution_px=48,
        fit_mode="crop",
        batch_size=16,
        steps=123,
        learning_rate_g=1e-4,
        latent_dim=64,
        ema_decay=0.0,
        seed=7,
    )

    text = config.to_json()

    assert TrainConfig.from_json(text) == config
    assert TrainConfig.from_json(TrainConfig().to_json()) == TrainConfig()


def test_from_dict_rejects_unknown_keys_naming_each_one():
    values = TrainConfig().to_dict() | {"learning_rate": 0.1, "epochs": 5}

    with pytest.raises(ValueError, match="unknown TrainConfig fields: epochs, learning_rate"):
        TrainConfig.from_dict(values)


def test_from_dict_validates_the_values_it_is_given():
    with pytest.raises(ValueError, match="resolution_px=36"):
        TrainConfig.from_dict({"resolution_px": 36})


def test_supported_resolutions_include_the_usual_sizes_and_are_all_accepted():
    resolutions = supported_resolutions()

    assert {32, 48, 64, 96, 128, 256} <= set(resolutions)
    assert resolutions == sorted(set(resolutions))
    assert resolutions[0] == 16 and resolutions[-1] == 256
    for resolution_px in resolutions:
        assert TrainConfig(resolution_px=resolution_px).resolution_px == resolution_px


def test_each_resolution_splits_into_levels_that_multiply_back_to_it():
    for resolution_px in supported_resolutions():
        start_px, doublings = resolution_levels(resolution_px)

        assert 4 <= start_px <= 7
        assert doublings >= 2
        assert start_px * 2**doublings == resolution_px


def test_resolution_levels_rejects_a_size_no_start_and_doubling_can_reach():
    with pytest.raises(ValueError, match="resolution_px=36 is not supported"):
        resolution_levels(36)


def test_relative_data_dir_is_resolved_from_the_base_folder_and_absolute_is_kept(tmp_path):
    assert TrainConfig(data_dir="photos").resolved_data_dir(tmp_path) == tmp_path / "photos"
    absolute = tmp_path / "elsewhere"
    assert TrainConfig(data_dir=str(absolute)).resolved_data_dir(tmp_path / "base") == absolute


def test_width_zero_follows_the_resolution_and_the_config_keeps_the_number():
    assert TrainConfig().width == 32  # the default 32 px
    assert TrainConfig(resolution_px=48).width == default_width(48) == 16
    assert TrainConfig(resolution_px=64, width=AUTO_WIDTH).width == 16
    assert TrainConfig(resolution_px=64, width=48).width == 48  # a chosen width is kept

    config = TrainConfig(resolution_px=48)
    assert TrainConfig.from_json(config.to_json()).width == 16
    assert config.replace(resolution_px=32).width == 16  # a number now, not "auto"
    assert config.replace(resolution_px=32, width=AUTO_WIDTH).width == 32


def test_coverage_weight_minus_one_takes_the_measured_default_and_zero_stays_off():
    assert TrainConfig().coverage_weight == default_coverage_weight(32) == 8.0
    assert TrainConfig(resolution_px=48).coverage_weight == 8.0
    assert TrainConfig(resolution_px=16, coverage_weight=AUTO_COVERAGE_WEIGHT).coverage_weight == 8.0
    assert TrainConfig(coverage_weight=0.0).coverage_weight == 0.0
    assert TrainConfig(coverage_weight=12.0).coverage_weight == 12.0  # a chosen weight is kept as it is
    assert TrainConfig.from_json(TrainConfig().to_json()).coverage_weight == 8.0


def test_mode_seeking_minus_one_follows_the_resolution_and_zero_stays_off():
    assert TrainConfig().mode_seeking == default_mode_seeking(32) == 0.3
    assert TrainConfig(resolution_px=48).mode_seeking == 0.2
    assert TrainConfig(resolution_px=64, mode_seeking=AUTO_MODE_SEEKING).mode_seeking == 0.2
    assert TrainConfig(resolution_px=48, mode_seeking=0.0).mode_seeking == 0.0
    assert TrainConfig.from_json(TrainConfig(resolution_px=48).to_json()).mode_seeking == 0.2
