"""Inference-only rewrites of the networks of both families: the same function, computed faster.

:func:`optimize_for_inference` returns a copy of a network in which

* every BatchNorm that follows a convolution is folded into it (InstanceNorm, which
  depends on the image, stays; TPSMM's blocks use it);
* each large up block (nearest x2, then conv 3x3) becomes one 3x3 convolution at the
  low resolution with four outputs per channel, one per sub-pixel phase, then a pixel
  shuffle: no upsampled tensor is made (by Winograd, the shuffle is part of writing the
  output);
* on the CPU, 3x3 convolutions pick their method by feature-map size: one matrix
  product over unfolded patches for small maps (the hourglass's 2x2 to 8x8 levels,
  where a direct convolution spends its time re-reading large weights), Winograd's
  F(4x4, 3x3) for large maps with many channels (2.25 multiplications per output where
  the direct method needs 9; a few rows of tiles at a time, so that the transformed
  tiles stay in the cache), oneDNN's direct convolution in between.

Derived weights (phases, Winograd transforms) are made on first use at a size that
needs them, so memory holds only what the model's resolution uses.
The results equal the original networks' up to float rounding (relative 1e-5).
The original modules, and so their state dicts, are left untouched.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d

_BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                    [0, 1, -1, 8, -8, 1]], dtype=torch.float64)
# Feature-map sizes (pixels) and channel counts where each CPU method wins here.
GEMM_MAX_PIXELS = 8 * 8
WINOGRAD_MIN_PIXELS = 16 * 16
WINOGRAD_MIN_CHANNELS = 128
PHASE_MIN_PIXELS = 32 * 32
# Largest transformed-tile buffer (bytes) one Winograd step makes.
WINOGRAD_CHUNK_BYTES = 12 * 2**20


def fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv computing ``norm(conv(x))`` (eval-mode BatchNorm)."""
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        fused.weight.copy_((conv.weight.double() * scale[:, None, None, None]).to(conv.weight.dtype))
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        fused.bias = nn.Parameter(((bias - norm.running_mean.double()) * scale + norm.bias.double())
                                  .to(conv.weight.dtype), requires_grad=False)
    return fused


def _derived(make):
    """Run ``make()`` as ordinary tensor code even inside ``torch.inference_mode``, so
    that what it builds can be kept and reused by later calls in any mode."""
    with torch.inference_mode(False), torch.no_grad():
        return make()


@lru_cache(maxsize=8)
def _winograd_transforms(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The input (36, 36) and output (16, 36) tile transforms of F(4x4, 3x3)."""
    return torch.kron(_BT, _BT).to(device, dtype), torch.kron(_AT, _AT).to(device, dtype)


class Conv3x3(nn.Module):
    """A 3x3, stride-1, padding-1 convolution on the CPU, by the method that is
    fastest for the input's size (see the module docstring).

    Input and output are (B, C, H, W) (channels-last memory preferred). Under autocast,
    or with an input dtype other than the weights', ``F.conv2d`` computes it: Winograd's
    transforms amplify rounding, so at a reduced precision they would lose the picture.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) \
                or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("Conv3x3 needs a plain 3x3 convolution with padding 1.")
        weight = conv.weight.detach()
        self.register_buffer("weight", weight.clone())
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(weight.shape[0])
        self.register_buffer("bias", bias.clone())
        self.winograd = min(weight.shape[:2]) >= WINOGRAD_MIN_CHANNELS
        self._u: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        if x.dtype != self.weight.dtype or torch.is_autocast_enabled(x.device.type):
            return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), padding=1)
        if h * w <= GEMM_MAX_PIXELS:
            return self._gemm(x)
        if self._winograd_applies(x):
            return self._winograd(x)
        return F.conv2d(x, self.weight, self.bias, padding=1)

    def _gemm(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))
        cols = torch.cat([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], dim=3)
        # (O, ky, kx, C): a view of channels-last weights
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.weight.shape[0], -1)
        out = torch.matmul(cols, weight.t()) + self.bias               # (B, H, W, O)
        return out.permute(0, 3, 1, 2)                                  # channels-last memory

    def _winograd_weights(self) -> torch.Tensor:
        if self._u is None or self._u.device != self.weight.device:
            def make():
                weight = self.weight
                g = _G.to(weight.device)
                u = torch.einsum("ai,ocij,bj->abco", g, weight.double(), g)  # (6, 6, Cin, Cout)
                return u.reshape(36, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()
            self._u = _derived(make)
        return self._u

    def _winograd_applies(self, x: torch.Tensor) -> bool:
        return self.winograd and x.dtype == self.weight.dtype and x.shape[2] * x.shape[3] >= WINOGRAD_MIN_PIXELS

    def shuffled(self, x: torch.Tensor) -> torch.Tensor:
        """``F.pixel_shuffle(self(x), 2)``, without the intermediate where Winograd applies."""
        if self._winograd_applies(x):
            return self._winograd(x, shuffle=True)
        return F.pixel_shuffle(self(x), 2)

    def _winograd(self, x: torch.Tensor, shuffle: bool = False) -> torch.Tensor:
        u = self._winograd_weights()
        kin, kout = _winograd_transforms(x.dtype, x.device)
        b, c, h, w = x.shape
        nh, nw = -(-h // 4), -(-w // 4)
        o = u.shape[2]
        # Zero padding: 1 for the convolution, more at the bottom/right to whole tiles.
        xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 4 * nw - w + 1, 1, 4 * nh - h + 1))
        if shuffle:  # channel k*4 + 2i + j goes to high-res pixel (2y + i, 2x + j), feature k
            out = x.new_empty(b, 2 * h, 2 * w, o // 4)
            bias = self.bias.view(o // 4, 2, 2).permute(1, 2, 0).unsqueeze(1)  # (i, 1, j, k)
        else:
            out = x.new_empty(b, h, w, o)
        # One image, and rows of tiles, at a time: the transformed tiles stay in the
        # cache, and within the sizes the allocator recycles instead of mapping afresh.
        row_bytes = 36 * nw * max(c, o) * x.element_size()
        steps = -(-row_bytes * nh // WINOGRAD_CHUNK_BYTES)
        rows = -(-nh // steps)
        for i in range(b):
            for r0 in range(0, nh, rows):
                n = min(rows, nh - r0)
                tiles = n * nw
                patches = xp[i, 4 * r0:4 * (r0 + n) + 2].unfold(0, 6, 4).unfold(1, 6, 4).reshape(tiles * c, 36)
                v = torch.matmul(kin, patches.t()).view(36, tiles, c)
                m = torch.bmm(v, u).view(36, tiles * o)
                y = torch.matmul(kout, m)
                hh = min(h - 4 * r0, 4 * n)
                if shuffle:
                    y = y.view(4, 4, n, nw, o // 4, 2, 2).permute(2, 0, 5, 3, 1, 6, 4).reshape(8 * n, 8 * nw, o // 4)
                    torch.add(y[:2 * hh, :2 * w].view(hh, 2, w, 2, o // 4), bias,
                              out=out[i, 8 * r0:8 * r0 + 2 * hh].view(hh, 2, w, 2, o // 4))
                else:
                    y = y.view(4, 4, n, nw, o).permute(2, 0, 3, 1, 4).reshape(4 * n, 4 * nw, o)
                    torch.add(y[:hh, :w], self.bias, out=out[i, 4 * r0:4 * r0 + hh])
        return out.permute(0, 3, 1, 2)


def _conv3x3(conv: nn.Conv2d, cpu: bool) -> nn.Module:
    plain = conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1) \
        and conv.groups == 1 and conv.dilation == (1, 1)
    return Conv3x3(conv) if cpu and plain else conv


def _conv_and_norm(conv: nn.Conv2d, norm: nn.Module, cpu: bool) -> tuple[nn.Module, nn.Module | None]:
    """(conv, None) with a BatchNorm folded in, or (conv, the InstanceNorm to apply after)."""
    if isinstance(norm, nn.BatchNorm2d):
        return _conv3x3(fold_batchnorm(conv, norm), cpu), None
    return _conv3x3(conv, cpu), norm


class _ConvReLU(nn.Module):
    """conv [-> InstanceNorm] -> ReLU [-> 2x2 average pool] (a BatchNorm is folded into the conv)."""

    def __init__(self, conv: nn.Module, pool: bool, norm: nn.Module | None = None):
        super().__init__()
        self.conv = conv
        self.norm = norm
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        out = (self.norm(out) if self.norm is not None else out).relu_()
        return F.avg_pool2d(out, 2) if self.pool else out


class FastUpBlock(nn.Module):
    """Nearest x2 upsample -> conv 3x3 -> norm -> ReLU.

    Inputs of :data:`PHASE_MIN_PIXELS` or more are computed at the low resolution:
    output row ``2i + a`` of the upsampled convolution sees low-resolution rows
    ``i - 1, i`` (a = 0) or ``i, i + 1`` (a = 1) with the 3x3 kernel's rows summed in
    pairs; the four (row, column) phases become four output channels per feature of one
    3x3 convolution, then a pixel shuffle. Smaller inputs are upsampled, as the
    original block does: there the phase weights (four times the block's) don't pay.
    """

    _ROWS = (torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=torch.float64),
             torch.tensor([[0.0, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float64))

    def __init__(self, block: UpBlock2d, cpu: bool):
        super().__init__()
        self.conv, self.norm = _conv_and_norm(block.conv, block.norm, cpu)
        self.cpu = cpu
        self._phase: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] * x.shape[3] < PHASE_MIN_PIXELS:
            out = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        else:
            phase = self._phase_conv()
            out = phase.shuffled(x) if isinstance(phase, Conv3x3) else F.pixel_shuffle(phase(x), 2)
        return (self.norm(out) if self.norm is not None else out).relu_()

    def _phase_conv(self) -> nn.Module:
        weight = self.conv.weight
        if self._phase is None or self._phase.weight.device != weight.device:
            self._phase = _derived(lambda: self._make_phase_conv(weight.detach(), self.conv.bias.detach()))
        return self._phase

    def _make_phase_conv(self, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
        w = weight.double()                                      # (O, C, 3, 3)
        rows = [r.to(w.device) for r in self._ROWS]
        phases = torch.stack([torch.stack([torch.einsum("ij,ocjk,lk->ocil", ra, w, rb)
                                           for rb in rows]) for ra in rows])  # (2, 2, O, C, 3, 3)
        o, c = w.shape[:2]
        conv = nn.Conv2d(c, 4 * o, 3, padding=1, device=w.device, dtype=weight.dtype)
        conv.weight.copy_(phases.permute(2, 0, 1, 3, 4, 5).reshape(4 * o, c, 3, 3))
        conv.bias.copy_(bias.repeat_interleave(4))
        conv.requires_grad_(False)
        return _conv3x3(conv, self.cpu).to(memory_format=torch.channels_last)


class _FoldedResBlock(nn.Module):
    """ResBlock2d with a BatchNorm norm2 folded into conv1 (an InstanceNorm norm2 stays)."""

    def __init__(self, block: ResBlock2d, cpu: bool):
        super().__init__()
        self.norm1 = block.norm1
        self.conv1, self.norm2 = _conv_and_norm(block.conv1, block.norm2, cpu)
        self.conv2 = _conv3x3(block.conv2, cpu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.norm1(x).relu_())
        out = self.norm2(out) if self.norm2 is not None else out
        return self.conv2(out.relu_()).add_(x)


def rewrite_blocks(module: nn.Module, cpu: bool) -> None:
    """Replace, in place, the blocks of :mod:`fomm_space.layers` below ``module`` by
    their fast forms, and (on the CPU) every other plain 3x3 convolution by
    :class:`Conv3x3`."""
    for name, child in module.named_children():
        if isinstance(child, UpBlock2d):
            setattr(module, name, FastUpBlock(child, cpu))
        elif isinstance(child, (DownBlock2d, SameBlock2d)):
            conv, norm = _conv_and_norm(child.conv, child.norm, cpu)
            setattr(module, name, _ConvReLU(conv, pool=isinstance(child, DownBlock2d), norm=norm))
        elif isinstance(child, ResBlock2d):
            setattr(module, name, _FoldedResBlock(child, cpu))
        elif type(child) is nn.Conv2d:
            setattr(module, name, _conv3x3(child, cpu))
        else:
            rewrite_blocks(child, cpu)


def finish_for_inference(module: nn.Module) -> nn.Module:
    """No gradients, channels-last weights: what every rewritten network ends with."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(memory_format=torch.channels_last)


def optimize_for_inference(module: nn.Module, *, cpu: bool) -> nn.Module:
    """A faster copy of an eval-mode network built from :mod:`fomm_space.layers` blocks
    (see the module docstring).

    ``cpu`` picks the CPU convolution methods; GPUs' convolution libraries choose
    their own fast algorithms.
    """
    fast = copy.deepcopy(module).eval()
    rewrite_blocks(fast, cpu)
    return finish_for_inference(fast)
