"""Dense motion network of FOMM: from sparse keypoint motions to a dense deformation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import AntiAliasInterpolation2d, Hourglass, kp2gaussian, make_coordinate_grid, warp


class DenseMotionNetwork(nn.Module):
    """Predicts a dense backward deformation (driving -> source) and an occlusion map.

    Constructor arguments are the config keys of ``dense_motion_params`` plus
    ``num_kp``, ``num_channels`` and ``estimate_occlusion_map``.
    """

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int,
                 num_channels: int, estimate_occlusion_map: bool = False, scale_factor: float = 1,
                 kp_variance: float = 0.01, *, align_corners: bool = True):
        super().__init__()
        self.hourglass = Hourglass(block_expansion=block_expansion,
                                   in_features=(num_kp + 1) * (num_channels + 1),
                                   max_features=max_features, num_blocks=num_blocks)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        else:
            self.occlusion = None
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        self.align_corners = align_corners
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def downsample(self, source_image: torch.Tensor) -> torch.Tensor:
        """Bring a (B, C, H, W) image to this network's working resolution."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def sparse_motions(self, height: int, width: int, kp_driving: dict[str, torch.Tensor],
                       kp_source: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, K+1, H, W, 2) sampling grids: identity for the background, then per keypoint
        ``J_s J_d^-1 (z - p_d) + p_s`` (without jacobians ``z - p_d + p_s``)."""
        value_d = kp_driving["value"]
        bs = value_d.shape[0]
        identity = make_coordinate_grid(height, width, dtype=value_d.dtype, device=value_d.device)
        coords = identity - value_d[:, :, None, None, :]
        if "jacobian" in kp_driving and "jacobian" in kp_source:
            jacobian = torch.matmul(kp_source["jacobian"], torch.inverse(kp_driving["jacobian"]))
            coords = torch.einsum("bkij,bkhwj->bkhwi", jacobian.expand(bs, -1, -1, -1), coords)
        driving_to_source = coords + kp_source["value"][:, :, None, None, :]
        background = identity.expand(bs, 1, height, width, 2)
        return torch.cat([background, driving_to_source.expand(bs, -1, -1, -1, -1)], dim=1)

    def forward(self, source_image: torch.Tensor, kp_driving: dict[str, torch.Tensor],
                kp_source: dict[str, torch.Tensor], *, downsampled: bool = False
                ) -> dict[str, torch.Tensor]:
        """Estimate the dense motion.

        Args:
            source_image: (1 or B, C, H, W) source in [0, 1]; already at the working
                resolution when ``downsampled`` is true.
            kp_driving: ``value`` (B, K, 2) [, ``jacobian`` (B, K, 2, 2)].
            kp_source: ``value`` (1 or B, K, 2) [, ``jacobian``].
        Returns:
            ``mask`` (B, K+1, h, w), ``sparse_deformed`` (B, K+1, C, h, w),
            ``deformation`` (B, h, w, 2) and, if estimated, ``occlusion_map`` (B, 1, h, w).
        """
        if not downsampled:
            source_image = self.downsample(source_image)
        bs = kp_driving["value"].shape[0]
        _, c, h, w = source_image.shape
        k1 = self.num_kp + 1

        gaussian_driving = kp2gaussian(kp_driving["value"], h, w, self.kp_variance)
        gaussian_source = kp2gaussian(kp_source["value"], h, w, self.kp_variance)
        heatmap = gaussian_driving - gaussian_source
        heatmap = torch.cat([heatmap.new_zeros(bs, 1, h, w), heatmap], dim=1).unsqueeze(2)

        sparse_motion = self.sparse_motions(h, w, kp_driving, kp_source)
        source_repeat = source_image.unsqueeze(1).expand(bs, k1, c, h, w).reshape(bs * k1, c, h, w)
        deformed = warp(source_repeat, sparse_motion.reshape(bs * k1, h, w, 2), self.align_corners)
        deformed = deformed.view(bs, k1, c, h, w)

        net_in = torch.cat([heatmap.to(deformed.dtype), deformed], dim=2).view(bs, -1, h, w)
        prediction = self.hourglass(net_in)
        mask = F.softmax(self.mask(prediction).float(), dim=1)
        deformation = torch.einsum("bkhw,bkhwc->bhwc", mask, sparse_motion.float())
        out = {"sparse_deformed": deformed, "mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction).float())
        return out
