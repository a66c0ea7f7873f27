"""Thin-plate-spline transforms between keypoint groups (TPSMM, Eq. 1-2 of the paper)."""

from __future__ import annotations

import torch

REGULARISATION = 0.01   # added to every diagonal entry of the TPS system, as the authors do


def _radial(d2: torch.Tensor) -> torch.Tensor:
    """The TPS basis U of a squared distance: d2 * ln(d2) (0 at 0)."""
    return d2 * torch.log(d2 + 1e-9)


def tps_parameters(driving: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the TPS that maps driving control points onto source ones.

    Args:
        driving, source: (B, K, N, 2) control points (x, y) of K transforms.
    Returns:
        ``affine`` (B, K, 3, 2) (rows for x, y, 1) and ``radial`` (B, K, N, 2) weights,
        float32 whatever the input.
    """
    p, q = driving.float(), source.float()
    b, k, n, _ = p.shape
    kernel = _radial((p[:, :, :, None] - p[:, :, None, :]).pow(2).sum(-1))         # (B, K, N, N)
    ones = p.new_ones(b, k, n, 1)
    homogeneous = torch.cat([p, ones], dim=3)                                        # (B, K, N, 3)
    top = torch.cat([kernel, homogeneous], dim=3)
    bottom = torch.cat([homogeneous.transpose(2, 3), p.new_zeros(b, k, 3, 3)], dim=3)
    system = torch.cat([top, bottom], dim=2)                                         # (B, K, N+3, N+3)
    system = system + REGULARISATION * torch.eye(n + 3, dtype=p.dtype, device=p.device)
    rhs = torch.cat([q, p.new_zeros(b, k, 3, 2)], dim=2)                             # (B, K, N+3, 2)
    params = torch.linalg.solve(system, rhs)
    return params[:, :, n:], params[:, :, :n]


def tps_grid(driving: torch.Tensor, source: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sampling grids of the K TPS transforms.

    Args:
        driving, source: (B, K, N, 2) control points.
        grid: (H, W, 2) coordinates of the driving frame.
    Returns:
        (B, K, H, W, 2): for every driving-frame point, where to sample the source.
    """
    affine, radial = tps_parameters(driving, source)
    h, w, _ = grid.shape
    z = grid.float().reshape(1, 1, h * w, 2)
    moved = torch.matmul(z, affine[:, :, :2]) + affine[:, :, 2:]                     # (B, K, HW, 2)
    d2 = (z[:, :, :, None] - driving.float()[:, :, None]).pow(2).sum(-1)            # (B, K, HW, N)
    moved = moved + torch.matmul(_radial(d2), radial)
    return moved.view(*driving.shape[:2], h, w, 2)
