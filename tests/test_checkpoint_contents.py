"""Issue 13, item 8: a checkpoint with the right keys but wrong contents (shapes, dtypes, types,
missing entries, absurd sizes) is one line and exit 2 from every command that loads it, and the
package's own error from every Python loader; never a traceback, never gigabytes allocated."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from test_reliability import one_line_error, runner

from gan_augment import CheckpointError, DiscriminatorFeatures, GANAugmentedDataset
from gan_augment.cli import app
from gan_augment.io import load_checkpoint
from gan_augment.io.checkpoint import save_checkpoint
from gan_augment.io.rebuild import load_discriminator, load_generator


def _first(state: dict[str, Any]) -> str:
    return next(iter(state))


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(ckpt: dict[str, Any]) -> None:
        target = ckpt
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value

    return change


def _weights(part: str, make: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict[str, Any]], None]:
    """Change the first tensor of every model's ``part`` (g_ema: what sampling uses; d: features)."""

    def change(ckpt: dict[str, Any]) -> None:
        for model in ckpt["models"]:
            model[part][_first(model[part])] = make(model[part][_first(model[part])])

    return change


# Each fault, and which side reads what it breaks: "g" (the sampling generator and the run's
# metadata: info, sample, load_generator, the dataset), "d" (the discriminator: features,
# load_discriminator, DiscriminatorFeatures) or both. `fit --resume` reads everything.
BROKEN: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "a weight of another shape (sampling's)": ("g", _weights("g_ema", lambda t: torch.zeros(3, 3))),
    "a weight of another shape (the discriminator's)": ("d", _weights("d", lambda t: torch.zeros(3, 3))),
    "a weight that is not a tensor": ("g", _weights("g_ema", lambda t: "weights")),
    "a complex weight": ("g", _weights("g_ema", lambda t: t.to(torch.complex64))),
    "an integer weight": ("d", _weights("d", lambda t: t.to(torch.int64))),
    "no models": ("gd", lambda c: c.pop("models")),
    "an empty model": ("gd", _set(["models"], [{}])),
    "a model configuration that is text": ("gd", _set(["model_config"], "x")),
    "a training configuration without its fields": ("g", _set(["config"], {"nonsense": 1})),
    "an absurd width": ("gd", _set(["model_config", "g_width"], 10**7)),
    "an absurd image size": ("gd", _set(["model_config", "image_size"], 10**6)),
    "a step that is text": ("g", _set(["step"], "x")),
    "a format version that is text": ("gd", _set(["format_version"], "1")),
}


def broken_copy(run: Path, tmp_path: Path, name: str) -> Path:
    ckpt = copy.deepcopy(load_checkpoint(run))
    BROKEN[name][1](ckpt)
    out = tmp_path / "broken"
    out.mkdir()
    if name.startswith("a format version"):
        torch.save(ckpt, out / "checkpoint.pt")  # save_checkpoint stamps the right version
    else:
        save_checkpoint(
            {k: v for k, v in ckpt.items() if k not in ("format_version", "package_version")}, out / "checkpoint.pt"
        )
    return out


@pytest.mark.parametrize("name", list(BROKEN))
@pytest.mark.parametrize("mode", ["per-class", "unconditional"])
def test_every_command_gives_one_line(name: str, mode: str, trained: dict[str, Path], tmp_path: Path) -> None:
    run = broken_copy(trained[mode], tmp_path, name)
    labeled, side = str(trained["labeled"]), BROKEN[name][0]
    commands = [["fit", labeled, "--out", str(run), "--resume", "--steps", "3", "--device", "cpu", "--quiet"]]
    if "g" in side:
        commands.append(["info", str(run)])
        commands.append(["sample", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), "--device", "cpu"])
    if "d" in side and mode == "unconditional":
        commands.append(["features", str(run), labeled, "--out", str(tmp_path / "f.npz"), "--device", "cpu"])
    for args in commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args[0], result.output)
        one_line_error(result.exit_code, result.output, "checkpoint")


@pytest.mark.parametrize("name", list(BROKEN))
def test_python_loaders_raise_the_packages_error(name: str, trained: dict[str, Path], tmp_path: Path) -> None:
    run = broken_copy(trained["unconditional"], tmp_path, name)
    side = BROKEN[name][0]
    if "g" in side:
        with pytest.raises(CheckpointError):
            load_generator(run, device="cpu")
        with pytest.raises(CheckpointError):
            GANAugmentedDataset(torch.utils.data.TensorDataset(torch.zeros(2, 3, 16, 16)), run)
    if "d" in side:
        with pytest.raises(CheckpointError):
            load_discriminator(run, device="cpu")
        with pytest.raises(CheckpointError):
            DiscriminatorFeatures(run).fit()


@pytest.mark.parametrize(
    "fault",
    [
        _set(["class_names"], ["a", "b", "c"]),  # three names for two outputs
        lambda c: c["d"].update({_first(c["d"]): torch.zeros(1)}),  # a weight of another shape
        _set(["image_size"], "big"),
    ],
)
def test_predict_gives_one_line(
    fault: Callable[[dict[str, Any]], None], folders: tuple[Path, Path], tmp_path: Path
) -> None:
    labeled, unlabeled = folders
    clf = tmp_path / "clf"
    args = ["--method", "ssl", "--ssl-steps", "2", "--image-size", "16", "--device", "cpu", "-q"]
    assert runner.invoke(app, ["classify", str(labeled), str(unlabeled), "--out", str(clf), *args]).exit_code == 0
    state = load_checkpoint(clf)
    fault(state)
    save_checkpoint(
        {k: v for k, v in state.items() if k not in ("format_version", "package_version")}, clf / "classifier.pt"
    )
    result = runner.invoke(
        app, ["predict", str(clf), str(labeled), "--out", str(tmp_path / "p.csv"), "--device", "cpu"]
    )
    one_line_error(result.exit_code, result.output, "classifier.pt")
    assert not (tmp_path / "p.csv").exists()
