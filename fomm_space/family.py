"""What the engine asks of a model family's networks (FOMM, TPSMM).

The engine (:mod:`fomm_space.model`) owns the device, the precision, batching,
streaming, smoothing and the reference frame; a family owns its networks and how they
turn keypoints into pictures. Keypoints travel as a dict: ``value`` (B, K, 2), (x, y)
in [-1, 1], and for FOMM models with jacobians also ``jacobian`` (B, K, 2, 2).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .errors import InputError
from .motion import Keypoints, transfer_motion


def no_avd_message(family: str) -> str:
    """What a user is told when asking the AVD mode of a model without an AVD network."""
    return (f"This {family.upper()} model has no AVD network (only TPSMM checkpoints with one have it); "
            "animate without the AVD mode (relative or standard motion).")


class MotionFamily(nn.Module):
    """The inference networks of one model, as plain modules (no device code).

    Subclasses implement :meth:`keypoints`, :meth:`prepare`, :meth:`motion` and
    :meth:`decode` (together :meth:`generate`), and
    may override :meth:`transfer` (TPSMM adds its AVD mode) and :meth:`_rewrite`.
    """

    family: str = ""

    @property
    def has_avd(self) -> bool:
        """Whether :meth:`transfer` supports ``avd=True``."""
        return False

    def keypoints(self, images: torch.Tensor) -> Keypoints:
        """Keypoints of (B, C, H, W) images in [0, 1] (float32 in, float32 out)."""
        raise NotImplementedError

    def prepare(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything that depends on the (1, C, H, W) source image alone."""
        raise NotImplementedError

    def motion(self, prepared: dict[str, torch.Tensor], kp_source: Keypoints,
               kp_driving: Keypoints) -> dict[str, torch.Tensor]:
        """The dense motion from the source to each of the B driving keypoint sets (the
        family's own dict: deformation, occlusion, ...)."""
        raise NotImplementedError

    def decode(self, prepared: dict[str, torch.Tensor], motion: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, C, H, W) float32 frames in [0, 1]: the prepared source warped by ``motion``
        and decoded."""
        raise NotImplementedError

    def generate(self, prepared: dict[str, torch.Tensor], kp_source: Keypoints,
                 kp_driving: Keypoints) -> torch.Tensor:
        """(B, C, H, W) float32 frames in [0, 1]: the source moved to the B keypoint sets."""
        return self.decode(prepared, self.motion(prepared, kp_source, kp_driving))

    def transfer(self, kp_source: Keypoints, kp_driving: Keypoints, kp_initial: Keypoints, *,
                 relative: bool, adapt_scale: bool, scale: float | None, avd: bool = False) -> Keypoints:
        """Keypoints for the source (see :func:`~fomm_space.motion.transfer_motion`);
        ``avd`` needs :attr:`has_avd`."""
        if avd:
            raise InputError(no_avd_message(self.family))
        return transfer_motion(kp_source, kp_driving, kp_initial, relative=relative, adapt_scale=adapt_scale,
                               scale=scale)

    def optimized(self, *, cpu: bool) -> "MotionFamily":
        """A faster copy for inference (see :mod:`fomm_space.fast`); this one is untouched."""
        from .fast import finish_for_inference

        fast = copy.deepcopy(self).eval()
        fast._rewrite(cpu)
        return finish_for_inference(fast)

    def _rewrite(self, cpu: bool) -> None:
        from .fast import rewrite_blocks

        rewrite_blocks(self, cpu)

    def decoder_modules(self) -> list[nn.Module]:
        """The modules whose convolution weights may be stored at a reduced precision on
        a GPU (the image decoder; keypoint detectors stay in fp32)."""
        raise NotImplementedError
