"""gru_cy.LSTM against the NumPy reference LSTM, central finite differences and torch.nn.LSTM.

The reference (tests/reference_lstm.py) runs in float64 on the module's own parameters and
inputs; loss-style checks use loss = sum(out * dout) + sum(h_n * dh_n) + sum(c_n * dc_n).
"""

import copy
import itertools
import pickle

import numpy as np
import pytest

import gru_cy
from helpers import THREAD_SPLITS, same_bits, threads
from reference_lstm import lstm_param_names, ref_lstm_backward, ref_lstm_forward

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}


def _p64(m):
    return {k: np.asarray(v, np.float64) for k, v in m.params.items()}


def _check(label, actual, expected, dtype):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{label}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{label}: dtype {actual.dtype}"
    np.testing.assert_allclose(actual, expected, err_msg=label, **TOL[dtype])


def _inputs(rng, T, B, I, H, L, D, R, dtype):
    return (rng.standard_normal((T, B, I)).astype(dtype),
            rng.standard_normal((L * D, B, R)).astype(dtype),
            rng.standard_normal((L * D, B, H)).astype(dtype),
            rng.standard_normal((T, B, D * R)).astype(dtype),
            rng.standard_normal((L * D, B, R)).astype(dtype),
            rng.standard_normal((L * D, B, H)).astype(dtype))


def _run_and_compare(*, L, bi, bias, P, dtype, batch_first=False, lengths=None, T=5, B=3, I=4,
                     H=6, seed=0, unbatched=False):
    m = gru_cy.LSTM(I, H, num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bi,
                    proj_size=P, dtype=dtype, seed=seed)
    D, R = (2 if bi else 1), (P or H)
    rng = np.random.default_rng(seed + 100)
    x, h0, c0, dout, dh_n, dc_n = _inputs(rng, T, 1 if unbatched else B, I, H, L, D, R, dtype)
    e_out, e_hn, e_cn, cache = ref_lstm_forward(x, _p64(m), num_layers=L, bidirectional=bi,
                                                bias=bias, proj_size=P, h0=h0, c0=c0,
                                                lengths=lengths)
    e_dx, e_dh0, e_dc0, e_grads = ref_lstm_backward(cache, dout, dh_n, dc_n)
    if unbatched:
        sq = lambda a: a[:, 0]  # noqa: E731
        args = (sq(x), (sq(h0), sq(c0)))
        dargs = (sq(dout), (sq(dh_n), sq(dc_n)))
        e_out, e_hn, e_cn, e_dx, e_dh0, e_dc0 = map(sq, (e_out, e_hn, e_cn, e_dx, e_dh0, e_dc0))
    elif batch_first:
        tr = lambda a: np.ascontiguousarray(a.transpose(1, 0, 2))  # noqa: E731
        args = (tr(x), (h0, c0))
        dargs = (tr(dout), (dh_n, dc_n))
        e_out, e_dx = tr(e_out), tr(e_dx)
    else:
        args = (x, (h0, c0))
        dargs = (dout, (dh_n, dc_n))
    out, (hn, cn) = m(*args, lengths=lengths)
    _check("out (call)", out, e_out, dtype)
    _check("h_n (call)", hn, e_hn, dtype)
    _check("c_n (call)", cn, e_cn, dtype)
    out, (hn, cn), tape = m.forward_train(*args, lengths=lengths)
    _check("out", out, e_out, dtype)
    _check("h_n", hn, e_hn, dtype)
    _check("c_n", cn, e_cn, dtype)
    dx, (dh0, dc0) = m.backward(tape, *dargs)
    _check("dx", dx, e_dx, dtype)
    _check("dh0", dh0, e_dh0, dtype)
    _check("dc0", dc0, e_dc0, dtype)
    assert set(m.grads) == set(e_grads) == set(lstm_param_names(L, bi, bias, P))
    for name, g in e_grads.items():
        _check(f"grads[{name!r}]", m.grads[name], g, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("L,bi,bias,P", [(1, False, True, 0), (2, False, True, 0),
                                         (1, True, True, 0), (2, True, False, 0),
                                         (1, False, True, 3), (2, True, True, 2),
                                         (3, False, False, 4)])
def test_vs_reference(L, bi, bias, P, dtype):
    _run_and_compare(L=L, bi=bi, bias=bias, P=P, dtype=dtype)


@pytest.mark.parametrize("bi,P", [(False, 0), (True, 3)])
def test_batch_first(bi, P):
    _run_and_compare(L=2, bi=bi, bias=True, P=P, dtype=np.float64, batch_first=True)


@pytest.mark.parametrize("bi,P", [(False, 0), (True, 0), (False, 2), (True, 4)])
def test_unbatched(bi, P):
    _run_and_compare(L=2, bi=bi, bias=True, P=P, dtype=np.float64, unbatched=True)


LENGTHS = {
    "sorted": [7, 5, 5, 2, 1, 0],
    "any_order": [2, 7, 0, 5, 1, 7],
    "mostly_full": [7, 7, 6, 7, 7, 7],
    "zeros": [0, 0, 0, 0, 0, 0],
    "one_short": [7, 7, 7, 7, 7, 3],
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bi,P", [(False, 0), (True, 0), (True, 3), (False, 2)])
@pytest.mark.parametrize("kind", list(LENGTHS))
def test_lengths(kind, bi, P, dtype):
    _run_and_compare(L=2, bi=bi, bias=True, P=P, dtype=dtype, T=7, B=6,
                     lengths=np.array(LENGTHS[kind]))


def test_lengths_go_backwards():
    """go_backwards: one reverse direction, each sequence read back from its last valid step."""
    m = gru_cy.LSTM(3, 4, go_backwards=True, dtype=np.float64, seed=1)
    bi = gru_cy.LSTM(3, 4, bidirectional=True, dtype=np.float64, seed=1)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        bi.params[f"{name}_l0_reverse"][...] = m.params[f"{name}_l0"]
    x = np.random.default_rng(0).standard_normal((6, 3, 3))
    lengths = np.array([6, 2, 4])
    out, (hn, cn) = m(x, lengths=lengths)
    out_bi, (hn_bi, cn_bi) = bi(x, lengths=lengths)
    np.testing.assert_array_equal(out, out_bi[..., 4:])
    np.testing.assert_array_equal(hn[0], hn_bi[1])
    np.testing.assert_array_equal(cn[0], cn_bi[1])


def test_empty_batch_and_time():
    m = gru_cy.LSTM(3, 4, proj_size=2, bidirectional=True)
    out, (hn, cn) = m(np.zeros((0, 2, 3), np.float32))
    assert out.shape == (0, 2, 4) and hn.shape == (2, 2, 2) and cn.shape == (2, 2, 4)
    out, (hn, cn) = m(np.zeros((5, 0, 3), np.float32))
    assert out.shape == (5, 0, 4) and hn.shape == (2, 0, 2) and cn.shape == (2, 0, 4)


# -- finite differences ---------------------------------------------------------


def _fd_check(P, bi, lengths, L=2, T=4, B=3, I=3, H=4, eps=1e-6):
    m = gru_cy.LSTM(I, H, num_layers=L, bidirectional=bi, proj_size=P, dtype=np.float64, seed=3)
    D, R = (2 if bi else 1), (P or H)
    rng = np.random.default_rng(7)
    x, h0, c0, dout, dh_n, dc_n = _inputs(rng, T, B, I, H, L, D, R, np.float64)

    def loss():
        out, (hn, cn) = m(x, (h0, c0), lengths=lengths)
        return np.sum(out * dout) + np.sum(hn * dh_n) + np.sum(cn * dc_n)

    _, _, tape = m.forward_train(x, (h0, c0), lengths=lengths)
    m.zero_grad()
    dx, (dh0, dc0) = m.backward(tape, dout, (dh_n, dc_n))
    targets = [("x", x, dx), ("h0", h0, dh0), ("c0", c0, dc0)]
    targets += [(n, m.params[n], m.grads[n]) for n in m.params]
    for label, arr, grad in targets:
        flat, gflat = arr.reshape(-1), grad.reshape(-1)
        idx = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
        for i in idx:
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            num = (up - down) / (2 * eps)
            assert abs(num - gflat[i]) <= 1e-6 * max(1.0, abs(num)), (label, i, num, gflat[i])


@pytest.mark.parametrize("P,bi,lengths", [(0, False, None), (0, True, [4, 1, 3]),
                                          (2, False, [2, 4, 0]), (3, True, None)])
def test_finite_differences(P, bi, lengths):
    _fd_check(P, bi, None if lengths is None else np.array(lengths))


# -- dropout ----------------------------------------------------------------------


def test_dropout_matches_reference_with_the_drawn_mask():
    """Training draws inverted-dropout masks for every layer but the last from the module's
    generator (layer order, uniform >= p); the reference with those masks agrees."""
    p = 0.4
    m = gru_cy.LSTM(3, 5, num_layers=3, dropout=p, bidirectional=True, proj_size=2,
                    dtype=np.float64, seed=5)
    rng = np.random.default_rng(9)
    x, h0, c0, dout, dh_n, dc_n = _inputs(rng, 4, 3, 3, 5, 3, 2, 2, np.float64)
    gen = copy.deepcopy(m._rng)
    masks = [(gen.random((4, 3, 4)) >= p) / (1 - p) for _ in range(2)]
    out, (hn, cn), tape = m.forward_train(x, (h0, c0))
    e_out, e_hn, e_cn, cache = ref_lstm_forward(x, _p64(m), num_layers=3, bidirectional=True,
                                                proj_size=2, h0=h0, c0=c0, dropout_masks=masks)
    _check("out", out, e_out, np.float64)
    _check("c_n", cn, e_cn, np.float64)
    dx, (dh0, dc0) = m.backward(tape, dout, (dh_n, dc_n))
    e_dx, e_dh0, e_dc0, e_grads = ref_lstm_backward(cache, dout, dh_n, dc_n)
    _check("dx", dx, e_dx, np.float64)
    _check("dh0", dh0, e_dh0, np.float64)
    for name, g in e_grads.items():
        _check(name, m.grads[name], g, np.float64)
    # Inference applies no dropout.
    out_inf, _ = m(x, (h0, c0))
    e_inf = ref_lstm_forward(x, _p64(m), num_layers=3, bidirectional=True, proj_size=2, h0=h0,
                             c0=c0)[0]
    _check("out (call)", out_inf, e_inf, np.float64)


# -- step ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("L,B,H,P", [(1, 1, 16, 0), (3, 4, 64, 0), (2, 8, 256, 0),
                                     (2, 5, 256, 96), (3, 2, 128, 32)])
def test_step_equals_sequence(L, B, H, P, dtype):
    I, T = 24, 6
    m = gru_cy.LSTM(I, H, num_layers=L, proj_size=P, dtype=dtype, seed=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    R = P or H
    hx = (rng.standard_normal((L, B, R)).astype(dtype), rng.standard_normal((L, B, H)).astype(dtype))
    out, (hn, cn) = m(x, hx)
    state = hx
    for t in range(T):
        y, state = m.step(x[t], state)
        np.testing.assert_allclose(y, out[t], **TOL[dtype])
    np.testing.assert_allclose(state[0], hn, **TOL[dtype])
    np.testing.assert_allclose(state[1], cn, **TOL[dtype])
    # Unbatched step, and None state
    y, (h, c) = m.step(x[0, 0])
    y_ref, (h_ref, c_ref) = m(x[:1, :1])
    np.testing.assert_allclose(y, y_ref[0, 0], **TOL[dtype])
    assert h.shape == (L, R) and c.shape == (L, H)
    np.testing.assert_allclose(c, c_ref[:, 0], **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("L,B,I,H,P", [(1, 1, 64, 64, 0), (1, 1, 64, 256, 0), (2, 3, 64, 64, 0),
                                       (3, 1, 24, 128, 32)])
def test_one_step_call_is_a_one_step_sequence_bit_for_bit(L, B, I, H, P, dtype):
    """step(x_t, hx) returns what m(x_t[None], hx) returns, bit for bit, whichever path
    either takes (lean: a tuple of arrays of the dtype; general: lengths given, a list)."""
    from helpers import same_bits

    m = gru_cy.LSTM(I, H, num_layers=L, proj_size=P, dtype=dtype, seed=4)
    rng = np.random.default_rng(6)
    R = P or H
    hx = (rng.standard_normal((L, B, R)).astype(dtype), rng.standard_normal((L, B, H)).astype(dtype))
    for t in range(3):
        x_t = rng.standard_normal((B, I)).astype(dtype)
        y, state = m.step(x_t, hx)
        for out, (h_n, c_n) in (m(x_t[None], hx), m(x_t[None], list(hx), lengths=np.full(B, 1))):
            assert same_bits(y, out[0])
            assert same_bits(state[0], h_n) and same_bits(state[1], c_n)
        hx = state


def test_step_rejects_bidirectional():
    m = gru_cy.LSTM(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional"):
        m.step(np.zeros((2, 3), np.float32))


# -- torch parity ---------------------------------------------------------------------


def _torch_pair(I, H, L, bi, bias, P, dtype, batch_first=False):
    torch = pytest.importorskip("torch")
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    t = torch.nn.LSTM(I, H, num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bi,
                      proj_size=P).to(tdt)
    m = gru_cy.LSTM(I, H, num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bi,
                    proj_size=P, dtype=dtype)
    m.load_state_dict({k: v for k, v in t.state_dict().items()})
    return torch, t, m


TORCH_CASES = list(itertools.product([1, 2], [False, True], [True, False], [0, 3]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("L,bi,bias,P", TORCH_CASES)
@pytest.mark.parametrize("lengths", [None, [5, 2, 7, 1]], ids=["full", "packed"])
def test_vs_torch(L, bi, bias, P, dtype, lengths):
    I, H, T, B = 4, 6, 7, 4
    torch, t, m = _torch_pair(I, H, L, bi, bias, P, dtype)
    D, R = (2 if bi else 1), (P or H)
    rng = np.random.default_rng(11)
    x, h0, c0, dout, dh_n, dc_n = _inputs(rng, T, B, I, H, L, D, R, dtype)
    if lengths is not None:
        lengths = np.array(lengths)
        for b, n in enumerate(lengths):
            dout[n:, b] = 0  # padded outputs are constants
    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    if lengths is None:
        ot, (hnt, cnt) = t(xt, (h0t, c0t))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                         enforce_sorted=False)
        ot, (hnt, cnt) = t(packed, (h0t, c0t))
        ot, _ = torch.nn.utils.rnn.pad_packed_sequence(ot, total_length=T)
    loss = ((ot * torch.tensor(dout)).sum() + (hnt * torch.tensor(dh_n)).sum()
            + (cnt * torch.tensor(dc_n)).sum())
    loss.backward()
    out, (hn, cn), tape = m.forward_train(x, (h0, c0), lengths=lengths)
    dx, (dh0, dc0) = m.backward(tape, dout, (dh_n, dc_n))
    np_ = lambda a: a.detach().numpy()  # noqa: E731
    _check("out", out, np_(ot), dtype)
    _check("h_n", hn, np_(hnt), dtype)
    _check("c_n", cn, np_(cnt), dtype)
    _check("dx", dx, np_(xt.grad), dtype)
    _check("dh0", dh0, np_(h0t.grad), dtype)
    _check("dc0", dc0, np_(c0t.grad), dtype)
    for name, p in t.named_parameters():
        _check(f"grads[{name!r}]", m.grads[name], np_(p.grad), dtype)


def test_vs_torch_batch_first_unbatched():
    torch, t, m = _torch_pair(3, 5, 2, True, True, 2, np.float64, batch_first=True)
    x = np.random.default_rng(0).standard_normal((4, 6, 3))
    out, (hn, cn) = m(x)
    ot, (hnt, cnt) = t(torch.tensor(x))
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cn, cnt.detach().numpy(), rtol=1e-10, atol=1e-12)
    out, (hn, cn) = m(x[0])
    ot, (hnt, cnt) = t(torch.tensor(x[0]))
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hn, hnt.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_init_matches_torch_distribution_and_names():
    torch = pytest.importorskip("torch")
    t = torch.nn.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3)
    m = gru_cy.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3, seed=0)
    assert list(m.params) == [n for n, _ in t.named_parameters()]
    for n, p in t.named_parameters():
        assert m.params[n].shape == tuple(p.shape), n
        assert np.abs(m.params[n]).max() <= 1 / np.sqrt(8)


# -- module protocol ------------------------------------------------------------------------


def test_state_dict_and_pickle():
    m = gru_cy.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=2, batch_first=True,
                    dtype=np.float64, seed=4)
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    out, (hn, cn) = m(x)
    m2 = pickle.loads(pickle.dumps(m))
    out2, (hn2, cn2) = m2(x)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(cn, cn2)
    m4 = gru_cy.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=2, batch_first=True,
                     dtype=np.float64, seed=99)
    m4.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(m4(x)[1][0], hn)


def test_repr_and_config():
    m = gru_cy.LSTM(3, 6, num_layers=2, proj_size=2, dtype=np.float64)
    assert repr(m) == "LSTM(3, 6, num_layers=2, proj_size=2, dtype=float64)"
    assert m._config()["proj_size"] == 2


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(proj_size=6), ValueError, "proj_size has to be smaller than hidden_size"),
    (dict(proj_size=9), ValueError, "proj_size has to be smaller than hidden_size"),
    (dict(proj_size=-1), ValueError,
     "proj_size should be a positive integer or zero to disable projections"),
    (dict(proj_size=1.5), TypeError, "proj_size should be an integer"),
    (dict(proj_size=True), TypeError, "proj_size should be an integer"),
    (dict(dropout=2.0), ValueError, "dropout should be a number in range"),
    (dict(dtype=np.int32), ValueError, "dtype must be numpy.float32 or numpy.float64"),
])
def test_bad_constructor_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        gru_cy.LSTM(3, 6, **kwargs)


def test_bad_call_arguments():
    m = gru_cy.LSTM(3, 6, num_layers=2, proj_size=2)
    x = np.zeros((4, 5, 3), np.float32)
    h0, c0 = np.zeros((2, 5, 2), np.float32), np.zeros((2, 5, 6), np.float32)
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h0, c0\)"):
        m(x, h0)
    with pytest.raises(ValueError, match="two arrays"):
        m(x, (h0, c0, c0))
    with pytest.raises(ValueError, match=r"Expected hidden\[1\] size \(2, 5, 6\), got \[2, 5, 2\]"):
        m(x, (h0, h0))
    with pytest.raises(ValueError, match=r"Expected hidden\[0\] size \(2, 5, 2\), got \[2, 5, 6\]"):
        m(x, (c0, c0))
    with pytest.raises(ValueError, match="For batched 3-D input, hx and cx should also be 3-D"):
        m(x, (h0[0], c0))
    with pytest.raises(ValueError, match="For unbatched 2-D input, hx and cx should also be 2-D"):
        m(x[:, 0], (h0, c0))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D"):
        m(x[None])
    with pytest.raises(ValueError, match="input.size\\(-1\\) must be equal to input_size. "
                                         "Expected 3, got 2"):
        m(x[..., :2])
    with pytest.raises(ValueError, match="lengths must lie in"):
        m(x, lengths=[1, 2, 3, 4, 9])
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h0, c0\)"):
        m.step(x[0], h0)
    with pytest.raises(ValueError, match=r"Expected hidden\[1\] size \(2, 5, 6\)"):
        m.step(x[0], (h0, h0))
    out, _, tape = m.forward_train(x)
    with pytest.raises(TypeError, match="dhx must be a tuple"):
        m.backward(tape, None, np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"dc_n must have shape \(2, 5, 6\)"):
        m.backward(tape, None, (None, np.zeros((2, 5, 2))))
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 5, 2\)"):
        m.backward(tape, np.zeros((4, 5, 6)))
    dx, (dh0, dc0) = m.backward(tape, out, (None, None))
    assert dx.shape == x.shape and dh0.shape == h0.shape and dc0.shape == c0.shape
    dx2, _ = m.backward(tape, out)
    np.testing.assert_array_equal(dx, dx2)


# -- the lean one-call paths ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("L,B,T,P", [(1, 1, 1, 0), (2, 3, 1, 0), (3, 4, 9, 2), (2, 1, 7, 3),
                                     (1, 6, 5, 0), (3, 2, 1, 3), (4, 1, 1, 0)])
def test_lean_paths_equal_the_general_path_bitwise(L, B, T, P, dtype):
    from helpers import same_bits

    m = gru_cy.LSTM(5, 8, num_layers=L, proj_size=P, dtype=dtype, seed=1)
    R = P or 8
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    hx = (rng.standard_normal((L, B, R)).astype(dtype), rng.standard_normal((L, B, 8)).astype(dtype))
    assert m._kernel_infer(x, hx) is not None  # the lean path takes these arguments
    lean = m(x, hx)
    general = m(x, list(hx), lengths=np.full(B, T))  # lengths and a list: the general path
    assert same_bits(lean[0], general[0])
    assert same_bits(lean[1][0], general[1][0]) and same_bits(lean[1][1], general[1][1])
    # step: lean (tuple of arrays) and general (a list)
    assert m._kernel_step(x[0], hx) is not None
    y, (h, c) = m.step(x[0], hx)
    y2, (h2, c2) = m.step(x[0], list(hx))
    assert same_bits(y, y2) and same_bits(h, h2) and same_bits(c, c2)
    # unbatched lean calls
    y, (h, c) = m.step(x[0, 0])
    y2, (h2, c2) = m.step(x[0, 0].tolist())
    assert same_bits(y, y2) and same_bits(c, c2)
    out, (h, c) = m(x[:, 0])
    out2, (h2, c2) = m(x[:, 0], lengths=T)
    assert same_bits(out, out2) and same_bits(h, h2)


def test_lean_path_declines_what_it_cannot_take():
    m = gru_cy.LSTM(3, 4, num_layers=2)
    x = np.zeros((2, 3, 3), np.float32)
    assert m._kernel_infer(x.astype(np.float64), None) is None
    assert m._kernel_infer(x, [np.zeros((2, 3, 4), np.float32)] * 2) is None
    assert m._kernel_infer(x, (np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 5), np.float32))) is None
    m.params["weight_hh_l1"] = m.params["weight_hh_l1"].astype(np.float64)
    assert m._kernel_infer(x, None) is None
    out, _ = m(x)   # the general path converts it
    assert out.dtype == np.float32


def test_save_and_load(tmp_path):
    m = gru_cy.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=2, batch_first=True,
                    dtype=np.float64, seed=4)
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    out, (hn, cn) = m(x)
    m.save(tmp_path / "lstm.npz")
    m2 = gru_cy.load(tmp_path / "lstm.npz")
    assert type(m2) is gru_cy.LSTM and repr(m2) == repr(m)
    out2, (hn2, cn2) = m2(x)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(cn2, cn)
    assert list(m2.params) == list(m.params)


# -- threads: the same bits whatever the split ----------------------------------------------


@pytest.mark.parametrize("B,kwargs,lengths", [
    (6, dict(), None),
    (5, dict(proj_size=3), [7, 3, 0, 7, 1]),
    (4, dict(num_layers=3, dropout=0.5), None),
    (7, dict(num_layers=2, bias=False, proj_size=2), [1, 2, 3, 4, 5, 6, 7]),
    (6, dict(go_backwards=True), [7, 7, 7, 2, 2, 2]),
    (6, dict(bidirectional=True, proj_size=3), [7, 2, 5, 7, 0, 1]),
])
@pytest.mark.parametrize("split", THREAD_SPLITS[1:])
def test_threads_give_the_one_thread_bits(split, B, kwargs, lengths):
    """Every result (inference, training, every gradient) is the one-thread run's bit for
    bit, whichever way the threads split the rows and the units (forced here whatever the
    size), and the reference's."""
    T, I, H = 7, 3, 40
    rng = np.random.default_rng(B)
    L, P = kwargs.get("num_layers", 1), kwargs.get("proj_size", 0)
    D, R = (2 if kwargs.get("bidirectional") else 1), P or H
    x, h0, c0, dout, dh_n, dc_n = _inputs(rng, T, B, I, H, L, D, R, np.float64)
    lengths = None if lengths is None else np.array(lengths)
    results = []
    for config in (THREAD_SPLITS[0], split):
        m = gru_cy.LSTM(I, H, dtype=np.float64, seed=3, **kwargs)
        with threads(*config):
            out, (hn, cn) = m(x, (h0, c0), lengths=lengths)
            t_out, (t_h, t_c), tape = m.forward_train(x, (h0, c0), lengths=lengths)
            dx, (dh0, dc0) = m.backward(tape, dout, (dh_n, dc_n))
        results.append([out, hn, cn, t_out, t_h, t_c, dx, dh0, dc0]
                       + [m.grads[k] for k in sorted(m.grads)])
    for a, b in zip(*results):
        assert same_bits(a, b)
    if not kwargs.get("dropout") and not kwargs.get("go_backwards"):
        e_out, e_hn, e_cn, _ = ref_lstm_forward(x, _p64(m), num_layers=L, proj_size=P,
                                                bidirectional=D == 2,
                                                bias=kwargs.get("bias", True), h0=h0, c0=c0,
                                                lengths=lengths)
        np.testing.assert_allclose(results[1][0], e_out, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(results[1][2], e_cn, rtol=1e-10, atol=1e-12)


def test_calls_from_many_threads_at_once():
    """The kernels release the GIL and share no workspace: concurrent calls give the serial
    results (lean step, general call with lengths, training)."""
    from concurrent.futures import ThreadPoolExecutor

    m = gru_cy.LSTM(4, 16, num_layers=2, bidirectional=False, proj_size=5, seed=1)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((9, 3, 4)).astype(np.float32) for _ in range(8)]
    lengths = np.array([9, 4, 6])

    def work(x):
        y, _ = m.step(x[0])
        out, (h, c) = m(x, lengths=lengths)
        return y, out, h, c

    serial = [work(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(work, xs))
    for a, b in zip(serial, concurrent):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


def test_nan_propagates_and_padding_does_not_leak():
    m = gru_cy.LSTM(3, 4, bidirectional=True, proj_size=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    lengths = np.array([5, 2])
    x_pad = x.copy()
    x_pad[2:, 1] = np.nan  # padded steps of sequence 1
    out, (hn, cn), tape = m.forward_train(x_pad, lengths=lengths)
    ref_out, (ref_hn, ref_cn) = m(x, lengths=lengths)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(cn, ref_cn)
    m.zero_grad()
    dx, _ = m.backward(tape, np.ones_like(out))
    assert all(np.isfinite(g).all() for g in m.grads.values()) and np.isfinite(dx).all()
    x_nan = x.copy()
    x_nan[1, 0, 0] = np.nan  # a valid step of sequence 0
    out, (hn, cn) = m(x_nan, lengths=lengths)
    assert np.isnan(out[1:, 0, :2]).all() and np.isnan(out[:2, 0, 2:]).all()
    assert np.isfinite(out[:, 1]).all() and np.isnan(cn[:, 0]).all()
