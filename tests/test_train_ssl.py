"""The semi-supervised GAN: weight normalisation's initialisation, the weight average that evaluates, and
that the unlabeled images make few labels go further."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from gan_augment.config import SSLConfig
from gan_augment.data import ImageData
from gan_augment.io.classifier_record import build_network
from gan_augment.models.ssl import SSLConvDiscriminator, SSLMLPDiscriminator, WNConv2d, WNLinear, data_dependent_init
from gan_augment.progress import Reporter
from gan_augment.train.metrics import accuracy
from gan_augment.train.ssl import Cycler, WeightAverage, jitter, train_ssl


class TestWeightNorm:
    def test_data_dependent_init_standardises_each_unit(self) -> None:
        torch.manual_seed(0)
        layer = torch.nn.Sequential(WNLinear(20, 7))
        x = torch.randn(64, 20) * 3 + 1
        data_dependent_init(layer, x)
        pre = layer(x)  # after init: the same batch gives zero mean, unit variance per unit
        assert torch.allclose(pre.mean(0), torch.zeros(7), atol=1e-5)
        assert torch.allclose(pre.var(0, unbiased=False), torch.ones(7), atol=1e-4)

    def test_conv_init_and_every_layer_of_a_discriminator(self) -> None:
        torch.manual_seed(0)
        conv = torch.nn.Sequential(WNConv2d(3, 5, 3, padding=1))
        x = torch.rand(16, 3, 8, 8) * 2 - 1
        data_dependent_init(conv, x)
        pre = conv(x)
        assert torch.allclose(pre.mean((0, 2, 3)), torch.zeros(5), atol=1e-5)
        assert torch.allclose(pre.var((0, 2, 3), unbiased=False), torch.ones(5), atol=1e-4)
        d = SSLMLPDiscriminator(8, 1, 3)
        images = torch.rand(100, 1, 8, 8) * 2 - 1
        torch.manual_seed(5)
        data_dependent_init(d, images)  # with its input noise, as the paper's
        torch.manual_seed(5)  # the same noise again: the first layer's pre-activations are standardised
        first = d.train().hidden[0](d.input_noise((images.flatten(1) + 1) / 2))
        assert torch.allclose(first.mean(0), torch.zeros(1000), atol=1e-4)
        assert torch.allclose(first.var(0, unbiased=False), torch.ones(1000), atol=1e-3)

    def test_weights_are_direction_times_scale(self) -> None:
        layer = WNLinear(4, 3)
        with torch.no_grad():
            layer.v.mul_(7.0)  # the direction's length does not matter
        assert torch.allclose(layer.weight().norm(dim=1), layer.scale)


class TestWeightAverage:
    def test_bias_corrected_average(self) -> None:
        """After updates with weights w1, w2, w3 it is the decay-weighted mean of them (no pull towards 0)."""
        module = torch.nn.Linear(1, 1, bias=False)
        average = WeightAverage(module, decay=0.5)
        for w in (1.0, 2.0, 4.0):
            with torch.no_grad():
                module.weight.fill_(w)
            average.update(module)
        expected = (0.25 * 1.0 + 0.5 * 2.0 + 1.0 * 4.0) / (0.25 + 0.5 + 1.0)
        assert average.averaged(module).weight.item() == pytest.approx(expected)
        assert module.weight.item() == 4.0  # the live module is untouched

    def test_evaluation_and_the_saved_classifier_use_the_average(self, monkeypatch: pytest.MonkeyPatch) -> None:
        data, _, _ = _digits(labels_per_class=2, seed=0)
        seen: list[torch.nn.Module] = []
        averaged = WeightAverage.averaged

        def spy(self: WeightAverage, module: torch.nn.Module) -> torch.nn.Module:
            seen.append(averaged(self, module))
            return seen[-1]

        monkeypatch.setattr(WeightAverage, "averaged", spy)
        evaluated: list[torch.nn.Module] = []
        cfg = SSLConfig(steps=6, batch_size=16, init_images=50)
        result = train_ssl(data, cfg, torch.device("cpu"), 0.0, Reporter(quiet=True), evaluated.append, 3)
        assert evaluated == seen[:2] and [c["step"] for c in result["curve"]] == [3, 6]
        saved = result["state"]["d"]
        assert all(torch.equal(saved[k], v) for k, v in seen[-1].state_dict().items())


def test_cycler_goes_through_the_pool_before_repeating() -> None:
    pool = torch.arange(10, 20)
    draw = Cycler(pool, 4, torch.Generator().manual_seed(0))
    first = torch.cat([draw(), draw(), draw()])  # 12 draws: one whole pass, then 2 of the next
    assert sorted(first[:10].tolist()) == list(range(10, 20))


def test_jitter_shifts_and_flips() -> None:
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, :, :4] = 1.0  # a bar on the left
    out = jitter(x, torch.Generator().manual_seed(0))
    on_right = out[:, 0, :, 12:].mean((1, 2)) > 0.5
    assert 0 < int(on_right.sum()) < 64  # some flipped, some not
    assert not torch.equal(out[~on_right], x[~on_right])  # and shifted


def test_conv_discriminator_shapes() -> None:
    d = SSLConvDiscriminator(32, 3, 10)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert d(x).shape == (2, 10) and d.features(x).shape == (2, 192)


def _digits(labels_per_class: int, seed: int) -> tuple[ImageData, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits (8×8) with ``labels_per_class`` labeled, the rest unlabeled; and the rest's labels."""
    d = load_digits()
    images = torch.from_numpy(np.clip(d.images * 255 / 16, 0, 255).round().astype(np.uint8))[:, None]
    targets = torch.from_numpy(d.target).long()
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(d.target == c))[:labels_per_class] for c in range(10)])
    labels = torch.full_like(targets, -1)
    labels[chosen] = targets[chosen]
    rest = torch.from_numpy(np.setdiff1d(np.arange(len(targets)), chosen))
    data = ImageData(images, labels, [str(c) for c in range(10)], [f"digit:{i}" for i in range(len(targets))])
    return data, images[rest], targets[rest]


@pytest.mark.slow  # two 300-iteration trainings, about 20 s
def test_unlabeled_images_beat_the_same_network_on_the_labels_alone() -> None:
    """Digits, 2 labels per class: the SSL GAN (with the ~1,780 unlabeled images) against the same
    discriminator trained on the 20 labels alone (unlabeled weight 0), the same seed and steps."""
    data, rest_images, rest_labels = _digits(labels_per_class=2, seed=1)
    accs = {}
    for weight in (1.0, 0.0):
        cfg = SSLConfig(steps=300, batch_size=64, init_images=200, seed=1, unlabeled_weight=weight)
        state = train_ssl(data, cfg, torch.device("cpu"), 0.0, Reporter(quiet=True))["state"]
        accs[weight] = accuracy(build_network(state), rest_images, rest_labels)
    assert accs[1.0] > accs[0.0] + 0.03, accs


def test_a_second_roll_back_returns_to_the_same_state() -> None:
    """The kept state is never the optimisers' own: loading it used to hand them its Adam moments, which the
    next iterations moved in place, so a second roll-back before a save went back to a later optimiser state."""
    from gan_augment.train.ssl import start_ssl
    from gan_augment.train.ssl_steps import TeacherJob

    data, _, _ = _digits(labels_per_class=2, seed=0)
    cfg = SSLConfig(steps=20, batch_size=16, init_images=50)
    run, _ = start_ssl(data, cfg, torch.device("cpu"), 0.0, Reporter(quiet=True))
    for _ in range(3):
        run.train_step()
    job = TeacherJob(run, Reporter(quiet=True))  # keeps the state at iteration 3
    kept = copy.deepcopy(run.state_dict()["opt_d"]["state"])
    for _ in range(2):  # roll back, two iterations, roll back again
        job.roll_back("test")
        run.train_step()
        run.train_step()
    job.roll_back("test")
    now = run.state_dict()["opt_d"]["state"]
    assert run.step == 3 and all(torch.equal(now[i][k], kept[i][k]) for i in kept for k in kept[i])
