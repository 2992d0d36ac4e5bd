"""The one-step cells: gru_cy.GRUCell, LSTMCell and RNNCell.

Against torch.nn.GRUCell / LSTMCell / RNNCell with the same weights (the new
state and every gradient; float64 within 1e-10 relative, float32 within 2e-5),
batched and unbatched, with and without bias; against golden files recorded
from torch (tests/make_golden_cells.py), so that CI checks parity without
torch; against the NumPy reference (tests/reference_cells.py) and central
finite differences in float64; against the modules' own one-step call (the
same kernels, so the same bits); the torch messages for bad arguments, the
hostile inputs of the error contract, round trips (from_torch / to_torch,
state_dict, save / load, pickle), tapes that are snapshots and concurrent
backward calls.
"""

import glob
import json
import os
import pickle
import numpy as np
import pytest

import gru_cy
from helpers import backward_calls_take_turns, same_bits
from reference_cells import ref_cell

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN_FILES = sorted(glob.glob(os.path.join(GOLDEN_DIR, "torch_cell_*.npz")))
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}
DTYPES = (np.float64, np.float32)
KINDS = ("gru", "lstm", "rnn_tanh", "rnn_relu")


def make_cell(kind, I, H, bias=True, dtype=np.float64, seed=0):
    if kind == "gru":
        return gru_cy.GRUCell(I, H, bias=bias, dtype=dtype, seed=seed)
    if kind == "lstm":
        return gru_cy.LSTMCell(I, H, bias=bias, dtype=dtype, seed=seed)
    return gru_cy.RNNCell(I, H, bias=bias, nonlinearity=kind[4:], dtype=dtype, seed=seed)


def draw(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def state_of(kind, rng, lead, H, dtype=np.float64):
    if kind == "lstm":
        return draw(rng, lead + (H,), dtype), draw(rng, lead + (H,), dtype)
    return draw(rng, lead + (H,), dtype)


def run_cell(cell, kind, x, hx, dh, dc):
    """(state, dx, dstate) of one forward_train + backward."""
    state, tape = cell.forward_train(x, hx)
    if kind == "lstm":
        dx, dstate = cell.backward(tape, (dh, dc))
    else:
        dx, dstate = cell.backward(tape, dh)
    return state, dx, dstate


def assert_close(actual, expected, dtype, what):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               err_msg=what, **TOL[dtype])


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


# ---------------------------------------------------------------------------
# against torch


def torch_cell(torch, kind, cell):
    tdt = torch.float64 if cell.dtype == np.float64 else torch.float32
    cls = {"gru": torch.nn.GRUCell, "lstm": torch.nn.LSTMCell}.get(kind, torch.nn.RNNCell)
    kwargs = {"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}
    t = cls(cell.input_size, cell.hidden_size, bias=cell.bias, **kwargs).to(tdt)
    with torch.no_grad():
        for name, p in t.named_parameters():
            p.copy_(torch.from_numpy(cell.params[name]))
    return t


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("lead", [(4,), (1,), (), (16,)], ids=["B4", "B1", "unbatched", "B16"])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch(kind, lead, bias, dtype):
    torch = pytest.importorskip("torch")
    I, H = 6, 5
    rng = np.random.default_rng(len(lead) * 7 + bias)
    cell = make_cell(kind, I, H, bias=bias, dtype=dtype, seed=3)
    t = torch_cell(torch, kind, cell)
    x = draw(rng, lead + (I,), dtype)
    hx = state_of(kind, rng, lead, H, dtype)
    dh, dc = draw(rng, lead + (H,), dtype), draw(rng, lead + (H,), dtype)
    tx = torch.from_numpy(x).requires_grad_(True)
    th = [torch.from_numpy(a).requires_grad_(True) for a in as_tuple(hx)]
    t_state = as_tuple(t(tx, tuple(th) if kind == "lstm" else th[0]))
    loss = (t_state[0] * torch.from_numpy(dh)).sum()
    if kind == "lstm":
        loss = loss + (t_state[1] * torch.from_numpy(dc)).sum()
    loss.backward()

    state, dx, dstate = run_cell(cell, kind, x, hx, dh, dc)
    inference = cell(x, hx)
    for ours, theirs, inf in zip(as_tuple(state), t_state, as_tuple(inference)):
        assert ours.shape == tuple(theirs.shape) and ours.dtype == dtype
        assert_close(ours, theirs.detach().numpy(), dtype, "state")
        assert_close(inf, theirs.detach().numpy(), dtype, "inference")
    assert dx.shape == x.shape
    assert_close(dx, tx.grad.numpy(), dtype, "dx")
    for ours, theirs in zip(as_tuple(dstate), th):
        assert_close(ours, theirs.grad.numpy(), dtype, "dhx")
    for name, p in t.named_parameters():
        assert_close(cell.grads[name], p.grad.numpy(), dtype, name)


@pytest.mark.parametrize("kind", KINDS)
def test_initialisation_matches_torch_bounds_and_names(kind):
    torch = pytest.importorskip("torch")
    cell = make_cell(kind, 7, 9, dtype=np.float32, seed=0)
    t = torch_cell(torch, kind, make_cell(kind, 7, 9, dtype=np.float32, seed=1))
    theirs = {name: tuple(p.shape) for name, p in t.named_parameters()}
    assert {name: p.shape for name, p in cell.params.items()} == theirs
    assert list(cell.params) == list(theirs)            # PyTorch's order
    bound = 1 / np.sqrt(9)
    for p in cell.params.values():
        assert p.dtype == np.float32 and np.all(np.abs(p) <= bound)
        assert np.abs(p).max() > 0.8 * bound            # spread over the range, not zeros
    # seeded: the same seed gives the same weights, another seed others
    again = make_cell(kind, 7, 9, dtype=np.float32, seed=0)
    other = make_cell(kind, 7, 9, dtype=np.float32, seed=1)
    assert same_bits(cell.params["weight_hh"], again.params["weight_hh"])
    assert not np.array_equal(cell.params["weight_hh"], other.params["weight_hh"])


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_and_to_torch_round_trip(kind):
    torch = pytest.importorskip("torch")
    kwargs = {"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}
    cls = {"gru": torch.nn.GRUCell, "lstm": torch.nn.LSTMCell}.get(kind, torch.nn.RNNCell)
    ours_cls = {"gru": gru_cy.GRUCell, "lstm": gru_cy.LSTMCell}.get(kind, gru_cy.RNNCell)
    t = cls(4, 3, **kwargs).double()
    cell = ours_cls.from_torch(t)
    assert cell.dtype == np.float64 and (cell.input_size, cell.hidden_size) == (4, 3)
    if kind.startswith("rnn"):
        assert cell.nonlinearity == kind[4:]
    back = cell.to_torch()
    assert type(back) is cls
    for (name, p), (name2, q) in zip(t.named_parameters(), back.named_parameters()):
        assert name == name2 and torch.equal(p, q)
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        theirs = as_tuple(back(x))
    for ours, ref in zip(as_tuple(cell(x.numpy())), theirs):
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-12, atol=1e-14)
    # a state dict (no nonlinearity recorded: tanh assumed), and float32 on request
    from_state = ours_cls.from_torch(t.state_dict(), dtype=np.float32)
    assert from_state.dtype == np.float32
    np.testing.assert_array_equal(from_state.params["weight_ih"],
                                  t.weight_ih.detach().numpy().astype(np.float32))
    # load_state_dict takes torch tensors as they are
    cell2 = make_cell(kind, 4, 3)
    cell2.load_state_dict(t.state_dict())
    assert same_bits(cell2.params["weight_hh"], t.weight_hh.detach().numpy())
    with pytest.raises(TypeError, match="from_torch expects a torch.nn"):
        ours_cls.from_torch(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------
# golden files (no torch needed)


def test_golden_files_exist():
    assert len(GOLDEN_FILES) == 24, f"expected the cells' golden files in {GOLDEN_DIR}"


def _load(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return json.loads(str(arrays.pop("config"))), arrays


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: os.path.basename(p)[11:-4])
def test_matches_torch_golden(path):
    config, g = _load(path)
    kind, dtype = config["kind"], np.dtype(config["dtype"]).type
    cell = make_cell(kind, config["input_size"], config["hidden_size"], bias=config["bias"],
                     dtype=dtype)
    names = [n for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if n in g]
    cell.load_state_dict({name: g[name] for name in names})
    lstm = kind == "lstm"
    hx = (g["h0"], g["c0"]) if lstm else g["h0"]
    state, dx, dstate = run_cell(cell, kind, g["x"], hx, g["dh"], g.get("dc"))
    expected = (g["h"], g["c"]) if lstm else (g["h"],)
    for ours, ref in zip(as_tuple(state), expected):
        assert ours.shape == ref.shape
        assert_close(ours, ref, dtype, "state")
    assert_close(dx, g["dx"], dtype, "dx")
    for ours, ref in zip(as_tuple(dstate), (g["dh0"], g["dc0"]) if lstm else (g["dh0"],)):
        assert_close(ours, ref, dtype, "dhx")
    for name in names:
        assert_close(cell.grads[name], g[f"grad_{name}"], dtype, name)
    # The golden file itself against the NumPy reference: a bad file cannot pass.
    if dtype == np.float64:
        lead = g["x"].reshape(-1, config["input_size"])
        hx2 = tuple(a.reshape(lead.shape[0], -1) for a in as_tuple(hx))
        r_state, r_dx, r_dstate, r_grads = ref_cell(
            kind, {n: g[n] for n in names}, lead, hx2 if lstm else hx2[0],
            g["dh"].reshape(hx2[0].shape), g["dc"].reshape(hx2[0].shape) if lstm else None)
        for ref, rec in zip(as_tuple(r_state), expected):
            np.testing.assert_allclose(ref.reshape(rec.shape), rec, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(r_dx.reshape(g["dx"].shape), g["dx"], rtol=1e-12,
                                   atol=1e-14)
        for name in names:
            np.testing.assert_allclose(r_grads[name], g[f"grad_{name}"], rtol=1e-12,
                                       atol=1e-14)


# ---------------------------------------------------------------------------
# the NumPy reference and finite differences


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_the_numpy_reference(kind, bias):
    rng = np.random.default_rng(5)
    cell = make_cell(kind, 4, 6, bias=bias, seed=2)
    x = draw(rng, (3, 4))
    hx = state_of(kind, rng, (3,), 6)
    dh, dc = draw(rng, (3, 6)), draw(rng, (3, 6))
    state, dx, dstate = run_cell(cell, kind, x, hx, dh, dc)
    r_state, r_dx, r_dstate, r_grads = ref_cell(kind, cell.params, x, hx, dh,
                                                dc if kind == "lstm" else None)
    for a, b in zip(as_tuple(state), as_tuple(r_state)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, r_dx, rtol=1e-12, atol=1e-14)
    for a, b in zip(as_tuple(dstate), as_tuple(r_dstate)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for name in cell.params:
        np.testing.assert_allclose(cell.grads[name], r_grads[name], rtol=1e-12, atol=1e-14)
    # hx=None is zeros
    for a, b in zip(as_tuple(cell(x)), as_tuple(ref_cell(kind, cell.params, x)[0])):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(11)
    cell = make_cell(kind, 3, 4, seed=4)
    # keep relu away from its kink
    x, hx = draw(rng, (2, 3)), state_of(kind, rng, (2,), 4)
    dh, dc = draw(rng, (2, 4)), draw(rng, (2, 4))

    def loss():
        state = as_tuple(cell(x, hx))
        total = float(np.sum(state[0] * dh))
        return total + (float(np.sum(state[1] * dc)) if kind == "lstm" else 0.0)

    cell.zero_grad()
    _, dx, dstate = run_cell(cell, kind, x, hx, dh, dc)
    eps = 1e-6
    targets = [("x", x, dx)] + [(f"hx[{i}]", a, d) for i, (a, d)
                                in enumerate(zip(as_tuple(hx), as_tuple(dstate)))]
    targets += [(name, cell.params[name], cell.grads[name]) for name in cell.params]
    for what, array, grad in targets:
        numeric = np.zeros_like(array)
        for i in np.ndindex(array.shape):
            keep = array[i]
            array[i] = keep + eps
            up = loss()
            array[i] = keep - eps
            down = loss()
            array[i] = keep
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=what)


# ---------------------------------------------------------------------------
# the same kernels as the modules' one-step call


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS)
def test_equals_the_module_step_bit_for_bit(kind, dtype):
    rng = np.random.default_rng(2)
    I, H, B = 8, 16, 3
    if kind == "gru":
        module = gru_cy.GRU(I, H, dtype=dtype, seed=1)
    elif kind == "lstm":
        module = gru_cy.LSTM(I, H, dtype=dtype, seed=1)
    else:
        module = gru_cy.RNN(I, H, nonlinearity=kind[4:], dtype=dtype, seed=1)
    cell = make_cell(kind, I, H, dtype=dtype)
    cell.load_state_dict({name[:-3]: p for name, p in module.params.items()})
    x = draw(rng, (B, I), dtype)
    hx = state_of(kind, rng, (B,), H, dtype)
    m_hx = tuple(a[None] for a in hx) if kind == "lstm" else hx[None]
    _, m_state = module.step(x, m_hx)
    for ours, theirs in zip(as_tuple(cell(x, hx)), as_tuple(m_state)):
        assert same_bits(ours, theirs[0])
    # unbatched, and the general path (a list, another dtype) gives the same values
    for ours, theirs in zip(as_tuple(cell(x[0], tuple(a[0] for a in as_tuple(hx))
                                          if kind == "lstm" else hx[0])),
                            as_tuple(cell(x[:1], hx[:1] if kind != "lstm" else
                                          tuple(a[:1] for a in hx)))):
        assert same_bits(ours, theirs[0])
    other = np.float32 if dtype == np.float64 else np.float64
    general = cell(x.astype(other).tolist(), tuple(a.astype(other) for a in hx)
                   if kind == "lstm" else hx.astype(other))
    for a, b in zip(as_tuple(general), as_tuple(cell(x.astype(other).astype(dtype),
                                                     tuple(a.astype(other).astype(dtype)
                                                           for a in hx) if kind == "lstm"
                                                     else hx.astype(other).astype(dtype)))):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("kind", KINDS)
def test_forward_train_state_equals_inference(kind):
    rng = np.random.default_rng(8)
    for B in (1, 5, 40):
        cell = make_cell(kind, 7, 33, dtype=np.float32, seed=B)
        x, hx = draw(rng, (B, 7), np.float32), state_of(kind, rng, (B,), 33, np.float32)
        trained = as_tuple(cell.forward_train(x, hx)[0])
        for a, b in zip(trained, as_tuple(cell(x, hx))):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# the module protocol


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_pickle_state_dict(tmp_path, kind):
    cell = make_cell(kind, 3, 5, bias=False, dtype=np.float32, seed=9)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    expected = as_tuple(cell(x))
    path = tmp_path / "cell.npz"
    cell.save(path)
    loaded = gru_cy.load(path)
    clone = pickle.loads(pickle.dumps(cell))
    for other in (loaded, clone):
        assert type(other) is type(cell) and repr(other) == repr(cell)
        for a, b in zip(as_tuple(other(x)), expected):
            assert same_bits(a, b)
    sd = cell.state_dict()
    sd["weight_ih"][...] = 0                       # a copy
    assert cell.params["weight_ih"].any()
    fresh = make_cell(kind, 3, 5, bias=False, dtype=np.float32, seed=1)
    assert fresh.load_state_dict(cell.state_dict()) == ([], [])
    assert same_bits(fresh.params["weight_hh"], cell.params["weight_hh"])
    with pytest.raises(KeyError, match="Missing key"):
        fresh.load_state_dict({"weight_ih": cell.params["weight_ih"]})
    # a file of another class is refused when cls= says otherwise
    with pytest.raises(ValueError, match="cannot be loaded as"):
        gru_cy.load(path, cls=gru_cy.GRU)


def test_repr_and_config():
    assert repr(gru_cy.GRUCell(3, 4)) == "GRUCell(3, 4)"
    assert repr(gru_cy.LSTMCell(3, 4, bias=False)) == "LSTMCell(3, 4, bias=False)"
    assert repr(gru_cy.RNNCell(3, 4, nonlinearity="relu", dtype=np.float64)) == \
        "RNNCell(3, 4, nonlinearity='relu', dtype=float64)"
    assert gru_cy.RNNCell(2, 3, nonlinearity="relu")._config() == dict(
        input_size=2, hidden_size=3, bias=True, nonlinearity="relu")


# ---------------------------------------------------------------------------
# errors: PyTorch's messages, the error contract


def _raises(error, message, fn, *args):
    with pytest.raises(error) as info:
        fn(*args)
    assert str(info.value) == message


@pytest.mark.parametrize("kind", KINDS)
def test_argument_errors_use_torch_messages(kind):
    cell = make_cell(kind, 3, 4, dtype=np.float32)
    name = type(cell).__name__
    lstm = kind == "lstm"

    def hx(*shape):
        return (np.zeros(shape), np.zeros((2, 4))) if lstm else np.zeros(shape)

    _raises(ValueError, f"{name}: Expected input to be 1D or 2D, got 3D instead",
            cell, np.zeros((2, 2, 3)))
    _raises(ValueError, "input has inconsistent input_size: got 5 expected 3", cell,
            np.zeros((2, 5)))
    _raises(ValueError, "Input batch size 2 doesn't match hidden0 batch size 3", cell,
            np.zeros((2, 3)), hx(3, 4))
    _raises(ValueError, "hidden0 has inconsistent hidden_size: got 5, expected 4", cell,
            np.zeros((2, 3)), hx(2, 5))
    label = "hx[0]" if lstm else "hidden"
    _raises(ValueError, f"{name}: Expected {label} to be 1D or 2D, got 3D instead", cell,
            np.zeros((2, 3)), hx(1, 2, 4))
    hname = "hx[0]" if lstm else "hx"
    _raises(ValueError, f"For batched 2-D input, {hname} should also be 2-D but got 1-D tensor",
            cell, np.zeros((2, 3)), hx(4))
    _raises(TypeError, "input must hold real numbers (float, int or bool), got dtype complex128",
            cell, np.zeros((2, 3), complex))
    if lstm:
        _raises(ValueError, "hidden1 has inconsistent hidden_size: got 5, expected 4", cell,
                np.zeros((2, 3)), (np.zeros((2, 4)), np.zeros((2, 5))))
        _raises(TypeError, "hx must be a tuple (h, c) of arrays for LSTMCell, got ndarray",
                cell, np.zeros((2, 3)), np.zeros((2, 4)))
        _raises(ValueError, "hx must be a tuple (h, c) of two arrays for LSTMCell, got 3 items",
                cell, np.zeros((2, 3)), (np.zeros((2, 4)),) * 3)
    else:
        _raises(ValueError, "For unbatched 1-D input, hx should also be 1-D but got 2-D tensor",
                cell, np.zeros(3), np.zeros((1, 4)))


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(input_size=0, hidden_size=4), ValueError, "input_size must be >= 1, got 0"),
    (dict(input_size=3, hidden_size=2.5), TypeError, "hidden_size should be an integer"),
    (dict(input_size=3, hidden_size=4, bias=1), TypeError, "bias should be a bool, got int"),
    (dict(input_size=3, hidden_size=4, dtype=np.int8), ValueError, "dtype must be numpy.float32"),
    (dict(input_size=3, hidden_size=4, seed="x"), TypeError, "seed must be None, an int"),
    (dict(input_size=3, hidden_size=2**40), ValueError, "too large for 32-bit BLAS"),
    (dict(input_size=2**20, hidden_size=2**20), MemoryError, "would need"),
])
@pytest.mark.parametrize("cls", [gru_cy.GRUCell, gru_cy.LSTMCell, gru_cy.RNNCell])
def test_constructor_errors(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(**kwargs)


def test_rnn_cell_nonlinearity_is_checked():
    _raises(ValueError, "Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'.",
            gru_cy.RNNCell, 3, 4, True, "gelu")


@pytest.mark.parametrize("kind", KINDS)
def test_backward_errors(kind):
    cell = make_cell(kind, 3, 4)
    x = np.zeros((2, 3))
    state, tape = cell.forward_train(x)
    _raises(TypeError, "tape must be the second result of forward_train, got tuple",
            cell.backward, (state, tape))
    _raises(ValueError, "tape was recorded by a different module; pass it to that module's "
            "backward", make_cell(kind, 3, 4).backward, tape)
    if kind == "lstm":
        _raises(ValueError, "dh must have shape (2, 4) (as returned by forward_train), got (3, 4)",
                cell.backward, tape, (np.zeros((3, 4)), None))
        _raises(TypeError, "dhx must be a tuple (dh, dc) (either may be None) or None, got "
                "ndarray", cell.backward, tape, np.zeros((2, 4)))
    else:
        _raises(ValueError, "dh must have shape (2, 4) (as returned by forward_train), got (3, 4)",
                cell.backward, tape, np.zeros((3, 4)))
    cell.grads["weight_hh"] = np.zeros(cell.params["weight_hh"].shape, np.float32)  # unusable
    with pytest.raises(ValueError, match=r"grads\['weight_hh'\] must be a writable"):
        cell.backward(tape)
    cell.zero_grad()
    cell.bias = False                                # reconfigured since the tape
    with pytest.raises(ValueError, match="tape was recorded with a different configuration"):
        cell.backward(tape)


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_and_odd_inputs(kind):
    cell = make_cell(kind, 3, 4, dtype=np.float32)
    lstm = kind == "lstm"
    # empty batch: empty results, and an empty backward
    state, tape = cell.forward_train(np.zeros((0, 3), np.float32))
    for s in as_tuple(state):
        assert s.shape == (0, 4) and s.dtype == np.float32
    dx, _ = cell.backward(tape)
    assert dx.shape == (0, 3)
    # NaN and Inf propagate
    x = np.array([[np.nan, 0, 0], [np.inf, 0, 0]], np.float32)
    for s in as_tuple(cell(x)):
        assert not np.isfinite(s[0]).any() or kind == "rnn_relu"
    # ints, bools, lists, read-only and non-contiguous inputs are converted, never written
    base = np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2] / 10
    base.flags.writeable = False
    expected = as_tuple(cell(np.ascontiguousarray(base)))
    for x in (base, base.tolist(), base.astype(np.float64)):
        for a, b in zip(as_tuple(cell(x)), expected):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    ints = as_tuple(cell(np.ones((2, 3), np.int64)))
    for a, b in zip(ints, as_tuple(cell(np.ones((2, 3), np.float32)))):
        assert same_bits(a, b)
    # strings, objects, ragged lists: TypeError
    for bad in (np.array([["a", "b", "c"]]), [[1, 2], [3]], object()):
        with pytest.raises(TypeError):
            cell(bad)
    # the caller's state is never written
    hx = state_of(kind, np.random.default_rng(0), (2,), 4, np.float32)
    before = [a.copy() for a in as_tuple(hx)]
    cell(np.ones((2, 3), np.float32), hx)
    cell.forward_train(np.ones((2, 3), np.float32), hx)
    for a, b in zip(as_tuple(hx), before):
        assert same_bits(a, b)
    # params replaced by the user: another dtype is converted, another shape is an error
    cell.params["weight_ih"] = cell.params["weight_ih"].astype(np.float64)
    converted = as_tuple(cell(np.ones((2, 3), np.float32), hx))
    assert converted[0].dtype == np.float32
    cell.params["weight_ih"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"params\['weight_ih'\] has shape \(2, 2\)"):
        cell(np.ones((2, 3), np.float32))
    if lstm:
        # a list (h, c) takes the general path with the same result
        cell2 = make_cell(kind, 3, 4, dtype=np.float32)
        for a, b in zip(cell2(np.ones((2, 3), np.float32), list(hx)),
                        cell2(np.ones((2, 3), np.float32), hx)):
            assert same_bits(a, b)


# ---------------------------------------------------------------------------
# tapes are snapshots; concurrent backward adds up


@pytest.mark.parametrize("kind", KINDS)
def test_tape_is_a_snapshot(kind):
    rng = np.random.default_rng(3)
    cell = make_cell(kind, 3, 4, seed=1)
    x, hx = draw(rng, (2, 3)), state_of(kind, rng, (2,), 4)
    dh, dc = draw(rng, (2, 4)), draw(rng, (2, 4))
    _, dx_ref, dstate_ref = run_cell(cell, kind, x, hx, dh, dc)
    grads_ref = {k: g.copy() for k, g in cell.grads.items()}
    cell.zero_grad()
    state, tape = cell.forward_train(x, hx)
    x[...] = 7                                  # the caller reuses its buffer
    for p in cell.params.values():              # an optimiser step in between
        p -= 0.5
    dx, dstate = cell.backward(tape, (dh, dc) if kind == "lstm" else dh)
    assert same_bits(dx, dx_ref)
    for a, b in zip(as_tuple(dstate), as_tuple(dstate_ref)):
        assert same_bits(a, b)
    for k in grads_ref:
        assert same_bits(cell.grads[k], grads_ref[k])


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_backward_loses_nothing(kind):
    rng = np.random.default_rng(4)
    cell = make_cell(kind, 16, 32, seed=2)
    x, hx = draw(rng, (8, 16)), state_of(kind, rng, (8,), 32)
    dh, dc = draw(rng, (8, 32)), draw(rng, (8, 32))
    _, tape = cell.forward_train(x, hx)
    arg = (dh, dc) if kind == "lstm" else dh
    cell.zero_grad()
    cell.backward(tape, arg)
    once = {k: g.copy() for k, g in cell.grads.items()}
    cell.zero_grad()
    most = backward_calls_take_turns(cell, lambda: cell.backward(tape, arg), 4, 5)
    assert most == 1, "two backward calls on one cell ran at once"
    for k, g in once.items():
        np.testing.assert_allclose(cell.grads[k], 20 * g, rtol=1e-12,
                                   atol=1e-12)


def test_cells_train_with_the_optimisers():
    rng = np.random.default_rng(0)
    cell, head = gru_cy.GRUCell(2, 8, seed=0), gru_cy.Linear(8, 1, seed=1)
    opt = gru_cy.optim.Adam([cell, head], lr=0.05)
    xs = rng.standard_normal((10, 16, 2)).astype(np.float32)
    target = xs[:, :, :1].sum(axis=0)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        h, tapes = None, []
        for x_t in xs:
            h, tape = cell.forward_train(x_t, h)
            tapes.append(tape)
        y, head_tape = head.forward_train(h)
        loss, dy = gru_cy.losses.mse_loss(y, target)
        losses.append(float(loss))
        dh = head.backward(head_tape, dy)
        for tape in reversed(tapes):
            _, dh = cell.backward(tape, dh)
        opt.step()
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_cell_file_is_refused(tmp_path, kind):
    # gru_cy.load checks the config and every array's header against the shapes
    # the config gives, before reading or allocating anything.
    import io
    import zipfile

    cell = make_cell(kind, 3, 4, dtype=np.float32)
    path = tmp_path / "cell.npz"
    cell.save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["config"]))

    def write(**changes):
        bad = dict(arrays, **changes)
        target = tmp_path / f"bad{len(list(tmp_path.iterdir()))}.npz"
        np.savez(target, **bad)
        return target

    huge = dict(config, hidden_size=2**30)
    for target, message in [
            (write(weight_hh=np.zeros((3, 3), np.float32)), "weight_hh"),
            (write(config=np.array(json.dumps(huge))), "weight_ih"),
            (write(config=np.array(json.dumps(dict(config, bias="yes")))), "bias"),
            (write(config=np.array(json.dumps(dict(config, hidden_size=-1)))), "hidden_size")]:
        with pytest.raises(ValueError, match=message):
            gru_cy.load(target)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.npy", b"\x93NUMPY garbage")
    buf.seek(0)
    with pytest.raises(ValueError):
        gru_cy.load(buf)
