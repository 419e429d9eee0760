"""ModelConfig and TrainConfig: validation, derived fields, plain-dict round trips."""

from __future__ import annotations

import dataclasses

import pytest

from gan_augment import ModelConfig, TrainConfig
from gan_augment.config import LOSSES, MODES, base_size


class TestModelConfig:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"image_size": 30}, "image_size=30"),
            ({"image_size": 4}, "image_size=4"),
            ({"channels": 2}, "channels=2"),
            ({"upsample": "bilinear"}, "upsample='bilinear'"),
            ({"d_dropout": 1.5}, "d_dropout=1.5"),
            ({"g_width": 0}, "g_width=0"),
        ],
    )
    def test_validation(self, kwargs: dict, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            ModelConfig(**kwargs)

    @pytest.mark.parametrize(
        ("size", "expected"), [(16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (128, (4, 5)), (48, (6, 3))]
    )
    def test_base_size(self, size: int, expected: tuple[int, int]) -> None:
        assert base_size(size) == expected

    def test_dict_round_trip(self) -> None:
        cfg = ModelConfig(image_size=64, channels=1, num_classes=5)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg

    def test_frozen(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'image_size'"):
            ModelConfig().image_size = 64  # type: ignore[misc]


class TestTrainConfig:
    def test_d_norm_follows_the_loss(self) -> None:
        """Python callers get what the CLI gets: no BatchNorm in D for the gradient penalty's per-sample outputs."""
        assert TrainConfig(loss="wgan-gp").model.d_norm == "none"
        assert TrainConfig(loss="hinge").model.d_norm == "batch"
        assert TrainConfig(loss="wgan-gp", model=ModelConfig(d_norm="batch")).model.d_norm == "batch"  # asked for
        assert ModelConfig().batch_norm_in_d and not ModelConfig(d_norm="none").batch_norm_in_d

    def test_image_size_and_channels_have_one_source(self) -> None:
        cfg = TrainConfig(image_size=16, channels=1, model=ModelConfig(g_width=8))
        assert (cfg.model.image_size, cfg.model.channels, cfg.model.g_width) == (16, 1, 8)
        assert cfg.replace(image_size=64).model.image_size == 64
        assert TrainConfig(channels=0, model=ModelConfig(channels=1)).model.channels == 1  # auto: left to the data

    def test_a_model_size_that_disagrees_is_refused_not_overridden(self) -> None:
        """It trained at 32 silently before (TrainConfig's size won over the model's)."""
        with pytest.raises(ValueError, match=r"image_size=64 disagree: give the size once"):
            TrainConfig(model=ModelConfig(image_size=64))
        assert TrainConfig(image_size=64, model=ModelConfig(image_size=64)).model.image_size == 64
        assert TrainConfig(image_size=64).replace(image_size=28).model.image_size == 28  # replace resizes the models
        assert TrainConfig.from_dict(TrainConfig(image_size=16).to_dict()).model.image_size == 16

    def test_dict_round_trip(self) -> None:
        cfg = TrainConfig(mode="conditional", loss="wgan-gp", image_size=28, model=ModelConfig(z_dim=7))
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg

    def test_choices_come_from_the_config(self) -> None:
        from gan_augment.cli.app import LossChoice, ModeChoice

        assert [c.value for c in ModeChoice] == list(MODES) and [c.value for c in LossChoice] == list(LOSSES)
