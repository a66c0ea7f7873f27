"""Motion transfer: turn driving keypoints into keypoints for the source (the authors'
``normalize_kp``), with relative motion and movement-scale adaptation."""

from __future__ import annotations

import numpy as np
import torch

Keypoints = dict[str, torch.Tensor]


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (N, 2) points (0 for fewer than 3 or collinear points)."""
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple] = []
    upper: list[tuple] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1])
    if len(hull) < 3:
        return 0.0
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> float:
    """sqrt(hull area of the source keypoints / hull area of the initial driving ones).

    Degenerate hulls (all keypoints on a line) give 1, where the authors' code crashed.
    """
    source_area = convex_hull_area(kp_source["value"][0].detach().float().cpu().numpy())
    driving_area = convex_hull_area(kp_driving_initial["value"][0].detach().float().cpu().numpy())
    if source_area <= 0 or driving_area <= 0:
        return 1.0
    return float(np.sqrt(source_area) / np.sqrt(driving_area))


def transfer_motion(kp_source: Keypoints, kp_driving: Keypoints, kp_driving_initial: Keypoints,
                    *, relative: bool = True, adapt_scale: bool = True,
                    scale: float | None = None) -> Keypoints:
    """Keypoints that move the source as the driving frames move.

    Args:
        kp_source: ``value`` (1, K, 2) [, ``jacobian`` (1, K, 2, 2)].
        kp_driving: the driving frames' keypoints, ``value`` (B, K, 2) [, ``jacobian``].
        kp_driving_initial: the keypoints of the reference driving frame (batch 1).
        relative: move the source keypoints by the driving displacement from the
            reference frame; otherwise use the driving keypoints as they are.
        adapt_scale: with ``relative``, scale displacements by the ratio of keypoint
            hull sizes (source over reference frame). Ignored without ``relative``.
        scale: a precomputed :func:`movement_scale`, to skip recomputing it per batch.
    Returns:
        Keypoints with the batch of ``kp_driving``. Models without jacobians are handled.
    """
    if not relative:
        return dict(kp_driving)
    if scale is None:
        scale = movement_scale(kp_source, kp_driving_initial) if adapt_scale else 1.0
    out = dict(kp_driving)
    out["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * scale + kp_source["value"]
    if "jacobian" in kp_driving and "jacobian" in kp_source:
        jacobian_diff = torch.matmul(kp_driving["jacobian"], torch.inverse(kp_driving_initial["jacobian"]))
        out["jacobian"] = torch.matmul(jacobian_diff, kp_source["jacobian"])
    return out
