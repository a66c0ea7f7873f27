"""The inference rewrites compute what the original blocks compute."""

import pytest
import torch

from fomm_space import fast
from fomm_space.fast import Conv3x3, FastUpBlock, fold_batchnorm, optimize_for_inference
from fomm_space.layers import DownBlock2d, ResBlock2d, UpBlock2d


def randomise_bn(module):
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module.eval()


def conv_case(out_channels, size):
    """A 128-channel input of ``size``, a random 3x3 conv, its Conv3x3 and its output."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(128, out_channels, 3, padding=1)
    x = torch.randn(2, 128, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        return Conv3x3(conv), x, conv(x)


@pytest.mark.parametrize("size", [(32, 32), (33, 46), (8, 8), (2, 2), (5, 3)])
def test_every_conv3x3_method_equals_direct_convolution(size):
    conv, x, ref = conv_case(160, size)
    with torch.no_grad():
        for out in (conv(x), conv._winograd(x), conv._gemm(x)):
            assert out.shape == ref.shape
            assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()


@pytest.mark.parametrize("size", [(32, 32), (21, 30)])
@pytest.mark.parametrize("chunk_bytes", [fast.WINOGRAD_CHUNK_BYTES, 1])
def test_winograd_in_steps_and_into_pixel_shuffle_equals_direct(size, chunk_bytes, monkeypatch):
    monkeypatch.setattr(fast, "WINOGRAD_CHUNK_BYTES", chunk_bytes)  # 1: one row of tiles per step
    conv, x, ref = conv_case(256, size)
    with torch.no_grad():
        torch.testing.assert_close(conv._winograd(x), ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(conv.shuffled(x), torch.nn.functional.pixel_shuffle(ref, 2),
                                   atol=1e-4, rtol=1e-4)


def test_winograd_weights_made_once_and_only_when_needed():
    conv = Conv3x3(torch.nn.Conv2d(128, 128, 3, padding=1))
    with torch.inference_mode():
        conv(torch.randn(1, 128, 8, 8))
        assert conv._u is None
        conv(torch.randn(1, 128, 32, 32))
        u = conv._u
        conv(torch.randn(1, 128, 40, 32))
    assert conv._u is u and not u.is_inference()
    with torch.no_grad():  # what inference mode made is usable outside it
        conv(torch.randn(1, 128, 32, 32))


@pytest.mark.parametrize("size", [(20, 24), (32, 40), (4, 4)])
@pytest.mark.parametrize("channels", [(128, 64), (32, 16)])  # phase conv by Winograd / by oneDNN
def test_up_block_equals_upsample_then_conv(size, channels):
    torch.manual_seed(0)
    block = randomise_bn(UpBlock2d(*channels))
    x = torch.randn(2, channels[0], *size)
    with torch.no_grad():
        ref = block(x)
        for cpu in (False, True):
            out = FastUpBlock(block, cpu)(x.contiguous(memory_format=torch.channels_last))
            torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_folded_blocks_equal_originals():
    torch.manual_seed(0)
    for block in (DownBlock2d(16, 32), ResBlock2d(32)):
        block = randomise_bn(block)
        x = torch.randn(2, block.conv.in_channels if hasattr(block, "conv") else 32, 16, 16)
        holder = torch.nn.Sequential(block)
        with torch.no_grad():
            torch.testing.assert_close(optimize_for_inference(holder, cpu=True)(x), block(x),
                                       atol=1e-5, rtol=1e-5)


def test_fold_batchnorm_leaves_original_untouched():
    conv, norm = torch.nn.Conv2d(4, 8, 3, padding=1), randomise_bn(torch.nn.BatchNorm2d(8))
    before = conv.weight.clone()
    fused = fold_batchnorm(conv, norm)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), norm(conv(x)), atol=1e-5, rtol=1e-5)
    assert torch.equal(conv.weight, before)



def test_under_autocast_conv3x3_is_the_plain_convolution_at_that_precision():
    """Winograd's transforms at bf16 lose the picture: under autocast Conv3x3 leaves the
    convolution to F.conv2d, exactly as the original layer computes it there."""
    conv, x, ref = conv_case(160, (32, 32))  # a size where fp32 takes Winograd
    plain = torch.nn.Conv2d(128, 160, 3, padding=1)
    plain.load_state_dict({"weight": conv.weight, "bias": conv.bias})
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, expected = conv(x), plain(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert (got.float() - ref).abs().max() <= 0.02 * ref.abs().max()
