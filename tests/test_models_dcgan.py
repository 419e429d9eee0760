from __future__ import annotations

import pytest
import torch

from gan_augment import ModelConfig
from gan_augment.models import Discriminator, Generator, PerClassGenerator


class TestGenerator:
    @pytest.mark.parametrize("image_size", [16, 28, 32, 64, 128])
    @pytest.mark.parametrize("channels", [1, 3])
    @pytest.mark.parametrize("upsample", ["nearest", "transposed"])
    def test_shape_and_range(self, seed: int, image_size: int, channels: int, upsample: str) -> None:
        cfg = ModelConfig(image_size=image_size, channels=channels, g_width=4, d_width=4, z_dim=8, upsample=upsample)
        g = Generator(cfg)
        x = g(torch.randn(3, 8))
        assert x.shape == (3, channels, image_size, image_size)
        assert torch.isfinite(x).all()
        assert x.min() >= -1 and x.max() <= 1

    def test_conditional_needs_labels(self, seed: int) -> None:
        g = Generator(ModelConfig(image_size=16, num_classes=3, g_width=4, z_dim=8))
        assert g(torch.randn(2, 8), torch.tensor([0, 2])).shape == (2, 3, 16, 16)
        with pytest.raises(ValueError, match="class-conditional"):
            g(torch.randn(2, 8))

    def test_article_blocks(self) -> None:
        """BatchNorm → upsample → 3×3 conv (stride 1, same padding) → ReLU, then conv and tanh."""
        g = Generator(ModelConfig(image_size=32, g_width=4))
        block = g.blocks[0]
        assert isinstance(block.norm, torch.nn.BatchNorm2d)
        x = torch.randn(2, 3, 4, 5)  # the upsampling is nearest ×2, value for value
        assert torch.equal(block.up(x), torch.nn.Upsample(scale_factor=2, mode="nearest")(x))
        assert block.conv.kernel_size == (3, 3) and block.conv.stride == (1, 1) and block.conv.padding == (1, 1)
        assert len(g.blocks) == 3  # 4 → 8 → 16 → 32

    def test_nearest_upsampling_has_the_gradient_of_torchs(self, seed: int) -> None:
        x = torch.randn(2, 3, 4, 4, requires_grad=True)
        w = torch.randn(2, 3, 8, 8)
        (Generator(ModelConfig(image_size=32, g_width=4)).blocks[0].up(x) * w).sum().backward()
        ours, x.grad = x.grad, None
        (torch.nn.Upsample(scale_factor=2, mode="nearest")(x) * w).sum().backward()
        torch.testing.assert_close(ours, x.grad)

    def test_dcgan_init(self, seed: int) -> None:
        g = Generator(ModelConfig(image_size=64, g_width=32))
        w = g.blocks[0].conv.weight
        assert abs(w.std().item() - 0.02) < 0.002
        bn = g.blocks[0].norm.weight
        assert abs(bn.mean().item() - 1.0) < 0.01 and 0.01 < bn.std().item() < 0.03


class TestDiscriminator:
    @pytest.mark.parametrize("image_size", [16, 28, 32, 64, 128])
    @pytest.mark.parametrize("channels", [1, 3])
    def test_logits_and_features(self, seed: int, image_size: int, channels: int) -> None:
        d = Discriminator(ModelConfig(image_size=image_size, channels=channels, d_width=4))
        x = torch.rand(3, channels, image_size, image_size) * 2 - 1
        assert d(x).shape == (3,)
        maps = d.forward_features(x)
        assert len(maps) == len(d.blocks) and maps[-1].shape[-1] <= 4
        sizes = [m.shape[-1] for m in maps]
        assert sizes == sorted(sizes, reverse=True)

    def test_first_block_has_no_batchnorm(self) -> None:
        d = Discriminator(ModelConfig(image_size=32, d_width=4))
        assert isinstance(d.blocks[0].norm, torch.nn.Identity)
        assert all(isinstance(b.norm, torch.nn.BatchNorm2d) for b in d.blocks[1:])
        d = Discriminator(ModelConfig(image_size=32, d_width=4, d_norm="none"))
        assert all(isinstance(b.norm, torch.nn.Identity) for b in d.blocks)

    def test_projection_ignores_unlabeled(self, seed: int) -> None:
        d = Discriminator(ModelConfig(image_size=16, num_classes=3, d_width=4, d_dropout=0.0)).eval()
        x = torch.randn(4, 3, 16, 16)
        plain = d(x)
        unlabeled = d(x, torch.full((4,), -1))
        labeled = d(x, torch.tensor([0, 1, 2, 0]))
        assert torch.allclose(plain, unlabeled)
        assert not torch.allclose(plain, labeled)


class TestPerClassGenerator:
    def test_routes_each_label_to_its_model(self, seed: int) -> None:
        cfg = ModelConfig(image_size=16, channels=1, g_width=4, z_dim=8)
        gens = [Generator(cfg), Generator(cfg)]
        for g, level in zip(gens, (-10.0, 10.0)):  # class 0 makes black images, class 1 white
            torch.nn.init.zeros_(g.to_image.weight)
            torch.nn.init.constant_(g.to_image.bias, level)
        bank = PerClassGenerator(gens).eval()
        y = torch.tensor([1, 0, 0, 1, 1])
        x = bank(torch.randn(5, 8), y)
        assert torch.allclose(x[y == 0], torch.tensor(-1.0), atol=1e-4)
        assert torch.allclose(x[y == 1], torch.tensor(1.0), atol=1e-4)
