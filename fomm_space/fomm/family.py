"""FOMM behind the engine's interface: keypoints with jacobians, dense motion from local
affine transforms, the occlusion-aware generator."""

from __future__ import annotations

import torch
from torch import nn

from ..family import MotionFamily
from ..motion import Keypoints
from .networks import KPDetector, OcclusionAwareGenerator


class FommNetworks(MotionFamily):
    """A FOMM keypoint detector and generator (``kp_detector``, ``generator``: the
    checkpoint's state-dict names)."""

    family = "fomm"

    def __init__(self, kp_detector: KPDetector, generator: OcclusionAwareGenerator):
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator

    @property
    def dense_motion(self):
        return self.generator.dense_motion_network

    def keypoints(self, images: torch.Tensor) -> Keypoints:
        return self.kp_detector(images)

    def prepare(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator's encoding and the dense-motion network's downsampled copy."""
        return {"features": self.generator.encode(image), "motion_image": self.dense_motion.downsample(image)}

    def motion(self, prepared: dict[str, torch.Tensor], kp_source: Keypoints,
               kp_driving: Keypoints) -> dict[str, torch.Tensor]:
        return self.dense_motion(prepared["motion_image"], kp_driving, kp_source, downsampled=True)

    def decode(self, prepared: dict[str, torch.Tensor], motion: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.generator.decode(prepared["features"], motion)

    def decoder_modules(self) -> list[nn.Module]:
        return [self.generator]
