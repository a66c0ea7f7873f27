"""Steadier keypoints: a One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) over time.

Slow movements are smoothed strongly (jitter goes), fast ones lightly (no lag): the
cut-off frequency rises with the filtered speed.
"""

from __future__ import annotations

import math

import torch

from .motion import Keypoints


def one_euro_parameters(strength: float) -> tuple[float, float]:
    """(min_cutoff in Hz, beta) for a strength in (0, 1]; stronger = lower cut-off."""
    return 4.0 * (1.0 - strength) ** 2 + 0.1, 1.0


class KeypointSmoother:
    """Filters driving keypoints frame by frame, keeping its state across batches.

    Args:
        strength: 0 (off) to 1 (strongest).
        fps: frames per second of the driving clip (the filter works in seconds).
    """

    def __init__(self, strength: float, fps: float = 25.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta = one_euro_parameters(strength)
        self.dt = 1.0 / fps
        self.d_alpha = self._alpha(d_cutoff)
        self._value: dict[str, torch.Tensor] = {}
        self._speed: dict[str, torch.Tensor] = {}

    def _alpha(self, cutoff: float | torch.Tensor):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def _step(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self._value:
            self._value[name], self._speed[name] = x, torch.zeros_like(x)
            return x
        prev = self._value[name]
        speed = self.d_alpha * (x - prev) / self.dt + (1 - self.d_alpha) * self._speed[name]
        alpha = self._alpha(self.min_cutoff + self.beta * speed.abs())
        value = alpha * x + (1 - alpha) * prev
        self._value[name], self._speed[name] = value, speed
        return value

    def snapshot(self) -> tuple[dict, dict]:
        """The filter state, to go back to with :meth:`restore` (when a batch is redone)."""
        return dict(self._value), dict(self._speed)

    def restore(self, state: tuple[dict, dict]) -> None:
        self._value, self._speed = dict(state[0]), dict(state[1])

    def __call__(self, keypoints: Keypoints) -> Keypoints:
        """Smooth a batch of consecutive frames: ``value`` (B, K, 2) [, ``jacobian``]."""
        out = {}
        for name, batch in keypoints.items():
            x = batch.float()
            out[name] = torch.stack([self._step(name, x[i]) for i in range(x.shape[0])]).to(batch.dtype)
        return out
