"""The two networks: interface, the coursework architecture's details, and the UNet's resolutions."""

import math

import pytest
import torch
from torch import nn

from mnist_diffusion.errors import UserError
from mnist_diffusion.models import CourseworkCNN, UNet, build_model, count_parameters
from mnist_diffusion.models.unet import SelfAttention


@pytest.mark.parametrize("model", [CourseworkCNN(), UNet()], ids=["cnn", "unet"])
def test_interface_shapes_and_time_dependence(model):
    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    out0 = model(x, torch.zeros(3))
    out1 = model(x, torch.full((3,), 0.5))
    assert out0.shape == (3, 1, 28, 28)
    assert not torch.allclose(out0, out1), "the output must depend on t"
    out0.square().mean().backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters receive no gradient: {unused}"


def test_coursework_cnn_architecture_is_faithful():
    model = CourseworkCNN()
    convs = [b.conv for b in model.blocks]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 16, (7, 7)), (16, 32, (7, 7)), (32, 32, (7, 7)), (32, 16, (7, 7))]
    assert [b.norm.normalized_shape for b in model.blocks] == [(16, 28, 28), (32, 28, 28), (32, 28, 28), (16, 28, 28)]
    assert all(isinstance(b.act, nn.GELU) for b in model.blocks)
    assert (model.final.in_channels, model.final.out_channels, model.final.kernel_size) == (16, 1, (3, 3))
    linears = [m for m in model.time_mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 128), (128, 128), (128, 128), (128, 16)]
    expected = [0.0] + [2 * math.pi * 1.5**i for i in range(15)]
    torch.testing.assert_close(model.frequencies, torch.tensor(expected))


def test_coursework_time_features_are_sin_and_cos_minus_one():
    model = CourseworkCNN()
    t = torch.tensor([0.0, 0.25, 1.0])
    features = model.time_features(t)
    assert features.shape == (3, 32)
    for i, ti in enumerate(t.tolist()):
        w = model.frequencies.tolist()
        torch.testing.assert_close(features[i, :16], torch.tensor([math.sin(wk * ti) for wk in w]), atol=1e-4, rtol=0)
        torch.testing.assert_close(features[i, 16:], torch.tensor([math.cos(wk * ti) - 1 for wk in w]), atol=1e-4, rtol=0)
    assert torch.all(features[0] == 0), "t = 0 encodes to all zeros"


def test_unet_goes_28_14_7_and_back():
    model = UNet(channels=(16, 32, 64))
    seen = {}
    model.middle.register_forward_hook(lambda m, i, o: seen.update(middle=o.shape))
    for k, blocks in enumerate(model.down_blocks):
        blocks[-1].register_forward_hook(lambda m, i, o, k=k: seen.update({f"down{k}": o.shape}))
    model(torch.randn(2, 1, 28, 28), torch.rand(2))
    assert seen["down0"] == (2, 16, 28, 28)
    assert seen["down1"] == (2, 32, 14, 14)
    assert seen["down2"] == (2, 64, 7, 7)
    assert seen["middle"] == (2, 64, 7, 7)


def test_unet_time_embedding_reaches_every_residual_block():
    model = UNet(channels=(8, 16, 32), groups=4)
    blocks = [b for b in model.modules() if b.__class__.__name__ == "ResidualBlock"]
    assert len(blocks) == 7  # 3 down + middle + 3 up
    assert all(b.time_proj.in_features == model.time_mlp[-1].out_features for b in blocks)


def test_build_model_and_parameter_counts():
    cnn = build_model("coursework_cnn", [16, 32, 32, 16])
    # Independent count: convs (k*k*cin+1)*cout, LayerNorm 2*C*28*28, MLP, final conv.
    conv = sum((49 * a + 1) * b for a, b in [(1, 16), (16, 32), (32, 32), (32, 16)])
    norms = sum(2 * c * 784 for c in (16, 32, 32, 16))
    mlp = 33 * 128 + 129 * 128 + 129 * 128 + 129 * 16
    final = 9 * 16 + 1
    assert count_parameters(cnn) == conv + norms + mlp + final
    assert isinstance(build_model("unet", [16, 32, 64]), UNet)
    with pytest.raises(UserError, match="unknown model.arch"):
        build_model("transformer", [16])
    with pytest.raises(UserError, match="positive"):
        build_model("unet", [16, 0])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("height,width", [(7, 7), (14, 14), (5, 9)])
def test_subpixel_upsample_conv_equals_interpolate_then_conv(height, width, memory_format):
    """The sub-pixel form must match nearest x2 upsampling followed by the 3x3 conv, in value and gradient, whatever
    the input's memory layout. The reference is computed from an NCHW copy of the input, independently of it."""
    from torch.nn import functional as F

    from mnist_diffusion.models.unet import subpixel_upsample_conv

    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1).double()
    x = torch.randn(3, 6, height, width, dtype=torch.float64, requires_grad=True)
    reference = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    upstream = torch.randn_like(reference)
    ref_grads = torch.autograd.grad(reference, [x, conv.weight, conv.bias], upstream)

    x_in = x.detach().contiguous(memory_format=memory_format).requires_grad_()
    assert x_in.is_contiguous(memory_format=memory_format)
    fast = subpixel_upsample_conv(x_in, conv)
    assert fast.shape == (3, 5, 2 * height, 2 * width)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(fast, [x_in, conv.weight, conv.bias], upstream), ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_upsample_conv_takes_the_subpixel_form_on_nchw_tensors_only(monkeypatch):
    """The UNet's dispatch: NCHW activations go through the sub-pixel form, channels_last ones through the plain
    upsample-then-conv (as fast there); both give the upsample-then-conv result."""
    from torch.nn import functional as F

    from mnist_diffusion.models import unet as unet_module

    calls = []
    real = unet_module.subpixel_upsample_conv
    monkeypatch.setattr(unet_module, "subpixel_upsample_conv", lambda x, conv: calls.append(x.shape) or real(x, conv))
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1).double()
    x = torch.randn(3, 6, 7, 7, dtype=torch.float64)
    reference = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    torch.testing.assert_close(unet_module.upsample_conv(x, conv), reference, rtol=1e-12, atol=1e-12)
    assert len(calls) == 1
    x_cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(unet_module.upsample_conv(x_cl, conv), reference, rtol=1e-12, atol=1e-12)
    assert len(calls) == 1, "channels_last input must not take the sub-pixel form"


def test_unet_in_place_additions_keep_gradients_exact():
    """The in-place residual and time additions must give the gradients of the out-of-place computation."""
    torch.manual_seed(0)
    model = UNet()
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    out = model(x, t)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))

    def out_of_place(self, h_in, emb):
        h = self.conv1(torch.nn.functional.silu(self.norm1(h_in))) + self.time_proj(emb)[:, :, None, None]
        h = self.conv2(self.dropout(torch.nn.functional.silu(self.norm2(h))))
        return h + self.skip(h_in)

    from mnist_diffusion.models import unet as unet_module

    original = unet_module.ResidualBlock.forward
    unet_module.ResidualBlock.forward = out_of_place
    try:
        want_out = model(x, t)
        want = torch.autograd.grad(want_out.square().sum(), list(model.parameters()))
    finally:
        unet_module.ResidualBlock.forward = original
    torch.testing.assert_close(out, want_out)
    for got, expected in zip(grads, want):
        torch.testing.assert_close(got, expected)


def test_self_attention_is_multi_head_attention_over_positions():
    """The block against an independent float64 computation: softmax(q k^T / sqrt(d)) v per head, over the H x W
    positions, projected and added to x; with its zero-initialised projection it starts as the identity."""
    torch.manual_seed(0)
    block = SelfAttention(channels=8, groups=4, heads=2).double()
    x = torch.randn(3, 8, 7, 7, dtype=torch.float64)
    assert torch.equal(block(x), x)
    nn.init.normal_(block.proj.weight)
    qkv = block.qkv(block.norm(x)).flatten(2)  # [B, 3C, HW]
    q, k, v = qkv.split(8, dim=1)
    heads = lambda a: a.reshape(3, 2, 4, 49)  # noqa: E731  [B, heads, C / heads, HW]
    q, k, v = heads(q), heads(k), heads(v)
    weights = torch.softmax(torch.einsum("bhci,bhcj->bhij", q, k) / math.sqrt(4), dim=-1)
    attended = torch.einsum("bhij,bhcj->bhci", weights, v).reshape(3, 8, 7, 7)
    torch.testing.assert_close(block(x), x + block.proj(attended))


def test_unet_attention_sits_at_7x7_and_is_trained():
    torch.manual_seed(0)
    net = build_model("unet", [16, 32, 64], attention=True)
    seen = []
    net.attention.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    net(torch.randn(2, 1, 28, 28), torch.rand(2)).square().mean().backward()
    assert seen == [(2, 64, 7, 7)]
    assert net.attention.proj.weight.grad.abs().sum() > 0
    assert count_parameters(net) - count_parameters(build_model("unet", [16, 32, 64])) == 64 * 4 * 64 + 4 * 64 + 2 * 64
    with pytest.raises(UserError, match="no attention block"):
        build_model("coursework_cnn", [16, 32, 32, 16], attention=True)
