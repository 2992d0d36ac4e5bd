"""Checks of the NumPy reference GRU itself (tests/reference.py), so it can serve as a yardstick:
its hand-derived backward against central finite differences of its forward (float64), its
forward and backward against torch.nn.GRU (reset_after=True only; torch is optional), and exact
properties of variable lengths."""

import itertools

import numpy as np
import pytest

from reference import param_names, random_params, ref_gru_backward, ref_gru_forward


def _loss(out, h_n, dout, dh_n):
    return float(np.sum(out * dout) + np.sum(h_n * dh_n))


def _finite_difference_check(x, h0, params, dout, dh_n, eps=1e-6, **config):
    """Compare ref_gru_backward with central differences of L = sum(out*dout) + sum(h_n*dh_n),
    perturbing every entry of x, h0 and each parameter."""
    out, h_n, cache = ref_gru_forward(x, params, h0=h0, **config)
    dx, dh0, grads = ref_gru_backward(cache, dout, dh_n)

    def loss():
        o, h, _ = ref_gru_forward(x, params, h0=h0, **config)
        return _loss(o, h, dout, dh_n)

    targets = [("x", x, dx), ("h0", h0, dh0)] + [(name, params[name], grads[name]) for name in params]
    for name, array, analytic in targets:
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            saved = array[idx]
            array[idx] = saved + eps
            plus = loss()
            array[idx] = saved - eps
            minus = loss()
            array[idx] = saved
            numeric[idx] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


FD_CASES = [
    dict(reset_after=ra, bias=bias, lengths=lengths)
    for ra, bias, lengths in itertools.product([True, False], [True, False], [[4, 0, 2], None])
]


@pytest.mark.parametrize(
    "case", FD_CASES,
    ids=lambda c: f"reset_after={c['reset_after']}-bias={c['bias']}-lengths={c['lengths']}")
def test_backward_matches_finite_differences(case):
    rng = np.random.default_rng(1234)
    T, B, I, H, L = 4, 3, 3, 4, 2
    params = random_params(rng, I, H, num_layers=L, bidirectional=True, bias=case["bias"])
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * 2, B, H))
    dout = rng.standard_normal((T, B, 2 * H))
    dh_n = rng.standard_normal((L * 2, B, H))
    _finite_difference_check(x, h0, params, dout, dh_n, num_layers=L, bidirectional=True,
                             reset_after=case["reset_after"], bias=case["bias"],
                             lengths=case["lengths"])


@pytest.mark.parametrize("reset_after", [True, False], ids=lambda v: f"reset_after={v}")
def test_backward_with_dropout_masks_matches_finite_differences(reset_after):
    rng = np.random.default_rng(99)
    T, B, I, H, L = 3, 2, 3, 3, 3
    params = random_params(rng, I, H, num_layers=L, bidirectional=False, bias=True)
    masks = [2.0 * (rng.random((T, B, H)) < 0.5) for _ in range(L - 1)]
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L, B, H))
    dout = rng.standard_normal((T, B, H))
    dh_n = rng.standard_normal((L, B, H))
    _finite_difference_check(x, h0, params, dout, dh_n, num_layers=L, bidirectional=False,
                             reset_after=reset_after, bias=True, lengths=[3, 1],
                             dropout_masks=masks)


def test_dropout_masks_are_applied_to_hidden_layers_only():
    rng = np.random.default_rng(5)
    T, B, I, H = 3, 2, 2, 3
    params = random_params(rng, I, H, num_layers=2)
    x = rng.standard_normal((T, B, I))
    cfg = dict(num_layers=2, bidirectional=False, reset_after=True, bias=True)
    ones = [np.ones((T, B, H))]
    zeros = [np.zeros((T, B, H))]
    out_plain, hn_plain, _ = ref_gru_forward(x, params, **cfg)
    out_ones, hn_ones, _ = ref_gru_forward(x, params, dropout_masks=ones, **cfg)
    out_zero, hn_zero, _ = ref_gru_forward(x, params, dropout_masks=zeros, **cfg)
    np.testing.assert_array_equal(out_plain, out_ones)
    np.testing.assert_array_equal(hn_plain, hn_ones)
    # Layer 0 is untouched by the mask; layer 1 then sees an all-zero input.
    np.testing.assert_array_equal(hn_zero[0], hn_plain[0])
    out_l1, hn_l1, _ = ref_gru_forward(np.zeros((T, B, H)), {
        "weight_ih_l0": params["weight_ih_l1"], "weight_hh_l0": params["weight_hh_l1"],
        "bias_ih_l0": params["bias_ih_l1"], "bias_hh_l0": params["bias_hh_l1"]},
        num_layers=1, bidirectional=False, reset_after=True, bias=True)
    np.testing.assert_allclose(out_zero, out_l1, rtol=0, atol=0)


@pytest.mark.parametrize("reset_after", [True, False], ids=lambda v: f"reset_after={v}")
def test_variable_lengths_equal_separate_runs(reset_after):
    """Each sequence of a padded batch gives what it gives alone, truncated to its length; padding
    is 0 and h_n is h0 for a zero length."""
    rng = np.random.default_rng(7)
    T, B, I, H, L = 5, 4, 3, 2, 2
    params = random_params(rng, I, H, num_layers=L, bidirectional=True)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * 2, B, H))
    lengths = [3, 5, 0, 1]
    cfg = dict(num_layers=L, bidirectional=True, reset_after=reset_after, bias=True)
    out, h_n, _ = ref_gru_forward(x, params, h0=h0, lengths=lengths, **cfg)
    for b, len_b in enumerate(lengths):
        out_b, hn_b, _ = ref_gru_forward(x[:len_b, b:b + 1], params, h0=h0[:, b:b + 1], **cfg)
        np.testing.assert_array_equal(out[:len_b, b:b + 1], out_b)
        np.testing.assert_array_equal(out[len_b:, b], 0.0)
        np.testing.assert_array_equal(h_n[:, b:b + 1], hn_b)
    np.testing.assert_array_equal(h_n[:, 2], h0[:, 2])


def test_reset_after_variants_differ_and_agree_with_hand_computation():
    """One step of one unit, computed by hand from the equations in docs/architecture.md."""
    rng = np.random.default_rng(3)
    params = random_params(rng, 2, 1, bias=True)
    x = rng.standard_normal((1, 1, 2))
    h0 = rng.standard_normal((1, 1, 1))
    W_ih, W_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    b_ih, b_hh = params["bias_ih_l0"], params["bias_hh_l0"]
    xv, h = x[0, 0], h0[0, 0, 0]
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    r = sig(W_ih[0] @ xv + b_ih[0] + W_hh[0, 0] * h + b_hh[0])
    z = sig(W_ih[1] @ xv + b_ih[1] + W_hh[1, 0] * h + b_hh[1])
    n_after = np.tanh(W_ih[2] @ xv + b_ih[2] + r * (W_hh[2, 0] * h + b_hh[2]))
    n_before = np.tanh(W_ih[2] @ xv + b_ih[2] + W_hh[2, 0] * (r * h) + b_hh[2])
    for reset_after, n in ((True, n_after), (False, n_before)):
        out, h_n, _ = ref_gru_forward(x, params, h0=h0, num_layers=1, bidirectional=False,
                                      reset_after=reset_after, bias=True)
        np.testing.assert_allclose(out[0, 0, 0], (1 - z) * n + z * h, rtol=1e-14)
        np.testing.assert_allclose(h_n[0, 0, 0], (1 - z) * n + z * h, rtol=1e-14)
    assert n_after != n_before


def test_random_params_names_shapes_and_range():
    rng = np.random.default_rng(0)
    params = random_params(rng, 3, 5, num_layers=2, bidirectional=True, bias=True, dtype=np.float32)
    assert list(params) == param_names(2, True, True)
    assert params["weight_ih_l0"].shape == (15, 3)
    assert params["weight_ih_l1_reverse"].shape == (15, 10)
    assert params["weight_hh_l1"].shape == (15, 5)
    assert params["bias_hh_l0_reverse"].shape == (15,)
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(np.abs(p).max() <= 1 / np.sqrt(5) for p in params.values())
    assert list(random_params(rng, 3, 5, bias=False)) == ["weight_ih_l0", "weight_hh_l0"]


# ----------------------------------------------------------------------------------------------
# Against torch.nn.GRU (reset_after=True is the only variant torch has).

TORCH_CASES = [
    dict(num_layers=L, bidirectional=bi, bias=bias, lengths=lengths)
    for L, bi, bias, lengths in itertools.product(
        [1, 2], [False, True], [True, False], [None, [2, 5, 1, 4]])
]


def _torch_case_id(c):
    return (f"L={c['num_layers']}-bidirectional={c['bidirectional']}-bias={c['bias']}-"
            f"{'packed' if c['lengths'] else 'padded'}")


@pytest.mark.parametrize("case", TORCH_CASES, ids=_torch_case_id)
def test_matches_torch(case):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(2024)
    T, B, I, H = 5, 4, 3, 4
    L, bi, bias, lengths = case["num_layers"], case["bidirectional"], case["bias"], case["lengths"]
    D = 2 if bi else 1
    params = random_params(rng, I, H, num_layers=L, bidirectional=bi, bias=bias)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, H))
    dout = rng.standard_normal((T, B, D * H))
    dh_n = rng.standard_normal((L * D, B, H))

    gru = torch.nn.GRU(I, H, num_layers=L, bias=bias, bidirectional=bi).double()
    with torch.no_grad():
        for name, p in gru.named_parameters():
            p.copy_(torch.from_numpy(params[name]))
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    if lengths is None:
        out_t, hn_t = gru(xt, h0t)
    else:
        packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
        out_packed, hn_t = gru(packed, h0t)
        out_t, _ = pad_packed_sequence(out_packed, total_length=T)
    loss = (out_t * torch.from_numpy(dout)).sum() + (hn_t * torch.from_numpy(dh_n)).sum()
    loss.backward()

    cfg = dict(num_layers=L, bidirectional=bi, reset_after=True, bias=bias)
    out, h_n, cache = ref_gru_forward(x, params, h0=h0, lengths=lengths, **cfg)
    dx, dh0, grads = ref_gru_backward(cache, dout, dh_n)
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out, out_t.detach().numpy(), err_msg="out", **tol)
    np.testing.assert_allclose(h_n, hn_t.detach().numpy(), err_msg="h_n", **tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), err_msg="dx", **tol)
    np.testing.assert_allclose(dh0, h0t.grad.numpy(), err_msg="dh0", **tol)
    torch_names = [name for name, _ in gru.named_parameters()]
    assert list(grads) == torch_names == param_names(L, bi, bias)
    for name, p in gru.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), err_msg=f"grad {name}", **tol)
