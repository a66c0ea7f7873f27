"""Occlusion-aware generator of FOMM."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, warp
from .dense_motion import DenseMotionNetwork


class OcclusionAwareGenerator(nn.Module):
    """Warps the encoded source by the dense motion, masks occlusions, decodes an image.

    Constructor arguments are the config keys of ``generator_params`` plus
    ``common_params``; ``estimate_jacobian`` is accepted for that reason and unused.
    """

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, num_bottleneck_blocks: int,
                 estimate_occlusion_map: bool = False, dense_motion_params: dict[str, Any] | None = None,
                 estimate_jacobian: bool = False, *, align_corners: bool = True):
        super().__init__()
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(
                num_kp=num_kp, num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map, align_corners=align_corners,
                **dense_motion_params)
        else:
            self.dense_motion_network = None
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(max_features, block_expansion * 2 ** i),
                        min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_down_blocks)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(min(max_features, block_expansion * 2 ** (num_down_blocks - i)),
                      min(max_features, block_expansion * 2 ** (num_down_blocks - i - 1)))
            for i in range(num_down_blocks)
        )
        features = min(max_features, block_expansion * 2 ** num_down_blocks)
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(features, kernel_size=3, padding=1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.estimate_occlusion_map = estimate_occlusion_map
        self.num_channels = num_channels
        self.align_corners = align_corners

    def encode(self, source_image: torch.Tensor) -> torch.Tensor:
        """Source features (depend on the source alone): (B, C, H, W) -> (B, F, H/2^d, W/2^d)."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        return out

    def deform(self, features: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Warp (B, F, h, w) features by a (B, h', w', 2) deformation, resized bilinearly."""
        h, w = features.shape[2:]
        if deformation.shape[1:3] != (h, w):
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                        align_corners=False).permute(0, 2, 3, 1)
        return warp(features, deformation, self.align_corners)

    def decode(self, features: torch.Tensor, motion: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Warp and mask the source features by ``motion`` (when given), then decode them.

        Returns (B, C, H, W) images in [0, 1], B being the batch of ``motion``.
        """
        out = features
        if motion is not None:
            bs = motion["deformation"].shape[0]
            out = self.deform(features.expand(bs, -1, -1, -1), motion["deformation"])
            occlusion = motion.get("occlusion_map")
            if occlusion is not None:
                if occlusion.shape[2:] != out.shape[2:]:
                    occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear",
                                              align_corners=False)
                out = out * occlusion.to(out.dtype)
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out).float())

    def forward(self, source_image: torch.Tensor, kp_driving: dict[str, torch.Tensor],
                kp_source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Animate ``source_image`` (1 or B, C, H, W) to the B driving keypoints.

        Returns ``prediction`` (B, C, H, W) in [0, 1] and, with a dense motion network,
        ``mask``, ``sparse_deformed``, ``deformation``, ``deformed`` (the source image
        warped by the deformation) and ``occlusion_map`` when estimated.
        """
        features = self.encode(source_image)
        if self.dense_motion_network is None:
            bs = kp_driving["value"].shape[0]
            return {"prediction": self.decode(features.expand(bs, -1, -1, -1), None)}
        motion = self.dense_motion_network(source_image, kp_driving, kp_source)
        bs = motion["deformation"].shape[0]
        deformed = self.deform(source_image.expand(bs, -1, -1, -1), motion["deformation"])
        return {**motion, "deformed": deformed, "prediction": self.decode(features, motion)}
