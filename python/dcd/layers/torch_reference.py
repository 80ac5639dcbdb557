"""The DCD chain (CostVolume -> SoftDisplacement -> BilinearWarp) written
with PyTorch tensors, so autograd gives the backward pass: the baseline that
tools/benchmark_layers.py times the layers against on the CPU.

Same maths as dcd.layers.reference and the layers: cosine cost volume with zeros
for out-of-image partners, softmax over the window divided by the
temperature, expected (v_y, v_x), bilinear warp with zero taps outside the
image (grid_sample, align_corners=True, padding "zeros"). PyTorch is
optional: import this module only where torch is installed.
"""
import torch
import torch.nn.functional as F

from dcd.layers import TEMPERATURE


def cost_volume(fa, fb, dh, dw, dilation=1, eps=1e-6):
    """N x D x H x W cosine similarities, channel k = (di+dh)(2dw+1) + (dj+dw)."""
    a = fa / torch.sqrt((fa * fa).sum(dim=1, keepdim=True) + eps)
    b = fb / torch.sqrt((fb * fb).sum(dim=1, keepdim=True) + eps)
    h, w = fa.shape[-2:]
    ph, pw = dh * dilation, dw * dilation
    b = F.pad(b, (pw, pw, ph, ph))
    # One shifted elementwise product and channel sum per displacement, as a
    # PyTorch user would write it without a custom kernel.
    out = [(a * b[:, :, ph + di * dilation:ph + di * dilation + h,
                  pw + dj * dilation:pw + dj * dilation + w]).sum(dim=1)
           for di in range(-dh, dh + 1) for dj in range(-dw, dw + 1)]
    return torch.stack(out, dim=1)


def soft_displacement(cost, dh, dw, dilation=1, temperature=TEMPERATURE):
    """N x 2 x H x W expected displacement (v_y, v_x) in pixels."""
    p = torch.softmax(cost / temperature, dim=1)
    di = torch.arange(-dh, dh + 1, dtype=cost.dtype) * dilation
    dj = torch.arange(-dw, dw + 1, dtype=cost.dtype) * dilation
    dys = di.repeat_interleave(2 * dw + 1)
    dxs = dj.repeat(2 * dh + 1)
    vy = torch.einsum("nkhw,k->nhw", p, dys)
    vx = torch.einsum("nkhw,k->nhw", p, dxs)
    return torch.stack([vy, vx], dim=1)


def bilinear_warp(f, disp, scale=1.0):
    """top(p) = f(p + scale * disp(p)), bilinear, zero taps outside the image."""
    n, _, h, w = f.shape
    ii = torch.arange(h, dtype=f.dtype).view(1, h, 1)
    jj = torch.arange(w, dtype=f.dtype).view(1, 1, w)
    y = ii + scale * disp[:, 0]
    x = jj + scale * disp[:, 1]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels.
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    return F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def chain(fa, fb, dh, dw, dilation=1, temperature=TEMPERATURE, scale=-1.0):
    """Warped F_a: the three layers as the benchmark nets wire them."""
    cost = cost_volume(fa, fb, dh, dw, dilation)
    disp = soft_displacement(cost, dh, dw, dilation, temperature)
    return bilinear_warp(fa, disp, scale)
