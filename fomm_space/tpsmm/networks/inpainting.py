"""TPSMM's inpainting network: encodes the source, warps and occludes every level of the
encoding by the dense motion, and decodes the driving frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w), align_corners=True; unchanged at that size."""
    return x if tuple(x.shape[2:]) == tuple(size) else F.interpolate(x, size=size, mode="bilinear",
                                                                     align_corners=True)


class InpaintingNetwork(nn.Module):
    """Constructor arguments are the config keys of ``generator_params`` plus
    ``common_params`` (``num_tps`` and ``bg`` accepted for that reason and unused)."""

    def __init__(self, num_channels: int, block_expansion: int, max_features: int, num_down_blocks: int,
                 multi_mask: bool = True, num_tps: int | None = None, bg: bool = False):
        super().__init__()
        self.num_down_blocks = num_down_blocks
        self.multi_mask = multi_mask
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3, norm="instance")
        down, up, res = [], [], []
        for i in range(num_down_blocks):
            in_features = min(max_features, block_expansion * 2 ** i)
            out_features = min(max_features, block_expansion * 2 ** (i + 1))
            down.append(DownBlock2d(in_features, out_features, norm="instance"))
            decoder_in = out_features if i == num_down_blocks - 1 else 2 * out_features
            up.append(UpBlock2d(decoder_in, in_features, norm="instance"))
            res.extend([ResBlock2d(decoder_in, norm="instance"), ResBlock2d(decoder_in, norm="instance")])
        self.down_blocks = nn.ModuleList(down)
        # Index 0 is the deepest level (the authors build per level and reverse).
        self.up_blocks = nn.ModuleList(up[::-1])
        self.resblock = nn.ModuleList(res[::-1])
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.num_channels = num_channels

    def encode(self, source_image: torch.Tensor) -> list[torch.Tensor]:
        """The source's features at every level: ``first`` .. deepest (depend on the source alone)."""
        maps = [self.first(source_image)]
        for block in self.down_blocks:
            maps.append(block(maps[-1]))
        return maps

    def warp(self, x: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """``grid_sample`` (bilinear, zeros, align_corners=True) of (B, C, h, w) by a
        (B, h', w', 2) deformation resized to (h, w); sampled in float32."""
        grid = _resize(deformation.permute(0, 3, 1, 2), x.shape[2:]).permute(0, 2, 3, 1)
        with torch.autocast(x.device.type, enabled=False):
            out = F.grid_sample(x.float(), grid.float(), mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.to(x.dtype)

    def _occlude(self, x: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
        if not self.multi_mask:
            occlusion = _resize(occlusion, x.shape[2:])
        return x * occlusion.to(x.dtype)

    def decode(self, encoder_maps: list[torch.Tensor], source_image: torch.Tensor,
               motion: dict) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """The driving frames from the source's features and the dense motion.

        Args:
            encoder_maps: :meth:`encode` of the (1 or B) source images.
            source_image: (1 or B, C, H, W).
            motion: the dense motion network's output for B frames.
        Returns:
            ``prediction`` (B, C, H, W) float32 in [0, 1], ``deformed`` (the source warped
            by the deformation) and ``warped_encoder_maps`` (deepest first).
        """
        deformation = motion["deformation"]
        occlusion = motion["occlusion_map"]
        bs = deformation.shape[0]
        maps = [m.expand(bs, -1, -1, -1) for m in encoder_maps]
        out = self._occlude(self.warp(maps[-1], deformation), occlusion[0])
        warped = [out]
        encoded = out
        for i in range(self.num_down_blocks):
            out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
            out = self.up_blocks[i](out)
            encoded = self._occlude(self.warp(maps[-(i + 2)], deformation), occlusion[i + 1 if self.multi_mask else 0])
            warped.append(encoded)
            if i < self.num_down_blocks - 1:
                out = torch.cat([out, encoded], dim=1)
        deformed = self.warp(source_image.expand(bs, -1, -1, -1).float(), deformation)
        last = occlusion[-1]
        if not self.multi_mask:
            last = _resize(last, out.shape[2:])
        last = last.float()
        out = out * (1 - last).to(out.dtype) + encoded
        out = torch.sigmoid(self.final(out).float())
        prediction = out * (1 - last) + deformed * last
        return {"prediction": prediction, "deformed": deformed, "warped_encoder_maps": warped}

    def forward(self, source_image: torch.Tensor, motion: dict) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Animate (1 or B, C, H, W) sources by ``motion`` (see :meth:`decode`)."""
        return self.decode(self.encode(source_image), source_image, motion)
