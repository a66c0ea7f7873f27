"""The inference rewrites compute what the original blocks compute."""

import pytest
import torch

from fomm_space.fast import PhaseUpBlock, WinogradConv2d, fold_batchnorm, optimize_for_inference
from fomm_space.networks.blocks import DownBlock2d, ResBlock2d, UpBlock2d


def randomise_bn(module):
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module.eval()


@pytest.mark.parametrize("size", [(32, 32), (33, 46), (8, 8)])
def test_winograd_equals_direct_convolution(size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(128, 160, 3, padding=1)
    x = torch.randn(2, 128, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = conv(x)
        out = WinogradConv2d(conv)(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_phase_up_block_equals_upsample_then_conv():
    torch.manual_seed(0)
    block = randomise_bn(UpBlock2d(128, 64))
    x = torch.randn(2, 128, 20, 24)
    with torch.no_grad():
        ref = block(x)
        for winograd in (False, True):
            out = PhaseUpBlock(block, winograd)(x.contiguous(memory_format=torch.channels_last))
            torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_folded_blocks_equal_originals():
    torch.manual_seed(0)
    for block in (DownBlock2d(16, 32), ResBlock2d(32)):
        block = randomise_bn(block)
        x = torch.randn(2, block.conv.in_channels if hasattr(block, "conv") else 32, 16, 16)
        holder = torch.nn.Sequential(block)
        with torch.no_grad():
            torch.testing.assert_close(optimize_for_inference(holder, winograd=True)(x), block(x),
                                       atol=1e-5, rtol=1e-5)


def test_fold_batchnorm_leaves_original_untouched():
    conv, norm = torch.nn.Conv2d(4, 8, 3, padding=1), randomise_bn(torch.nn.BatchNorm2d(8))
    before = conv.weight.clone()
    fused = fold_batchnorm(conv, norm)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), norm(conv(x)), atol=1e-5, rtol=1e-5)
    assert torch.equal(conv.weight, before)
