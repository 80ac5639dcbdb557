"""Vectorised numpy reference for the three DCD layers, forward and backward.

Same contracts as the C++/CUDA layers (see caffe_layers/proto/dcd.proto):
blobs are N x C x H x W; displacement channel 0 is v_y, channel 1 is v_x,
in pixels. Each cost-volume channel is one shifted-array dot product over
the feature channels, which is how a numpy user would write it; the layer
tests compare against these functions and tools/benchmark_layers.py times
them as the baseline.
"""
import numpy as np

from dcd.layers import TEMPERATURE


def displacements(dh, dw, dilation=1):
    """(dy, dx) in pixels of each cost-volume channel k = (di+dh)(2dw+1) + (dj+dw)."""
    di, dj = np.meshgrid(np.arange(-dh, dh + 1), np.arange(-dw, dw + 1), indexing="ij")
    return di.ravel() * dilation, dj.ravel() * dilation


def _normalise(f, eps):
    norm = np.sqrt((f * f).sum(axis=1, keepdims=True) + eps)
    return f / norm, norm


def _window(a, dy, dx):
    """Slices (target, source) such that target[p] pairs with source[p + (dy, dx)]."""
    h, w = a.shape[-2:]
    t = (slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx)))
    s = (slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx)))
    return t, s


def cost_volume(fa, fb, dh, dw, dilation=1, eps=1e-6):
    """N x D x H x W cosine similarities; out-of-image partners give 0."""
    if fa.shape != fb.shape:
        raise ValueError(f"cost_volume: bottoms differ in shape, {fa.shape} vs {fb.shape}")
    a, _ = _normalise(fa, eps)
    b, _ = _normalise(fb, eps)
    n, _, h, w = fa.shape
    dys, dxs = displacements(dh, dw, dilation)
    top = np.zeros((n, len(dys), h, w), dtype=fa.dtype)
    for k, (dy, dx) in enumerate(zip(dys, dxs)):
        t, s = _window(fa, dy, dx)
        top[:, k, t[0], t[1]] = (a[:, :, t[0], t[1]] * b[:, :, s[0], s[1]]).sum(axis=1)
    return top


def cost_volume_backward(fa, fb, top_diff, dh, dw, dilation=1, eps=1e-6):
    """(d fa, d fb) given the top's diff."""
    a, na = _normalise(fa, eps)
    b, nb = _normalise(fb, eps)
    da_hat = np.zeros_like(fa)
    db_hat = np.zeros_like(fb)
    dys, dxs = displacements(dh, dw, dilation)
    for k, (dy, dx) in enumerate(zip(dys, dxs)):
        t, s = _window(fa, dy, dx)
        g = top_diff[:, k:k + 1, t[0], t[1]]
        da_hat[:, :, t[0], t[1]] += g * b[:, :, s[0], s[1]]
        db_hat[:, :, s[0], s[1]] += g * a[:, :, t[0], t[1]]
    # d(f/n)/df = (I - fhat fhat^T) / n
    da = (da_hat - a * (a * da_hat).sum(axis=1, keepdims=True)) / na
    db = (db_hat - b * (b * db_hat).sum(axis=1, keepdims=True)) / nb
    return da, db


def _softmax(cost, temperature):
    z = cost / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def soft_displacement(cost, dh, dw, dilation=1, temperature=TEMPERATURE, method="SOFT"):
    """N x 2 x H x W expected (SOFT) or arg-max (WTA) displacement, (v_y, v_x)."""
    dys, dxs = displacements(dh, dw, dilation)
    if cost.shape[1] != len(dys):
        raise ValueError(f"soft_displacement: cost volume has {cost.shape[1]} channels, "
                         f"window {2 * dh + 1}x{2 * dw + 1} needs {len(dys)}")
    if method == "WTA":
        best = cost.argmax(axis=1)
        return np.stack([dys[best], dxs[best]], axis=1).astype(cost.dtype)
    p = _softmax(cost, temperature)
    vy = np.tensordot(p, dys.astype(cost.dtype), axes=([1], [0]))
    vx = np.tensordot(p, dxs.astype(cost.dtype), axes=([1], [0]))
    return np.stack([vy, vx], axis=1)


def soft_displacement_backward(cost, top_diff, dh, dw, dilation=1, temperature=TEMPERATURE):
    """d cost for the SOFT method (WTA passes no gradient)."""
    dys, dxs = displacements(dh, dw, dilation)
    p = _softmax(cost, temperature)
    v = soft_displacement(cost, dh, dw, dilation, temperature)
    gy, gx = top_diff[:, 0:1], top_diff[:, 1:2]
    dy = dys.astype(cost.dtype)[None, :, None, None] - v[:, 0:1]
    dx = dxs.astype(cost.dtype)[None, :, None, None] - v[:, 1:2]
    return p / temperature * (gy * dy + gx * dx)


def _taps(disp, scale):
    """Integer corner (y0, x0) and fractions (wy, wx) of each sample position."""
    n, _, h, w = disp.shape
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    y = ii[None] + scale * disp[:, 0]
    x = jj[None] + scale * disp[:, 1]
    y0, x0 = np.floor(y), np.floor(x)
    return y0.astype(np.int64), x0.astype(np.int64), y - y0, x - x0


def _gather(f, y, x):
    """f[n, :, y, x] with zeros outside the image; f is N x C x H x W, y/x N x H x W."""
    n, c, h, w = f.shape
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    yc, xc = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
    out = f[np.arange(n)[:, None, None], :, yc, xc]          # N x H x W x C
    return np.moveaxis(out, -1, 1) * inside[:, None]


def bilinear_warp(f, disp, scale=1.0):
    """top(p) = f(p + scale * disp(p)), bilinear, taps outside the image count as 0."""
    y0, x0, wy, wx = _taps(disp, scale)
    wy, wx = wy[:, None], wx[:, None]
    return ((1 - wy) * (1 - wx) * _gather(f, y0, x0) + (1 - wy) * wx * _gather(f, y0, x0 + 1)
            + wy * (1 - wx) * _gather(f, y0 + 1, x0) + wy * wx * _gather(f, y0 + 1, x0 + 1))


def bilinear_warp_backward(f, disp, top_diff, scale=1.0):
    """(d f, d disp). Derivatives in y/x are taken on the cell [floor, floor+1]."""
    n, c, h, w = f.shape
    y0, x0, wy, wx = _taps(disp, scale)
    v00, v01 = _gather(f, y0, x0), _gather(f, y0, x0 + 1)
    v10, v11 = _gather(f, y0 + 1, x0), _gather(f, y0 + 1, x0 + 1)
    wy4, wx4 = wy[:, None], wx[:, None]
    d_y = ((1 - wx4) * (v10 - v00) + wx4 * (v11 - v01)) * top_diff
    d_x = ((1 - wy4) * (v01 - v00) + wy4 * (v11 - v10)) * top_diff
    d_disp = scale * np.stack([d_y.sum(axis=1), d_x.sum(axis=1)], axis=1)

    df = np.zeros_like(f)
    nn = np.broadcast_to(np.arange(n)[:, None, None], y0.shape)
    for dy, dx, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                           (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        contrib = np.moveaxis(top_diff * weight[:, None], 1, -1)[inside]   # M x C
        np.add.at(df, (nn[inside], slice(None), yy[inside], xx[inside]), contrib)
    return df, d_disp.astype(f.dtype)
