"""TPSMM's keypoint detector: a ResNet-18 regressing 5 control points per TPS."""

from __future__ import annotations

import torch
from torch import nn

from .resnet import ResNet18


class KPDetector(nn.Module):
    """Predicts ``5 * num_tps`` keypoints; keypoints 5k .. 5k+4 steer TPS k.

    Constructor arguments are the config's ``common_params`` keys (``bg`` and
    ``multi_mask`` are accepted for that reason and unused here).
    """

    def __init__(self, num_tps: int, num_channels: int = 3, bg: bool = False, multi_mask: bool = True):
        super().__init__()
        self.num_tps = num_tps
        self.fg_encoder = ResNet18(num_outputs=num_tps * 5 * 2, in_channels=num_channels)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, C, H, W) images in [0, 1] (not mean/std-normalised) -> ``value``
        (B, 5 * num_tps, 2) keypoints (x, y) inside (-1, 1)."""
        out = torch.sigmoid(self.fg_encoder(image).float()) * 2 - 1
        return {"value": out.view(image.shape[0], self.num_tps * 5, 2)}
