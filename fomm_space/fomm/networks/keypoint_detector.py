"""Unsupervised keypoint detector (``KPDetector``) of FOMM."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid


class KPDetector(nn.Module):
    """Predicts K keypoints and, optionally, a 2x2 local jacobian per keypoint.

    Constructor arguments are the config keys of ``kp_detector_params`` plus
    ``common_params`` (``num_kp``, ``num_channels``, ``estimate_jacobian``).
    """

    def __init__(self, block_expansion: int, num_kp: int, num_channels: int, max_features: int,
                 num_blocks: int, temperature: float, estimate_jacobian: bool = False,
                 scale_factor: float = 1, single_jacobian_map: bool = False, pad: int = 0):
        super().__init__()
        self.predictor = Hourglass(block_expansion, in_features=num_channels,
                                   max_features=max_features, num_blocks=num_blocks)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps,
                                      kernel_size=7, padding=pad)
            # Identity jacobians at initialisation (matters only for training).
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(self.num_jacobian_maps))
        else:
            self.jacobian = None
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Detect keypoints.

        Args:
            x: (B, C, H, W) float images in [0, 1].
        Returns:
            ``value``: (B, K, 2) keypoints (x, y) in [-1, 1]; with jacobians also
            ``jacobian``: (B, K, 2, 2), row-major.
        """
        if self.scale_factor != 1:
            x = self.down(x)
        feature_map = self.predictor(x)
        logits = self.kp(feature_map).float()
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid(h, w, dtype=heatmap.dtype, device=heatmap.device)
        value = torch.einsum("bkhw,hwc->bkc", heatmap, grid)
        out = {"value": value}
        if self.jacobian is not None:
            jac_map = self.jacobian(feature_map).float().view(b, self.num_jacobian_maps, 4, h, w)
            jacobian = (heatmap.unsqueeze(2) * jac_map).sum(dim=(-2, -1))
            out["jacobian"] = jacobian.view(b, k, 2, 2)
        return out
