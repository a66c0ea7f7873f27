"""Building blocks shared by the networks of both model families (FOMM and TPSMM).

Attribute names (``conv``, ``norm``, ``conv1``, ``norm2``, ``down.weight``, ...) are
those of the published checkpoints, so their state dicts load unchanged. FOMM's blocks
normalise with BatchNorm (``norm="batch"``), TPSMM's with affine InstanceNorm
(``norm="instance"``). Images are NCHW float tensors; coordinates are normalised to
[-1, 1] and stored last-axis as (x, y).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(height: int, width: int, *, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Return an (height, width, 2) grid of (x, y) in [-1, 1].

    ``x = 2 * j / (width - 1) - 1`` along the width, ``y`` likewise along the height,
    so -1 and 1 are the centres of the corner pixels.
    """
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    return torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)


def kp2gaussian(kp_value: torch.Tensor, height: int, width: int, kp_variance: float) -> torch.Tensor:
    """Gaussian heatmaps around keypoints.

    Args:
        kp_value: (..., K, 2) keypoints in [-1, 1].
    Returns:
        (..., K, height, width) maps ``exp(-0.5 * |z - p|^2 / kp_variance)``.
    """
    grid = make_coordinate_grid(height, width, dtype=kp_value.dtype, device=kp_value.device)
    diff = grid - kp_value[..., None, None, :]
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / kp_variance)


def warp(image: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Bilinear ``grid_sample`` with zero padding; ``grid`` is (N, H, W, 2) in [-1, 1].

    The sampling runs in float32 whatever the input dtype: a grid in half precision
    moves pixels by whole fractions of a pixel at 256x256.
    """
    out = F.grid_sample(image.float(), grid.float(), mode="bilinear", padding_mode="zeros",
                        align_corners=align_corners)
    return out.to(image.dtype)


NORMS = ("batch", "instance")


def make_norm(features: int, norm: str) -> nn.Module:
    """Eval-mode BatchNorm (FOMM) or per-image affine InstanceNorm (TPSMM), eps 1e-5."""
    if norm == "batch":
        return nn.BatchNorm2d(features, affine=True)
    if norm == "instance":
        return nn.InstanceNorm2d(features, affine=True)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class _ConvNorm(nn.Module):
    """A convolution and its norm, named ``conv`` and ``norm`` as in the checkpoints."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1,
                 norm: str = "batch"):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = make_norm(out_features, norm)


class SameBlock2d(_ConvNorm):
    """conv -> norm -> ReLU, keeping the resolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(_ConvNorm):
    """conv 3x3 -> norm -> ReLU -> 2x2 average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class UpBlock2d(_ConvNorm):
    """Nearest x2 upsample -> conv 3x3 -> norm -> ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: norm -> ReLU -> conv -> norm -> ReLU -> conv, plus input."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1, norm: str = "batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = make_norm(in_features, norm)
        self.norm2 = make_norm(in_features, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class Encoder(nn.Module):
    """Hourglass encoder: ``num_blocks`` down blocks; returns every scale, input first."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3,
                 max_features: int = 256, norm: str = "batch"):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else min(max_features, block_expansion * 2 ** i),
                        min(max_features, block_expansion * 2 ** (i + 1)), norm=norm)
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: up blocks, each followed by concatenation of the matching skip."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3,
                 max_features: int = 256, norm: str = "batch"):
        super().__init__()
        self.up_blocks = nn.ModuleList(
            UpBlock2d((1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1)),
                      min(max_features, block_expansion * 2 ** i), norm=norm)
            for i in reversed(range(num_blocks))
        )
        # channels of each level's output, lowest resolution first
        self.level_filters = [2 * min(max_features, block_expansion * 2 ** i) for i in reversed(range(1, num_blocks))]
        self.level_filters.append(block_expansion + in_features)
        self.out_filters = block_expansion + in_features

    def levels(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every level's output (up block, then its skip concatenated), lowest resolution first."""
        out, outs = skips[-1], []
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            out = torch.cat([block(out), skip], dim=1)
            outs.append(out)
        return outs

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        return self.levels(skips)[-1]


class Hourglass(nn.Module):
    """U-Net style encoder/decoder; output has ``block_expansion + in_features`` channels."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3,
                 max_features: int = 256, norm: str = "batch"):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features, norm)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features, norm)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every decoder level's output, lowest resolution first (channels: ``level_filters``)."""
        return self.decoder.levels(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then keep every ``int(1 / scale)``-th pixel.

    The kernel is the buffer ``weight`` (saved in the checkpoints as ``down.weight``).
    """

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        coords = torch.arange(kernel_size, dtype=torch.float32)
        mean = (kernel_size - 1) / 2
        g1 = torch.exp(-((coords - mean) ** 2) / (2 * sigma ** 2))
        kernel = g1[:, None] * g1[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, kernel_size, kernel_size).clone())
        self.groups = channels
        self.step = int(1 / scale)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        x = F.conv2d(x, self.weight.to(x.dtype), groups=self.groups)
        return x[:, :, :: self.step, :: self.step]


__all__ = [
    "AntiAliasInterpolation2d", "DownBlock2d", "Hourglass", "NORMS", "ResBlock2d", "SameBlock2d",
    "UpBlock2d", "kp2gaussian", "make_coordinate_grid", "warp",
]
