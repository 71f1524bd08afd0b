"""The training step's rewritten pieces give the gradients of the plain autograd maths they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsc.models.fused import squared_difference_linear
from hsc.models.image import RegionGraphBlock

BI, W, R, E, S = 3, 7, 5, 8, 4


def fused_inputs(dtype: torch.dtype) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = [(BI, W, R), (BI, R, E), (W, E), (S, E), (S,)]
    return [torch.randn(*shape, generator=generator, dtype=dtype).requires_grad_() for shape in shapes]


def gradients(fn, inputs: list[torch.Tensor], upstream: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(fn(*inputs), inputs, upstream))


def plain(attn, img, words, weight, bias):
    return F.linear(torch.baddbmm(-words, attn, img).square(), weight, bias)


def test_fused_squared_difference_linear_has_the_plain_gradients() -> None:
    inputs = fused_inputs(torch.float64)
    upstream = torch.randn(BI, W, S, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(squared_difference_linear(*inputs), plain(*inputs), rtol=1e-12, atol=1e-12)
    for fused_grad, plain_grad in zip(gradients(squared_difference_linear, inputs, upstream),
                                      gradients(plain, inputs, upstream)):
        assert torch.allclose(fused_grad, plain_grad, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(squared_difference_linear, inputs)


def test_fused_squared_difference_linear_under_bfloat16_autocast_tracks_the_plain_maths() -> None:
    inputs = fused_inputs(torch.float32)
    upstream = torch.randn(BI, W, S, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = gradients(squared_difference_linear, inputs, upstream)
        reference = gradients(plain, inputs, upstream)
    for fused_grad, plain_grad, tensor in zip(fused, reference, inputs):
        assert fused_grad.dtype == tensor.dtype == torch.float32
        # Both sides round to bfloat16 (8 bits of mantissa) at the same steps, in different orders.
        assert torch.allclose(fused_grad, plain_grad, rtol=0.05, atol=0.05 * float(plain_grad.abs().max()))


def conv_block_reference(block: RegionGraphBlock, v: torch.Tensor) -> torch.Tensor:
    """The block as released: 1x1 convolutions over channels-first (B, E, R), in plain functional ops."""
    x = v.transpose(1, 2)

    def heads(names: list[str], fc: torch.nn.Linear) -> torch.Tensor:
        convs = [F.conv1d(x, getattr(block, name).weight, getattr(block, name).bias) for name in names]
        return fc(torch.cat(convs, dim=1).transpose(1, 2))

    affinity = heads(block.theta_names, block.fc1) @ heads(block.phi_names, block.fc2).transpose(1, 2) / x.size(2)
    y = F.conv1d(x, block.g.weight, block.g.bias) @ affinity.transpose(1, 2)
    conv, bn = block.W
    normed = F.batch_norm(F.conv1d(y, conv.weight, conv.bias), None, None, bn.weight, bn.bias, training=True)
    return (normed + x).transpose(1, 2)


@pytest.mark.parametrize("heads", [1, 2])
def test_channels_last_region_graph_block_has_the_convolutions_gradients(heads: int) -> None:
    torch.manual_seed(0)
    block = RegionGraphBlock(E, heads).double().train()
    torch.nn.init.normal_(block.W[1].weight)  # the released init (zero) would hide W's gradient path
    v = torch.randn(BI, R, E, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(BI, R, E, dtype=torch.float64)
    params = [v, *block.parameters()]
    ours = torch.autograd.grad(block(v), params, upstream)
    reference = torch.autograd.grad(conv_block_reference(block, v), params, upstream)
    assert torch.allclose(block(v), conv_block_reference(block, v), rtol=1e-10, atol=1e-10)
    for our_grad, reference_grad in zip(ours, reference):
        assert torch.allclose(our_grad, reference_grad, rtol=1e-9, atol=1e-9)
