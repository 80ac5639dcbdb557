"""The numpy reference is what the layers are checked against, so check it:
naive loops for values, central differences for gradients."""
import numpy as np
import pytest

from dcd.layers import reference as ref


def numeric_grad(fn, x, eps=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = fn()
        flat[i] = old - eps
        minus = fn()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return g


def naive_cost_volume(fa, fb, dh, dw, s, eps):
    n, c, h, w = fa.shape
    out = np.zeros((n, (2 * dh + 1) * (2 * dw + 1), h, w))
    for b in range(n):
        for i in range(h):
            for j in range(w):
                for di in range(-dh, dh + 1):
                    for dj in range(-dw, dw + 1):
                        y, x = i + di * s, j + dj * s
                        if 0 <= y < h and 0 <= x < w:
                            u, v = fa[b, :, i, j], fb[b, :, y, x]
                            out[b, (di + dh) * (2 * dw + 1) + dj + dw, i, j] = u @ v / np.sqrt(
                                (u @ u + eps) * (v @ v + eps))
    return out


@pytest.mark.parametrize("dh,dw,s", [(1, 2, 1), (2, 1, 2)])
def test_cost_volume_matches_naive_loops_and_its_gradient(dh, dw, s):
    rng = np.random.default_rng(0)
    fa, fb = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    fa[0, :, 1, 1] = 0  # a zero feature vector stays finite
    np.testing.assert_allclose(ref.cost_volume(fa, fb, dh, dw, s, 1e-3),
                               naive_cost_volume(fa, fb, dh, dw, s, 1e-3), atol=1e-12)
    g = rng.normal(size=ref.cost_volume(fa, fb, dh, dw, s).shape)
    da, db = ref.cost_volume_backward(fa, fb, g, dh, dw, s, 1e-3)
    loss = lambda: (ref.cost_volume(fa, fb, dh, dw, s, 1e-3) * g).sum()  # noqa: E731
    np.testing.assert_allclose(da, numeric_grad(loss, fa), atol=1e-6)
    np.testing.assert_allclose(db, numeric_grad(loss, fb), atol=1e-6)


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_soft_displacement_is_eq_1_2_and_its_gradient(tau):
    rng = np.random.default_rng(1)
    dh, dw, s = 1, 2, 2
    cost = rng.uniform(-1, 1, size=(2, 15, 3, 4))
    v = ref.soft_displacement(cost, dh, dw, s, tau)
    # Eq. (1)-(2): marginal softmax weights along each axis.
    c = np.exp(cost / tau).reshape(2, 3, 5, 3, 4)
    z = c.sum(axis=(1, 2))
    rho_y, rho_x = c.sum(axis=2) / z[:, None], c.sum(axis=1) / z[:, None]
    vy = np.einsum("nkhw,k->nhw", rho_y, np.arange(-dh, dh + 1) * s)
    vx = np.einsum("nkhw,k->nhw", rho_x, np.arange(-dw, dw + 1) * s)
    np.testing.assert_allclose(v, np.stack([vy, vx], axis=1), atol=1e-12)
    g = rng.normal(size=v.shape)
    loss = lambda: (ref.soft_displacement(cost, dh, dw, s, tau) * g).sum()  # noqa: E731
    np.testing.assert_allclose(ref.soft_displacement_backward(cost, g, dh, dw, s, tau),
                               numeric_grad(loss, cost), atol=1e-6)


def test_wta_picks_the_largest_entry():
    cost = np.zeros((1, 9, 1, 1))
    cost[0, 2] = 1  # k=2 -> (di, dj) = (-1, +1)
    np.testing.assert_array_equal(ref.soft_displacement(cost, 1, 1, 3, method="WTA")[0, :, 0, 0],
                                  [-3, 3])


def test_bilinear_warp_values_and_gradients_off_the_grid_points():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(2, 3, 4, 5))
    # Fractional displacements, some leaving the image.
    disp = rng.uniform(-2.5, 2.5, size=(2, 2, 4, 5)) + 0.37
    top = ref.bilinear_warp(f, disp, scale=-1.0)
    # A pure integer shift reads the image exactly.
    shift = np.zeros((2, 2, 4, 5))
    shift[:, 0], shift[:, 1] = 1, -2
    shifted = ref.bilinear_warp(f, shift)
    np.testing.assert_allclose(shifted[:, :, :3, 2:], f[:, :, 1:, :3], atol=1e-12)
    assert np.all(shifted[:, :, 3, :] == 0) and np.all(shifted[:, :, :, :2] == 0)
    g = rng.normal(size=top.shape)
    df, dd = ref.bilinear_warp_backward(f, disp, g, scale=-1.0)
    loss_f = lambda: (ref.bilinear_warp(f, disp, -1.0) * g).sum()  # noqa: E731
    np.testing.assert_allclose(df, numeric_grad(loss_f, f), atol=1e-6)
    np.testing.assert_allclose(dd, numeric_grad(loss_f, disp), atol=1e-5)


def test_integer_shift_agrees_across_the_three_functions():
    rng = np.random.default_rng(3)
    dy, dx = 1, -2
    fa = rng.normal(size=(1, 32, 9, 11))
    fb = np.zeros_like(fa)
    fb[:, :, dy:, :dx] = fa[:, :, :-dy, -dx:]   # content moves by (dy, dx)
    cost = ref.cost_volume(fa, fb, 2, 3)
    interior = (slice(None), slice(3, 7), slice(4, 7))
    k = (dy + 2) * 7 + (dx + 3)
    assert np.all(cost.argmax(axis=1)[interior] == k)
    v = ref.soft_displacement(cost, 2, 3, temperature=0.01)
    np.testing.assert_allclose(v[:, 0][interior], dy, atol=1e-2)
    np.testing.assert_allclose(v[:, 1][interior], dx, atol=1e-2)
    warped = ref.bilinear_warp(fa, v, scale=-1.0)
    assert np.abs((fb - warped)[:, :, 3:7, 4:7]).max() < 1e-2
