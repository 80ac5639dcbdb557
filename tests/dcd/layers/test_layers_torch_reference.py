"""The PyTorch baseline of tools/benchmark_layers.py computes the same maths
as the numpy reference (which the layers are checked against): values of
each layer and autograd's gradients of the chain. Skipped without torch."""
import numpy as np
import pytest

from dcd.layers import reference as ref

torch = pytest.importorskip("torch")
tref = pytest.importorskip("dcd.layers.torch_reference")


@pytest.fixture
def inputs():
    rng = np.random.default_rng(3)
    fa = rng.standard_normal((2, 5, 9, 11))
    fb = np.roll(fa, (1, -2), axis=(2, 3)) + 0.3 * rng.standard_normal(fa.shape)
    return fa, fb


@pytest.mark.parametrize("dh,dw,s", [(1, 1, 1), (2, 1, 2)])
def test_layers_match_numpy(inputs, dh, dw, s):
    fa, fb = inputs
    tau = 0.1
    cost = ref.cost_volume(fa, fb, dh, dw, s)
    disp = ref.soft_displacement(cost, dh, dw, s, tau)
    warped = ref.bilinear_warp(fa, disp, -1.0)
    ta, tb = torch.from_numpy(fa), torch.from_numpy(fb)
    np.testing.assert_allclose(tref.cost_volume(ta, tb, dh, dw, s).numpy(), cost, atol=1e-12)
    np.testing.assert_allclose(
        tref.soft_displacement(torch.from_numpy(cost), dh, dw, s, tau).numpy(), disp, atol=1e-12)
    np.testing.assert_allclose(
        tref.bilinear_warp(ta, torch.from_numpy(disp), -1.0).numpy(), warped, atol=1e-10)


def test_chain_gradients_match_numpy(inputs):
    fa, fb = inputs
    dh = dw = 2
    s, tau = 1, 0.1
    rng = np.random.default_rng(4)
    cost = ref.cost_volume(fa, fb, dh, dw, s)
    disp = ref.soft_displacement(cost, dh, dw, s, tau)
    g = rng.standard_normal(fa.shape)
    dfa_warp, d_disp = ref.bilinear_warp_backward(fa, disp, g, -1.0)
    d_cost = ref.soft_displacement_backward(cost, d_disp, dh, dw, s, tau)
    dfa_cost, dfb = ref.cost_volume_backward(fa, fb, d_cost, dh, dw, s)

    ta = torch.from_numpy(fa).requires_grad_()
    tb = torch.from_numpy(fb).requires_grad_()
    out = tref.chain(ta, tb, dh, dw, s, tau, -1.0)
    out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ta.grad.numpy(), dfa_warp + dfa_cost, atol=1e-8)
    np.testing.assert_allclose(tb.grad.numpy(), dfb, atol=1e-8)
