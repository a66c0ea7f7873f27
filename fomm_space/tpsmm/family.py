"""TPSMM behind the engine's interface: 5 keypoints per thin-plate spline, no jacobians;
standard, relative and AVD motion."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..family import MotionFamily
from ..fast import fold_batchnorm, rewrite_blocks
from ..motion import Keypoints
from .networks import AVDNetwork, DenseMotionNetwork, InpaintingNetwork, KPDetector
from .networks.resnet import BasicBlock, ResNet18


class TpsmmNetworks(MotionFamily):
    """TPSMM's inference networks (attribute names = the checkpoint's state-dict names).
    ``avd_network`` is ``None`` for a checkpoint without one."""

    family = "tpsmm"

    def __init__(self, kp_detector: KPDetector, dense_motion_network: DenseMotionNetwork,
                 inpainting_network: InpaintingNetwork, avd_network: AVDNetwork | None = None):
        super().__init__()
        self.kp_detector = kp_detector
        self.dense_motion_network = dense_motion_network
        self.inpainting_network = inpainting_network
        self.avd_network = avd_network

    @property
    def has_avd(self) -> bool:
        return self.avd_network is not None

    def keypoints(self, images: torch.Tensor) -> Keypoints:
        return self.kp_detector(images)

    def prepare(self, image: torch.Tensor) -> dict[str, Any]:
        """The source image, its downsampled copy and its encoding at every level."""
        return {"image": image, "motion_image": self.dense_motion_network.downsample(image),
                "maps": self.inpainting_network.encode(image)}

    def motion(self, prepared: dict[str, Any], kp_source: Keypoints, kp_driving: Keypoints) -> dict[str, Any]:
        return self.dense_motion_network(prepared["motion_image"], kp_driving["value"], kp_source["value"],
                                         downsampled=True)

    def decode(self, prepared: dict[str, Any], motion: dict[str, Any]) -> torch.Tensor:
        return self.inpainting_network.decode(prepared["maps"], prepared["image"], motion)["prediction"]

    def transfer(self, kp_source: Keypoints, kp_driving: Keypoints, kp_initial: Keypoints, *,
                 relative: bool, adapt_scale: bool, scale: float | None, avd: bool = False) -> Keypoints:
        """The authors' three modes: ``avd`` (AVD network on source and driving keypoints),
        relative (the source moved by the driving displacement from the reference frame,
        times ``scale``; the authors always scale, ``adapt_scale=False`` gives scale 1)
        and standard (the driving keypoints as they are)."""
        if avd and self.avd_network is not None:
            return {"value": self.avd_network(kp_source["value"].float(), kp_driving["value"].float())}
        return super().transfer(kp_source, kp_driving, kp_initial, relative=relative, adapt_scale=adapt_scale,
                                scale=scale)

    def _rewrite(self, cpu: bool) -> None:
        for module in self.kp_detector.modules():
            if isinstance(module, (BasicBlock, ResNet18)):
                _fold_resnet_norms(module)
        rewrite_blocks(self.kp_detector, cpu)
        rewrite_blocks(self.dense_motion_network, cpu)
        rewrite_blocks(self.inpainting_network, cpu)

    def decoder_modules(self) -> list[nn.Module]:
        return [self.dense_motion_network, self.inpainting_network]


def _fold_resnet_norms(module: BasicBlock | ResNet18) -> None:
    """Fold ``bn1`` (and ``bn2``, the shortcut's BatchNorm) into the convolutions before them."""
    module.conv1 = fold_batchnorm(module.conv1, module.bn1)
    module.bn1 = nn.Identity()
    if isinstance(module, BasicBlock):
        module.conv2 = fold_batchnorm(module.conv2, module.bn2)
        module.bn2 = nn.Identity()
        if module.downsample is not None:
            module.downsample = fold_batchnorm(module.downsample[0], module.downsample[1])
