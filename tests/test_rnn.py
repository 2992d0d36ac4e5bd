"""gru_cy.RNN (Elman): the NumPy reference, finite differences, torch.nn.RNN, golden files,
streaming, argument errors and pickling.

tests/reference_rnn.py is the independent yardstick (written from the maths, one sequence and one
step at a time); torch.nn.RNN is the peer (skipped without torch); tests/golden/torch_rnn_*.npz,
written by tests/make_golden_rnn.py, let the torch comparison run without torch.
"""

import glob
import json
import os
import pickle

import numpy as np
import pytest

import gru_cy
from helpers import assert_same_modules, same_bits
from reference_rnn import ref_rnn_backward, ref_rnn_forward, rnn_param_names

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN_FILES = sorted(glob.glob(os.path.join(GOLDEN_DIR, "torch_rnn_*.npz")))
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}
ACTS = ["tanh", "relu"]
DTYPES = [np.float32, np.float64]


def _module(I, H, L=1, act="tanh", dtype=np.float64, **kwargs):
    return gru_cy.RNN(I, H, L, act, dtype=dtype, seed=3, **kwargs)


def _reference(m, x, h0, lengths, dout, dh_n):
    """The reference's results for module m on time-major float64 inputs."""
    params = {n: p.astype(np.float64) for n, p in m.params.items()}
    out, h_n, cache = ref_rnn_forward(x.astype(np.float64), params, m.num_layers, m.nonlinearity,
                                      m.bidirectional, m.bias, h0.astype(np.float64), lengths,
                                      m.go_backwards)
    dx, dh0, grads = ref_rnn_backward(cache, dout.astype(np.float64), dh_n.astype(np.float64))
    return out, h_n, dx, dh0, grads


def _check_close(label, actual, expected, dtype):
    assert actual.dtype == np.dtype(dtype), label
    assert actual.shape == expected.shape, f"{label}: {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=label, **TOL[dtype])


def _run_against_reference(m, x, h0, lengths, dtype, rng):
    T, B = x.shape[0], x.shape[1]
    out, h_n, tape = m.forward_train(x, h0, lengths)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dh_n = rng.standard_normal(h_n.shape).astype(dtype)
    m.zero_grad()
    dx, dh0 = m.backward(tape, dout, dh_n)
    r_out, r_hn, r_dx, r_dh0, r_grads = _reference(m, x, h0, lengths, dout, dh_n)
    _check_close("out", out, r_out, dtype)
    _check_close("h_n", h_n, r_hn, dtype)
    _check_close("dx", dx, r_dx, dtype)
    _check_close("dh0", dh0, r_dh0, dtype)
    for name, g in r_grads.items():
        _check_close(f"grad {name}", m.grads[name], g, dtype)
    # Inference and training compute the same bits.
    out_i, hn_i = m(x, h0, lengths)
    assert same_bits(out_i, out) and same_bits(hn_i, h_n)


# ---- the NumPy reference ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("L, bidirectional, go_backwards", [(1, False, False), (2, False, False),
                                                            (2, True, False), (1, False, True),
                                                            (3, True, False)])
@pytest.mark.parametrize("lengths", [None, [5, 0, 7, 3, 7, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_reference(dtype, act, L, bidirectional, go_backwards, lengths, bias):
    rng = np.random.default_rng(11)
    T, B, I, H = 7, 6, 4, 5
    m = _module(I, H, L, act, dtype, bias=bias, bidirectional=bidirectional,
                go_backwards=go_backwards)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((L * D, B, H)).astype(dtype)
    _run_against_reference(m, x, h0, lengths, dtype, rng)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [1, 3, 40])
def test_bidirectional_and_reverse_only_match_reference(act, dtype, B):
    rng = np.random.default_rng(5)
    T, I, H = 9, 3, 6
    for bidirectional, go_backwards in [(True, False), (False, True)]:
        m = _module(I, H, 2, act, dtype, bidirectional=bidirectional,
                    go_backwards=go_backwards)
        D = 2 if bidirectional else 1
        x = rng.standard_normal((T, B, I)).astype(dtype)
        h0 = rng.standard_normal((2 * D, B, H)).astype(dtype)
        _run_against_reference(m, x, h0, None, dtype, rng)


def test_large_shape_matches_reference():
    rng = np.random.default_rng(2)
    T, B, I, H = 4, 64, 5, 128
    m = _module(I, H, 1, "tanh", np.float64, bidirectional=True)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((2, B, H))
    _run_against_reference(m, x, h0, None, np.float64, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_first_and_unbatched(dtype):
    rng = np.random.default_rng(4)
    T, B, I, H = 6, 3, 4, 5
    m = _module(I, H, 2, "relu", dtype, bidirectional=True, batch_first=True)
    x_tm = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((4, B, H)).astype(dtype)
    out, h_n, tape = m.forward_train(x_tm.swapaxes(0, 1), h0, [6, 2, 4])
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dh0 = m.backward(tape, dout, None)
    r = _reference(m, x_tm, h0, [6, 2, 4], dout.swapaxes(0, 1), np.zeros_like(h0))
    _check_close("out", out, r[0].swapaxes(0, 1), dtype)
    _check_close("h_n", h_n, r[1], dtype)
    _check_close("dx", dx, r[2].swapaxes(0, 1), dtype)
    _check_close("dh0", dh0, r[3], dtype)

    u = _module(I, H, 2, "tanh", dtype, bidirectional=True)
    out, h_n, tape = u.forward_train(x_tm[:, 0], h0[:, 0])
    assert out.shape == (T, 2 * H) and h_n.shape == (4, H)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dh0 = u.backward(tape, dout, None)
    r = _reference(u, x_tm[:, :1], h0[:, :1], None, dout[:, None], np.zeros_like(h0[:, :1]))
    _check_close("out", out, r[0][:, 0], dtype)
    _check_close("dx", dx, r[2][:, 0], dtype)
    _check_close("dh0", dh0, r[3][:, 0], dtype)


def test_zero_lengths_keep_h0_and_zero_outputs():
    rng = np.random.default_rng(0)
    m = _module(3, 4, 2, "tanh", bidirectional=True)
    x = rng.standard_normal((5, 3, 3))
    h0 = rng.standard_normal((4, 3, 4))
    x[3:, 1] = np.nan   # padding is never read
    out, h_n = m(x, h0, [0, 3, 5])
    assert np.all(out[:, 0] == 0) and np.all(out[3:, 1] == 0)
    np.testing.assert_array_equal(h_n[:, 0], h0[:, 0])
    assert np.all(np.isfinite(out))


def test_empty_inputs():
    m = _module(3, 4, 2)
    out, h_n = m(np.zeros((0, 2, 3)))
    assert out.shape == (0, 2, 4) and h_n.shape == (2, 2, 4)
    out, h_n = m(np.zeros((4, 0, 3)))
    assert out.shape == (4, 0, 4) and h_n.shape == (2, 0, 4)


# ---- finite differences -----------------------------------------------------------------------

@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_finite_differences(act, bidirectional):
    """Central differences in float64 for x, h0 and every parameter, with uneven lengths."""
    rng = np.random.default_rng(9)
    T, B, I, H, L = 5, 3, 3, 4, 2
    D = 2 if bidirectional else 1
    m = _module(I, H, L, act, np.float64, bidirectional=bidirectional)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, H))
    lengths = [5, 2, 4]
    dout = rng.standard_normal((T, B, D * H))
    dh_n = rng.standard_normal((L * D, B, H))
    mask = (np.arange(T)[:, None] < np.array(lengths))[:, :, None]

    def loss():
        out, h_n = m(x, h0, lengths)
        return np.sum(out * dout * mask) + np.sum(h_n * dh_n)

    _, _, tape = m.forward_train(x, h0, lengths)
    m.zero_grad()
    dx, dh0 = m.backward(tape, dout * mask, dh_n)
    eps = 1e-6
    targets = [("x", x, dx), ("h0", h0, dh0)] + [(n, m.params[n], m.grads[n]) for n in m.params]
    for label, array, analytic in targets:
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            keep = array[idx]
            array[idx] = keep + eps
            up = loss()
            array[idx] = keep - eps
            down = loss()
            array[idx] = keep
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=label)


# ---- torch.nn.RNN -------------------------------------------------------------------------------

def _torch_run(torch, t, x, h0, lengths, dout, dh_n, batch_first):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    if lengths is not None:
        packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        out_p, hn = t(packed, h0t)
        T = x.shape[1] if batch_first else x.shape[0]
        out, _ = pad_packed_sequence(out_p, batch_first=batch_first, total_length=T)
    else:
        out, hn = t(xt, h0t)
    ((out * torch.tensor(dout)).sum() + (hn * torch.tensor(dh_n)).sum()).backward()
    grads = {n: p.grad.numpy() for n, p in t.named_parameters()}
    return (out.detach().numpy(), hn.detach().numpy(), xt.grad.numpy(), h0t.grad.numpy(), grads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("L, bidirectional", [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lengths", [None, [4, 6, 1, 3]], ids=["full", "packed"])
def test_matches_torch(dtype, act, L, bidirectional, batch_first, bias, lengths):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    T, B, I, H = 6, 4, 3, 5
    D = 2 if bidirectional else 1
    m = _module(I, H, L, act, dtype, bias=bias, bidirectional=bidirectional,
                batch_first=batch_first)
    t = torch.nn.RNN(I, H, L, nonlinearity=act, bias=bias, batch_first=batch_first,
                     bidirectional=bidirectional).to(torch.float64 if dtype == np.float64
                                                      else torch.float32)
    m.load_state_dict(t.state_dict())
    shape = (B, T, I) if batch_first else (T, B, I)
    x = rng.standard_normal(shape).astype(dtype)
    h0 = rng.standard_normal((L * D, B, H)).astype(dtype)
    out, h_n, tape = m.forward_train(x, h0, lengths)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dh_n = rng.standard_normal(h_n.shape).astype(dtype)
    m.zero_grad()
    dx, dh0 = m.backward(tape, dout, dh_n)
    if lengths is not None:
        # torch's padded outputs are zeros that take no gradient: ours likewise ignore dout there.
        valid = np.arange(T)[:, None] < np.array(lengths)[None, :]
        dout = dout * (valid.T if batch_first else valid)[:, :, None]
    r_out, r_hn, r_dx, r_dh0, r_grads = _torch_run(torch, t, x, h0, lengths, dout, dh_n,
                                                   batch_first)
    _check_close("out", out, r_out, dtype)
    _check_close("h_n", h_n, r_hn, dtype)
    _check_close("dx", dx, r_dx, dtype)
    _check_close("dh0", dh0, r_dh0, dtype)
    assert set(r_grads) == set(m.grads)
    for name, g in r_grads.items():
        _check_close(f"grad {name}", m.grads[name], g, dtype)


def test_unbatched_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    m = _module(3, 4, 2, "relu", np.float64, bidirectional=True)
    t = torch.nn.RNN(3, 4, 2, nonlinearity="relu", bidirectional=True).double()
    m.load_state_dict(t.state_dict())
    x = rng.standard_normal((5, 3))
    h0 = rng.standard_normal((4, 4))
    out, h_n = m(x, h0)
    r_out, r_hn = t(torch.tensor(x), torch.tensor(h0))
    _check_close("out", out, r_out.detach().numpy(), np.float64)
    _check_close("h_n", h_n, r_hn.detach().numpy(), np.float64)


# ---- golden files (torch results, checked without torch) -----------------------------------------

def _load_golden(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return json.loads(str(arrays.pop("config"))), arrays


def test_golden_files_exist():
    assert len(GOLDEN_FILES) >= 8, f"expected torch_rnn_*.npz golden files in {GOLDEN_DIR}"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: os.path.basename(p)[10:-4])
def test_matches_torch_golden(path):
    config, g = _load_golden(path)
    dtype = np.dtype(config["dtype"]).type
    names = rnn_param_names(config["num_layers"], config["bidirectional"], config["bias"])
    m = gru_cy.RNN(config["input_size"], config["hidden_size"], config["num_layers"],
                   config["nonlinearity"], config["bias"], config["batch_first"], 0.0,
                   config["bidirectional"], dtype)
    assert list(m.params) == names
    m.load_state_dict({n: g[n] for n in names})
    lengths = g["lengths"] if config["has_lengths"] else None
    out, h_n, tape = m.forward_train(g["x"], g["h0"], lengths)
    m.zero_grad()
    dx, dh0 = m.backward(tape, g["dout"], g["dh_n"])
    results = {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}
    results.update({f"grad_{n}": m.grads[n] for n in names})
    for label, actual in results.items():
        _check_close(label, actual, g[label], dtype)


@pytest.mark.parametrize("path", [p for p in GOLDEN_FILES if p.endswith("float64.npz")],
                         ids=lambda p: os.path.basename(p)[10:-4])
def test_golden_file_matches_reference(path):
    """The stored torch results agree with the NumPy reference (guards the golden files)."""
    config, g = _load_golden(path)
    x, h0, dout, dh_n = g["x"], g["h0"], g["dout"], g["dh_n"]
    if config["unbatched"]:
        x, dout, h0, dh_n = x[:, None], dout[:, None], h0[:, None], dh_n[:, None]
    elif config["batch_first"]:
        x, dout = x.swapaxes(0, 1), dout.swapaxes(0, 1)
    names = rnn_param_names(config["num_layers"], config["bidirectional"], config["bias"])
    out, h_n, cache = ref_rnn_forward(x, {n: g[n] for n in names}, config["num_layers"],
                                      config["nonlinearity"], config["bidirectional"],
                                      config["bias"], h0,
                                      g["lengths"] if config["has_lengths"] else None)
    dx, dh0, grads = ref_rnn_backward(cache, dout, dh_n)
    if config["unbatched"]:
        out, h_n, dx, dh0 = out[:, 0], h_n[:, 0], dx[:, 0], dh0[:, 0]
    elif config["batch_first"]:
        out, dx = out.swapaxes(0, 1), dx.swapaxes(0, 1)
    for label, actual in {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}.items():
        _check_close(label, actual, g[label], np.float64)
    for name, grad in grads.items():
        _check_close(f"grad_{name}", grad, g[f"grad_{name}"], np.float64)


# ---- streaming and the lean paths -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_step_equals_forward_bit_for_bit(dtype, act, B, go_backwards):
    rng = np.random.default_rng(1)
    T, L = 30, 3
    m = _module(5, 6, L, act, dtype, go_backwards=go_backwards)
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    h0 = rng.standard_normal((L, B, 6)).astype(dtype)
    out, h_n = m(x, h0)
    ys, h = [], h0
    # A reverse-only module reads the sequence from its end: feed it in reverse.
    for t in (range(T - 1, -1, -1) if go_backwards else range(T)):
        y, h = m.step(x[t], h)
        ys.append(y)
    if go_backwards:
        ys = ys[::-1]
    assert same_bits(np.stack(ys), out)
    assert same_bits(h, h_n)
    y_u, h_u = m.step(x[0, 0], h0[:, 0])
    y_b, h_b = m.step(x[0, :1], h0[:, :1])
    assert same_bits(y_u, y_b[0]) and same_bits(h_u, h_b[:, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_lean_path_equals_general_path(dtype):
    """__call__ with arrays of the module's dtype takes the lean path; a list input takes the
    general one; both run the same kernel."""
    rng = np.random.default_rng(3)
    m = _module(4, 5, 2, "relu", dtype)
    for shape in [(7, 3, 4), (7, 4), (1, 5, 4)]:
        x = rng.standard_normal(shape).astype(dtype)
        out, h_n = m(x)
        out_g, h_n_g = m(x.tolist())
        assert same_bits(out, out_g) and same_bits(h_n, h_n_g)
    assert m._kernel_infer(np.zeros((3, 2, 4), dtype), None) is not None


def test_step_rejects_bidirectional():
    m = _module(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="step\\(\\) needs a unidirectional module"):
        m.step(np.zeros(3))


# ---- dropout ----------------------------------------------------------------------------------------

def test_dropout_applies_in_training_only():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4))
    m = _module(4, 5, 3, "tanh", dropout=0.5)
    plain = _module(4, 5, 3, "tanh")
    assert same_bits(m(x)[0], plain(x)[0])
    out, _, tape = m.forward_train(x)
    assert not np.allclose(out, plain(x)[0])
    dx, _ = m.backward(tape, np.ones_like(out))
    assert np.all(np.isfinite(dx))


# ---- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(nonlinearity="sigmoid"), ValueError, "Unknown nonlinearity 'sigmoid'. Select from "
                                               "'tanh' or 'relu'"),
    (dict(nonlinearity=None), TypeError, "nonlinearity should be a str, got NoneType"),
    (dict(hidden_size=0), ValueError, "hidden_size must be >= 1, got 0"),
    (dict(num_layers=1.5), TypeError, "num_layers should be an integer"),
    (dict(dropout=2.0), ValueError, "dropout should be a number in range \\[0, 1\\]"),
    (dict(dtype=np.int32), ValueError, "dtype must be numpy.float32 or numpy.float64"),
    (dict(bias="yes"), TypeError, "bias should be a bool"),
    (dict(bidirectional=True, go_backwards=True), ValueError, "cannot be combined"),
])
def test_constructor_errors(kwargs, exc, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        gru_cy.RNN(**args)


@pytest.mark.parametrize("x, h0, lengths, exc, match", [
    (np.zeros((5, 2, 4)), None, None, ValueError,
     "input.size\\(-1\\) must be equal to input_size. Expected 3, got 4"),
    (np.zeros((5,)), None, None, ValueError, "RNN: Expected input to be 2D or 3D, got 1D"),
    (np.zeros((5, 2, 3)), np.zeros((1, 2, 4)), None, ValueError,
     "Expected hidden size \\(2, 2, 4\\), got \\[1, 2, 4\\]"),
    (np.zeros((5, 2, 3)), np.zeros((2, 4)), None, ValueError,
     "For batched 3-D input, hx should also be 3-D"),
    (np.zeros((5, 2, 3)), None, [6, 1], ValueError, "lengths must lie in \\[0, T\\]"),
    (np.zeros((5, 2, 3)), None, [1.0, 2.0], TypeError, "lengths must be integers"),
    (np.zeros((5, 2, 3)), None, [1], ValueError, "one entry per batch element"),
    (np.array([["a"]]), None, None, TypeError, "input"),
])
def test_call_errors(x, h0, lengths, exc, match):
    m = gru_cy.RNN(3, 4, 2)
    with pytest.raises(exc, match=match):
        m(x, h0, lengths)


def test_backward_errors():
    m = gru_cy.RNN(3, 4)
    out, h_n, tape = m.forward_train(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(ValueError, match="dout must have shape \\(5, 2, 4\\)"):
        m.backward(tape, np.zeros((5, 2, 3)))
    with pytest.raises(TypeError, match="tape must be the third result of forward_train"):
        m.backward(out)
    with pytest.raises(ValueError, match="different module"):
        gru_cy.RNN(3, 4).backward(tape)


# ---- the module protocol ------------------------------------------------------------------------

def test_config_repr_and_state_dict():
    m = gru_cy.RNN(3, 4, 2, "relu", bidirectional=True, dtype=np.float64, seed=0)
    assert repr(m) == "RNN(3, 4, nonlinearity='relu', num_layers=2, bidirectional=True, " \
                      "dtype=float64)"
    assert repr(gru_cy.RNN(3, 4)) == "RNN(3, 4)"
    assert m._config()["nonlinearity"] == "relu"
    assert list(m.state_dict()) == rnn_param_names(2, True, True)
    assert m.params["weight_ih_l1"].shape == (4, 8)
    assert m.params["weight_hh_l0_reverse"].shape == (4, 4)
    bound = 1 / np.sqrt(4)
    assert all(np.all(np.abs(p) <= bound) for p in m.params.values())


def test_positional_signature():
    m = gru_cy.RNN(3, 4, 2, "relu", False, True, 0.25, True, np.float64, 5, False)
    assert (m.num_layers, m.nonlinearity, m.bias, m.batch_first, m.dropout, m.bidirectional,
            m.dtype, m.seed) == (2, "relu", False, True, 0.25, True, np.float64, 5)


def test_pickle_round_trip_is_identical():
    rng = np.random.default_rng(0)
    m = gru_cy.RNN(3, 4, 2, "relu", dropout=0.3, seed=1)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    m(x)    # fills the lean-path cache, which is not pickled
    clone = pickle.loads(pickle.dumps(m))
    assert_same_modules(m, clone)
    assert clone.nonlinearity == "relu"
    assert same_bits(clone(x)[0], m(x)[0])
    # the random generator travels too: the same dropout masks
    assert same_bits(clone.forward_train(x)[0], m.forward_train(x)[0])



# ---- IEEE -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("act", ACTS)
def test_nan_propagates_along_its_own_sequence_only(act):
    x = np.random.default_rng(0).standard_normal((6, 3, 2))
    x[2, 1, 0] = np.nan
    m = _module(2, 4, 1, act)
    out, h_n = m(x)
    out_t, h_t, tape = m.forward_train(x)
    dx, dh0 = m.backward(tape, np.ones_like(out_t))
    for o in (out, out_t):
        assert np.all(np.isnan(o[2:, 1])) and np.all(np.isfinite(o[:2, 1]))
        assert np.all(np.isfinite(o[:, [0, 2]]))
    assert np.all(np.isnan(h_n[0, 1])) and np.all(np.isfinite(h_n[0, [0, 2]]))
    assert np.all(np.isfinite(dx[:, [0, 2]]))


def test_infinite_inputs_saturate_tanh_exactly():
    m = _module(1, 3, 1, "tanh", bias=False)
    m.params["weight_ih_l0"][...] = [[1.0], [-1.0], [2.0]]
    out, _ = m(np.array([[[np.inf]]]))
    np.testing.assert_array_equal(out[0, 0], [1.0, -1.0, 1.0])


def test_padding_never_reaches_the_gradients():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 2))
    x[3:, 0] = np.nan
    x[1:, 2] = np.inf
    m = _module(2, 4, 2, "relu", bidirectional=True)
    out, h_n, tape = m.forward_train(x, None, [3, 5, 1])
    dx, dh0 = m.backward(tape, np.ones_like(out), np.ones_like(h_n))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx)) and np.all(np.isfinite(dh0))
    assert all(np.all(np.isfinite(g)) for g in m.grads.values())
