"""TPSMM's dense motion network: K thin-plate-spline motions and a background, weighted
per pixel, and occlusion masks at several resolutions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import AntiAliasInterpolation2d, Hourglass, UpBlock2d, kp2gaussian, make_coordinate_grid
from .tps import tps_grid

OCCLUSION_MAPS = 4   # multi-mask: one map per level of the inpainting network (3 down blocks)


class DenseMotionNetwork(nn.Module):
    """From keypoints to a dense backward deformation (driving -> source) and occlusion maps.

    Constructor arguments are the config keys of ``dense_motion_params`` plus
    ``common_params`` (``bg`` is accepted for that reason: the background motion is the
    identity at inference, as in the authors' demo).
    """

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_tps: int,
                 num_channels: int = 3, scale_factor: float = 0.25, bg: bool = False, multi_mask: bool = True,
                 kp_variance: float = 0.01):
        super().__init__()
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)
        self.scale_factor = scale_factor
        self.multi_mask = multi_mask
        self.num_tps = num_tps
        self.kp_variance = kp_variance
        self.hourglass = Hourglass(block_expansion, in_features=num_channels * (num_tps + 1) + num_tps * 5 + 1,
                                   max_features=max_features, num_blocks=num_blocks, norm="instance")
        filters = self.hourglass.decoder.level_filters
        self.maps = nn.Conv2d(filters[-1], num_tps + 1, kernel_size=7, padding=3)
        if multi_mask:
            self.up_nums = int(math.log2(1 / scale_factor))
            from_levels = OCCLUSION_MAPS - self.up_nums
            if not 0 <= from_levels <= len(filters):
                raise ValueError(f"multi_mask needs 4 - log2(1/scale_factor) between 0 and num_blocks "
                                 f"({num_blocks}); scale_factor {scale_factor} gives {from_levels}")
            self.up = nn.ModuleList(UpBlock2d(filters[-1] // 2 ** i, filters[-1] // 2 ** (i + 1), norm="instance")
                                    for i in range(self.up_nums))
            channels = filters[len(filters) - from_levels:] + [filters[-1] // 2 ** (i + 1)
                                                               for i in range(self.up_nums)]
        else:
            self.up_nums = 0
            channels = [filters[-1]]
        self.occlusion = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=7, padding=3) for c in channels)

    def downsample(self, source_image: torch.Tensor) -> torch.Tensor:
        """Bring a (B, C, H, W) image to this network's working resolution."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def transformations(self, height: int, width: int, kp_driving: torch.Tensor,
                        kp_source: torch.Tensor) -> torch.Tensor:
        """(B, K+1, h, w, 2) float32 sampling grids: the identity (background), then the K TPS."""
        bs = kp_driving.shape[0]
        grid = make_coordinate_grid(height, width, dtype=torch.float32, device=kp_driving.device)
        driving = kp_driving.float().view(bs, self.num_tps, 5, 2)
        source = kp_source.float().view(kp_source.shape[0], self.num_tps, 5, 2).expand(bs, -1, -1, -1)
        tps = tps_grid(driving, source, grid)
        return torch.cat([grid.expand(bs, 1, height, width, 2), tps], dim=1)

    def forward(self, source_image: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor, *,
                downsampled: bool = False) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Estimate the dense motion.

        Args:
            source_image: (1 or B, C, H, W) source in [0, 1]; already at the working
                resolution when ``downsampled`` is true.
            kp_driving: (B, 5K, 2) keypoints of the driving frames (after motion transfer).
            kp_source: (1 or B, 5K, 2) keypoints of the source.
        Returns:
            ``deformation`` (B, h, w, 2) float32, ``contribution_maps`` (B, K+1, h, w),
            ``deformed_source`` (B, K+1, C, h, w), ``transformations`` (B, K+1, h, w, 2),
            ``occlusion_map``: a list of (B, 1, ., .) maps, coarse to fine.
        """
        if not downsampled:
            source_image = self.downsample(source_image)
        bs = kp_driving.shape[0]
        _, c, h, w = source_image.shape
        k1 = self.num_tps + 1
        with torch.autocast(source_image.device.type, enabled=False):
            heatmap = kp2gaussian(kp_driving.float(), h, w, self.kp_variance) \
                - kp2gaussian(kp_source.float(), h, w, self.kp_variance)
            heatmap = torch.cat([heatmap.new_zeros(bs, 1, h, w), heatmap], dim=1)
            transformations = self.transformations(h, w, kp_driving, kp_source)
            source_repeat = source_image.float().unsqueeze(1).expand(bs, k1, c, h, w).reshape(bs * k1, c, h, w)
            deformed = F.grid_sample(source_repeat, transformations.reshape(bs * k1, h, w, 2), mode="bilinear",
                                     padding_mode="zeros", align_corners=True).view(bs, k1, c, h, w)
        net_in = torch.cat([heatmap, deformed.view(bs, -1, h, w)], dim=1)
        levels = self.hourglass.levels(net_in.to(source_image.dtype))
        contribution = F.softmax(self.maps(levels[-1]).float(), dim=1)
        with torch.autocast(source_image.device.type, enabled=False):
            deformation = torch.einsum("bkhw,bkhwc->bhwc", contribution, transformations)
        occlusion = []
        if self.multi_mask:
            from_levels = len(self.occlusion) - self.up_nums
            for i in range(from_levels):
                occlusion.append(torch.sigmoid(self.occlusion[i](levels[len(levels) - from_levels + i]).float()))
            x = levels[-1]
            for i, up in enumerate(self.up):
                x = up(x)
                occlusion.append(torch.sigmoid(self.occlusion[from_levels + i](x).float()))
        else:
            occlusion.append(torch.sigmoid(self.occlusion[0](levels[-1]).float()))
        return {"deformation": deformation, "contribution_maps": contribution, "deformed_source": deformed,
                "transformations": transformations, "occlusion_map": occlusion}
