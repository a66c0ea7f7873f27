"""Inference-only rewrites of the FOMM networks: the same function, computed faster.

:func:`optimize_for_inference` returns a copy of a network in which

* every BatchNorm that follows a convolution is folded into it;
* each up block (nearest x2, then conv 3x3) becomes one 3x3 convolution at the low
  resolution with four outputs per channel, one per sub-pixel phase, then a pixel
  shuffle: no upsampled tensor is made;
* on the CPU, large 3x3 convolutions use Winograd's F(4x4, 3x3) algorithm, which needs
  2.25 multiplications per output where the direct method needs 9.

The results equal the original networks' up to float rounding (relative 1e-5).
The original modules, and so their state dicts, are left untouched.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .networks.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d

_BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                    [0, 1, -1, 8, -8, 1]], dtype=torch.float64)
# Smallest feature map (pixels) and channel count for which Winograd beats oneDNN here.
WINOGRAD_MIN_PIXELS = 32 * 32
WINOGRAD_MIN_CHANNELS = 128


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


class WinogradConv2d(nn.Module):
    """A 3x3, stride-1, padding-1 convolution, by Winograd F(4x4, 3x3) where it pays.

    Input and output are (B, C, H, W) (channels-last memory preferred). Feature maps
    smaller than :data:`WINOGRAD_MIN_PIXELS` take the direct path.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) \
                or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("WinogradConv2d needs a plain 3x3 convolution with padding 1.")
        weight = conv.weight.detach()
        self.register_buffer("weight", weight.clone())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0])
        self.register_buffer("bias", bias.clone())
        u = torch.einsum("ai,ocij,bj->abco", _G, weight.double(), _G)  # (6, 6, Cin, Cout)
        self.register_buffer("u", u.reshape(36, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous())
        self.register_buffer("kin", torch.kron(_BT, _BT).to(weight.dtype))     # (36, 36)
        self.register_buffer("kout", torch.kron(_AT, _AT).to(weight.dtype))    # (16, 36)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if h * w < WINOGRAD_MIN_PIXELS or x.dtype != self.u.dtype:
            return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), padding=1)
        nh, nw = -(-h // 4), -(-w // 4)
        o = self.u.shape[2]
        # Zero padding: 1 for the convolution, more at the bottom/right to whole tiles.
        xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 4 * nw - w + 1, 1, 4 * nh - h + 1))
        tiles = nh * nw
        outs = []
        for i in range(b):  # one image at a time keeps the transformed tiles in cache
            patches = xp[i].unfold(0, 6, 4).unfold(1, 6, 4).reshape(tiles * c, 36)
            v = torch.matmul(self.kin, patches.t()).view(36, tiles, c)
            m = torch.bmm(v, self.u).view(36, tiles * o)
            y = torch.matmul(self.kout, m).view(4, 4, nh, nw, o)
            outs.append(y.permute(2, 0, 3, 1, 4).reshape(4 * nh, 4 * nw, o)[:h, :w])
        out = torch.stack(outs) + self.bias
        return out.permute(0, 3, 1, 2)


def _conv3x3(conv: nn.Conv2d, winograd: bool) -> nn.Module:
    big = min(conv.in_channels, conv.out_channels) >= WINOGRAD_MIN_CHANNELS
    plain = conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1) \
        and conv.groups == 1 and conv.dilation == (1, 1)
    return WinogradConv2d(conv) if winograd and big and plain else conv


class _ConvReLU(nn.Module):
    """conv (BatchNorm folded in) -> ReLU [-> 2x2 average pool]."""

    def __init__(self, conv: nn.Module, pool: bool):
        super().__init__()
        self.conv = conv
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv(x))
        return F.avg_pool2d(out, 2) if self.pool else out


class PhaseUpBlock(nn.Module):
    """Nearest x2 upsample -> conv 3x3 -> BN -> ReLU, computed at the low resolution.

    Output row ``2i + a`` of the upsampled convolution sees low-resolution rows
    ``i - 1, i`` (a = 0) or ``i, i + 1`` (a = 1) with the 3x3 kernel's rows summed in
    pairs; the four (row, column) phases become four output channels per feature.
    """

    _ROWS = (torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=torch.float64),
             torch.tensor([[0.0, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float64))

    def __init__(self, block: UpBlock2d, winograd: bool):
        super().__init__()
        conv = fold_batchnorm(block.conv, block.norm)
        w = conv.weight.detach().double()                       # (O, C, 3, 3)
        phases = torch.stack([torch.stack([torch.einsum("ij,ocjk,lk->ocil", ra, w, rb)
                                           for rb in self._ROWS]) for ra in self._ROWS])  # (2, 2, O, C, 3, 3)
        o, c = w.shape[:2]
        phase_conv = nn.Conv2d(c, 4 * o, 3, padding=1)
        with torch.no_grad():
            phase_conv.weight.copy_(phases.permute(2, 0, 1, 3, 4, 5).reshape(4 * o, c, 3, 3))
            phase_conv.bias.copy_(conv.bias.detach().repeat_interleave(4))
        self.conv = _conv3x3(phase_conv.to(conv.weight.dtype), winograd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.pixel_shuffle(self.conv(x), 2))


class _FoldedResBlock(nn.Module):
    """ResBlock2d with norm2 folded into conv1."""

    def __init__(self, block: ResBlock2d, winograd: bool):
        super().__init__()
        self.norm1 = block.norm1
        self.conv1 = _conv3x3(fold_batchnorm(block.conv1, block.norm2), winograd)
        self.conv2 = _conv3x3(block.conv2, winograd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(out)) + x


def _rewrite(module: nn.Module, winograd: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, UpBlock2d):
            setattr(module, name, PhaseUpBlock(child, winograd))
        elif isinstance(child, (DownBlock2d, SameBlock2d)):
            conv = fold_batchnorm(child.conv, child.norm)
            conv = _conv3x3(conv, winograd) if conv.kernel_size == (3, 3) else conv
            setattr(module, name, _ConvReLU(conv, pool=isinstance(child, DownBlock2d)))
        elif isinstance(child, ResBlock2d):
            setattr(module, name, _FoldedResBlock(child, winograd))
        else:
            _rewrite(child, winograd)


def optimize_for_inference(module: nn.Module, *, winograd: bool) -> nn.Module:
    """A faster copy of an eval-mode FOMM network (see the module docstring).

    ``winograd`` should be true on the CPU; GPUs' convolution libraries choose their
    own fast algorithms.
    """
    fast = copy.deepcopy(module).eval()
    _rewrite(fast, winograd)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)
