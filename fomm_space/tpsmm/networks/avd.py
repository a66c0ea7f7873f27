"""TPSMM's AVD network (animation via disentanglement): driving pose, source identity."""

from __future__ import annotations

import torch
from torch import nn


def _mlp(sizes: list[int], relu_inplace: bool) -> nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU between consecutive sizes; the last Linear bare.
    Sequential indices 0, 1, (2), 3, 4, ... as in the checkpoints."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.extend([nn.BatchNorm1d(b), nn.ReLU(inplace=relu_inplace)])
    return nn.Sequential(*layers)


class AVDNetwork(nn.Module):
    """Keypoints that carry the driving pose with the source's identity.

    Constructor arguments: ``num_tps`` and the config's ``avd_network_params`` keys.
    """

    def __init__(self, num_tps: int, id_bottle_size: int = 64, pose_bottle_size: int = 64):
        super().__init__()
        size = 5 * 2 * num_tps
        self.num_tps = num_tps
        self.id_encoder = _mlp([size, 256, 512, 1024, id_bottle_size], relu_inplace=True)
        self.pose_encoder = _mlp([size, 256, 512, 1024, pose_bottle_size], relu_inplace=True)
        self.decoder = _mlp([pose_bottle_size + id_bottle_size, 1024, 512, 256, size], relu_inplace=False)

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """(1 or B, 5K, 2) source and (B, 5K, 2) driving keypoints -> (B, 5K, 2) keypoints
        (no output activation: they may leave [-1, 1])."""
        bs = kp_driving.shape[0]
        pose = self.pose_encoder(kp_driving.reshape(bs, -1))
        identity = self.id_encoder(kp_source.reshape(kp_source.shape[0], -1)).expand(bs, -1)
        return self.decoder(torch.cat([pose, identity], dim=1)).view(bs, self.num_tps * 5, 2)
