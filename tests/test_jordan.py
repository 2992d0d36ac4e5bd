"""gru_cy.Jordan against an independent NumPy reference (tests/reference_jordan.py),
central finite differences in float64, the same equations as a PyTorch loop
with autograd (when torch is installed), and its module protocol and errors."""

import inspect
import json
import pickle

import numpy as np
import pytest

import gru_cy
from gru_cy.nn import base

import reference_jordan as ref
from helpers import assert_same_modules, backward_calls_take_turns, same_bits, threads

ACTS = ("tanh", "relu", "sigmoid")
OUT_ACTS = ("identity", "tanh", "sigmoid")
PAIRS = [(a, o) for a in ACTS for o in OUT_ACTS]
DTYPES = (np.float32, np.float64)

# Lengths for B = 5, T = 6, each taking a different kernel path: full;
# uneven and unsorted with zeros (sorted by the module, the per-step products
# then cover only the running rows); almost full and unsorted (every row is
# computed and finished ones are masked); non-increasing (used as given).
LENGTHS = {
    "full": None,
    "unsorted_zeros": [6, 0, 3, 6, 1],
    "masked": [6, 5, 6, 6, 6],
    "sorted": [6, 4, 4, 2, 0],
}


def _tol(dtype):
    return dict(rtol=1e-11, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)


def _data(T, B, I, O, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, B, I)), 0.5 * rng.standard_normal((B, O)),
            rng.standard_normal((T, B, O)), rng.standard_normal((B, O)))


def _compare(jordan, x, y0, lengths, dout, dy_n, act, out_act):
    """Forward and backward of jordan (time-major, batched) against the reference."""
    tol = _tol(jordan.dtype)
    out, y_n = jordan(x, y0[None], lengths)
    assert out.dtype == y_n.dtype == jordan.dtype
    r_out, r_yn, _ = ref.forward(jordan.params, x.astype(jordan.dtype), y0.astype(jordan.dtype),
                                 lengths, act, out_act)
    np.testing.assert_allclose(out, r_out, **tol)
    np.testing.assert_allclose(y_n[0], r_yn, **tol)
    out_t, yn_t, tape = jordan.forward_train(x, y0[None], lengths)
    np.testing.assert_allclose(out_t, r_out, **tol)
    np.testing.assert_allclose(yn_t[0], r_yn, **tol)
    jordan.zero_grad()
    dx, dy0 = jordan.backward(tape, dout, dy_n[None])
    r_dx, r_dy0, r_grads = ref.backward(jordan.params, x.astype(jordan.dtype),
                                        y0.astype(jordan.dtype), lengths,
                                        dout.astype(jordan.dtype), dy_n.astype(jordan.dtype),
                                        act, out_act)
    np.testing.assert_allclose(dx, r_dx, **tol)
    np.testing.assert_allclose(dy0[0], r_dy0, **tol)
    assert set(jordan.grads) == set(r_grads) == set(jordan.params)
    for name, g in r_grads.items():
        np.testing.assert_allclose(jordan.grads[name], g, err_msg=name, **tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("act,out_act", PAIRS)
def test_matches_reference(act, out_act, dtype):
    T, B, I, H, O = 6, 5, 4, 7, 3
    x, y0, dout, dy_n = _data(T, B, I, O)
    for bias in (True, False):
        jordan = gru_cy.Jordan(I, H, O, act, out_act, bias=bias, dtype=dtype, seed=1)
        for name, lengths in LENGTHS.items():
            if lengths is not None:
                # The reference leaves padded steps out: zero their dout so
                # that both see the same loss.
                dout = dout.copy()
                dout[np.arange(T)[:, None] >= np.asarray(lengths)[None, :]] = 0
            _compare(jordan, x, y0, lengths, dout, dy_n, act, out_act)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_batch_first_and_unbatched_match_time_major(dtype):
    T, B, I, H, O = 5, 3, 4, 6, 2
    x, y0, dout, dy_n = _data(T, B, I, O, seed=2)
    lengths = [5, 2, 4]
    tm = gru_cy.Jordan(I, H, O, "relu", "tanh", dtype=dtype, seed=4)
    bf = gru_cy.Jordan(I, H, O, "relu", "tanh", batch_first=True, dtype=dtype, seed=4)
    out, y_n = tm(x, y0[None], lengths)
    out_bf, y_n_bf = bf(x.transpose(1, 0, 2), y0[None], lengths)
    assert out_bf.shape == (B, T, O) and y_n_bf.shape == (1, B, O)
    assert same_bits(out_bf, np.ascontiguousarray(out.transpose(1, 0, 2)))
    assert same_bits(y_n_bf, y_n)
    _, _, tape = tm.forward_train(x, y0[None], lengths)
    dx, dy0 = tm.backward(tape, dout, dy_n[None])
    _, _, tape = bf.forward_train(x.transpose(1, 0, 2), y0[None], lengths)
    dx_bf, dy0_bf = bf.backward(tape, dout.transpose(1, 0, 2), dy_n[None])
    assert same_bits(dx_bf, np.ascontiguousarray(dx.transpose(1, 0, 2)))
    assert same_bits(dy0_bf, dy0)
    for name in tm.grads:
        assert same_bits(bf.grads[name], tm.grads[name])

    # unbatched (T, I): y0 and y_n are (1, O), dx is (T, I)
    for b in range(B):
        one = gru_cy.Jordan(I, H, O, "relu", "tanh", dtype=dtype, seed=4)
        out_u, y_n_u = one(x[:, b], y0[b][None], lengths[b])
        assert out_u.shape == (T, O) and y_n_u.shape == (1, O)
        r_out, r_yn, _ = ref.forward(one.params, x[:, b:b + 1].astype(dtype),
                                     y0[b:b + 1].astype(dtype), [lengths[b]], "relu", "tanh")
        np.testing.assert_allclose(out_u, r_out[:, 0], **_tol(dtype))
        np.testing.assert_allclose(y_n_u, r_yn, **_tol(dtype))
        _, _, tape = one.forward_train(x[:, b], y0[b][None], lengths[b])
        dx_u, dy0_u = one.backward(tape, dout[:, b], dy_n[b][None])
        assert dx_u.shape == (T, I) and dy0_u.shape == (1, O)
        r_dx, r_dy0, _ = ref.backward(one.params, x[:, b:b + 1].astype(dtype),
                                      y0[b:b + 1].astype(dtype), [lengths[b]],
                                      dout[:, b:b + 1].astype(dtype),
                                      dy_n[b:b + 1].astype(dtype), "relu", "tanh")
        np.testing.assert_allclose(dx_u, r_dx[:, 0], **_tol(dtype))
        np.testing.assert_allclose(dy0_u, r_dy0, **_tol(dtype))


def test_long_sequences_use_several_projection_chunks():
    # At inference the input projection runs a chunk of steps at a time
    # (2**18 elements: 16 steps at B = 64, H = 256); training projects all
    # steps at once. Both must agree with the reference.
    T, B, I, H, O = 40, 64, 3, 256, 2
    x, y0, _, _ = _data(T, B, I, O, seed=5)
    jordan = gru_cy.Jordan(I, H, O, "tanh", "sigmoid", dtype=np.float64, seed=0)
    lengths = np.full(B, T)
    lengths[::7] = np.arange(len(lengths[::7])) % T
    for ls in (None, lengths):
        out, y_n = jordan(x, y0[None], ls)
        r_out, r_yn, _ = ref.forward(jordan.params, x, y0, ls, "tanh", "sigmoid")
        np.testing.assert_allclose(out, r_out, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(y_n[0], r_yn, rtol=1e-11, atol=1e-12)
        out_t, yn_t, _ = jordan.forward_train(x, y0[None], ls)
        np.testing.assert_allclose(out_t, out, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(yn_t, y_n, rtol=1e-13, atol=1e-14)


# ---------------------------------------------------------------------------
# central finite differences in float64


def _loss(jordan, x, y0, lengths, dout, dy_n):
    out, y_n = jordan(x, y0, lengths)
    return float(np.sum(out * dout) + np.sum(y_n * dy_n))


@pytest.mark.parametrize("act,out_act", PAIRS)
def test_finite_differences(act, out_act):
    T, B, I, H, O = 4, 3, 3, 4, 2
    rng = np.random.default_rng(7)
    jordan = gru_cy.Jordan(I, H, O, act, out_act, dtype=np.float64, seed=3)
    for p in jordan.params.values():   # larger weights: the feedback matters
        p *= 2.0
    x = rng.standard_normal((T, B, I))
    y0 = rng.standard_normal((1, B, O))
    lengths = [4, 2, 0]
    dout = rng.standard_normal((T, B, O))
    dy_n = rng.standard_normal((1, B, O))
    _, _, tape = jordan.forward_train(x, y0, lengths)
    jordan.zero_grad()
    dx, dy0 = jordan.backward(tape, dout, dy_n)
    eps = 1e-6

    def numeric(arr):
        g = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            up = _loss(jordan, x, y0, lengths, dout, dy_n)
            arr[i] = old - eps
            down = _loss(jordan, x, y0, lengths, dout, dy_n)
            arr[i] = old
            g[i] = (up - down) / (2 * eps)
        return g

    checks = [("x", dx, x), ("y0", dy0, y0)] + [
        (name, jordan.grads[name], p) for name, p in jordan.params.items()]
    assert len(checks) == 7
    for name, analytic, arr in checks:
        np.testing.assert_allclose(analytic, numeric(arr), rtol=1e-6, atol=1e-8, err_msg=name)
    # padded steps of x take no part: their gradient is exactly zero
    assert np.all(dx[2:, 1] == 0) and np.all(dx[:, 2] == 0)
    np.testing.assert_array_equal(dy0[0, 2], dy_n[0, 2])


# ---------------------------------------------------------------------------
# step, module protocol


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("B", [1, 4])
def test_step_equals_the_sequence(dtype, B):
    T, I, H, O = 7, 3, 5, 4
    x, y0, _, _ = _data(T, B, I, O, seed=8)
    jordan = gru_cy.Jordan(I, H, O, "sigmoid", "tanh", dtype=dtype, seed=2)
    out, y_n = jordan(x, y0[None])
    y = y0[None]
    for t in range(T):
        y_t, y = jordan.step(x[t], y)
        assert y_t.shape == (B, O) and y.shape == (1, B, O)
        np.testing.assert_array_equal(y_t, out[t])
    np.testing.assert_array_equal(y, y_n)
    # unbatched, default state
    out_u, y_n_u = jordan(x[:, 0])
    y = None
    for t in range(T):
        y_t, y = jordan.step(x[t, 0], y)
        assert y_t.shape == (O,) and y.shape == (1, O)
        np.testing.assert_array_equal(y_t, out_u[t])
    np.testing.assert_array_equal(y, y_n_u)


def test_empty_batches_and_sequences():
    jordan = gru_cy.Jordan(3, 4, 2, seed=0)
    for T, B in ((0, 2), (3, 0), (0, 0)):
        x = np.zeros((T, B, 3), np.float32)
        out, y_n = jordan(x)
        assert out.shape == (T, B, 2) and y_n.shape == (1, B, 2)
        out, y_n, tape = jordan.forward_train(x)
        dx, dy0 = jordan.backward(tape)
        assert dx.shape == (T, B, 3) and dy0.shape == (1, B, 2)
    # every length zero: out is zero and y_n is y0
    y0 = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    out, y_n = jordan(np.ones((3, 2, 3)), y0, [0, 0])
    assert not out.any() and same_bits(y_n, y0)


def test_tape_owns_its_data():
    jordan = gru_cy.Jordan(3, 4, 2, "relu", "sigmoid", dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    dout = np.ones((5, 2, 2))
    _, _, tape = jordan.forward_train(x, None, [5, 3])
    jordan.zero_grad()
    expected = jordan.backward(tape, dout)
    expected_grads = {k: g.copy() for k, g in jordan.grads.items()}
    # the caller reuses its buffer and an optimiser updates the weights
    x[...] = 7.0
    for p in jordan.params.values():
        p += 1.0
    jordan.zero_grad()
    got = jordan.backward(tape, dout)
    for a, b in zip(got, expected):
        assert same_bits(a, b)
    for name in expected_grads:
        assert same_bits(jordan.grads[name], expected_grads[name])
    # backward adds into grads
    jordan.backward(tape, dout)
    for name in expected_grads:
        np.testing.assert_allclose(jordan.grads[name], 2 * expected_grads[name], rtol=1e-15)


def test_nan_in_padding_does_not_reach_the_gradients():
    jordan = gru_cy.Jordan(3, 4, 2, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    x[3:, 1] = np.nan
    y0 = np.zeros((1, 2, 2))
    out, y_n, tape = jordan.forward_train(x, y0, [5, 3])
    assert np.isfinite(out).all() and np.isfinite(y_n).all()
    jordan.zero_grad()
    dx, dy0 = jordan.backward(tape, np.ones_like(out), np.ones_like(y_n))
    assert np.isfinite(dx).all() and np.isfinite(dy0).all()
    assert all(np.isfinite(g).all() for g in jordan.grads.values())
    # a NaN in a valid step propagates, as IEEE says
    x[0, 0, 0] = np.nan
    out, y_n = jordan(x, y0, [5, 3])
    assert np.isnan(out[:, 0]).all() and np.isfinite(out[:, 1]).all()


def test_parameters_init_and_state_dict():
    jordan = gru_cy.Jordan(3, 16, 2, seed=0)
    assert list(jordan.params) == ["weight_ih", "bias_ih", "weight_yh", "weight_hy", "bias_hy"]
    shapes = {k: v.shape for k, v in jordan.params.items()}
    assert shapes == {"weight_ih": (16, 3), "bias_ih": (16,), "weight_yh": (16, 2),
                      "weight_hy": (2, 16), "bias_hy": (2,)}
    for p in jordan.params.values():
        assert p.dtype == np.float32 and np.abs(p).max() <= 0.25
    assert list(gru_cy.Jordan(3, 16, 2, bias=False).params) == [
        "weight_ih", "weight_yh", "weight_hy"]
    same = gru_cy.Jordan(3, 16, 2, seed=0)
    assert_same_modules(jordan, same)
    other = gru_cy.Jordan(3, 16, 2, seed=1)
    assert not np.array_equal(other.params["weight_ih"], jordan.params["weight_ih"])
    other.load_state_dict(jordan.state_dict())
    assert_same_modules(jordan, other)
    assert repr(gru_cy.Jordan(3, 4, 2)) == "Jordan(3, 4, 2)"
    assert repr(gru_cy.Jordan(3, 4, 2, "relu", "sigmoid", bias=False, batch_first=True,
                              dtype=np.float64)) == (
        "Jordan(3, 4, 2, nonlinearity='relu', output_activation='sigmoid', bias=False, "
        "batch_first=True, dtype=float64)")


def test_pickle_round_trip_is_identical():
    jordan = gru_cy.Jordan(3, 5, 2, "sigmoid", "tanh", batch_first=True, dtype=np.float64,
                           seed=4)
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    _, _, tape = jordan.forward_train(x)
    jordan.backward(tape, np.ones((2, 6, 2)))
    clone = pickle.loads(pickle.dumps(jordan))
    assert_same_modules(jordan, clone)
    for name in jordan.grads:
        assert same_bits(clone.grads[name], jordan.grads[name])
    for a, b in zip(jordan(x), clone(x)):
        assert same_bits(a, b)
    # the random generator's state travels too
    assert same_bits(jordan._rng.random(3), clone._rng.random(3))


def _rebuild_from_npz(path):
    """Read a saved file with NumPy alone and rebuild the module through the
    registry of module classes (what gru_cy.load does for registered kinds)."""
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(str(data["config"]))
        arrays = {k: data[k] for k in data.files if k != "config"}
    cls = base.MODULES[config["class"]]
    args = {k: config[k] for k in inspect.signature(cls).parameters
            if k in config and k not in ("dtype", "seed")}
    module = cls(**args, dtype=config["dtype"])
    module.load_state_dict(arrays)
    return module


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_save_load_round_trip_is_identical(tmp_path, dtype):
    jordan = gru_cy.Jordan(3, 5, 2, "relu", "sigmoid", bias=False, dtype=dtype, seed=4)
    path = tmp_path / "jordan.npz"
    jordan.save(path)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    rebuilt = _rebuild_from_npz(path)
    assert_same_modules(jordan, rebuilt)
    for a, b in zip(jordan(x), rebuilt(x)):
        assert same_bits(a, b)
    try:
        loaded = gru_cy.load(path)
    except ValueError as exc:
        if "loads GRU" in str(exc):
            pytest.skip("gru_cy.load does not read Jordan files yet (GRU only)")
        raise
    assert_same_modules(jordan, loaded)
    for a, b in zip(jordan(x), loaded(x)):
        assert same_bits(a, b)


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(nonlinearity="gelu"), ValueError,
     "Unknown nonlinearity 'gelu'. Select from 'tanh', 'relu' or 'sigmoid'."),
    (dict(output_activation="softmax"), ValueError,
     "Unknown output_activation 'softmax'. Select from 'identity', 'tanh' or 'sigmoid'."),
    (dict(nonlinearity=None), TypeError, "nonlinearity should be a str, got NoneType: None"),
    (dict(input_size=0), ValueError, "input_size must be >= 1, got 0"),
    (dict(output_size=2.5), TypeError, "output_size should be an integer, got float: 2.5"),
    (dict(hidden_size=True), TypeError, "hidden_size should be an integer, got bool: True"),
    (dict(bias="yes"), TypeError, "bias should be a bool, got str"),
    (dict(batch_first=1), TypeError, "batch_first should be a bool, got int"),
    (dict(dtype=np.int32), ValueError, "dtype must be numpy.float32 or numpy.float64, got int32"),
    (dict(seed="x"), TypeError, "seed must be None, an int or a numpy.random.Generator"),
])
def test_constructor_errors(kwargs, error, message):
    args = dict(input_size=3, hidden_size=4, output_size=2)
    args.update(kwargs)
    with pytest.raises(error) as info:
        gru_cy.Jordan(**args)
    assert message in str(info.value)


def _raises(error, message, fn, *args):
    with pytest.raises(error) as info:
        fn(*args)
    assert message == str(info.value), str(info.value)


def test_call_errors():
    jordan = gru_cy.Jordan(3, 4, 2)
    x = np.zeros((5, 2, 3), np.float32)
    _raises(ValueError, "Jordan: Expected input to be 2D or 3D, got 1D input instead",
            jordan, np.zeros(3))
    _raises(ValueError, "input.size(-1) must be equal to input_size. Expected 3, got 4",
            jordan, np.zeros((5, 2, 4)))
    _raises(TypeError, "input must hold real numbers (float, int or bool), got dtype complex128",
            jordan, x.astype(complex))
    _raises(ValueError, "Expected y0 size (1, 2, 2), got [1, 3, 2]", jordan, x,
            np.zeros((1, 3, 2)))
    _raises(ValueError, "For batched 3-D input, y0 should also be 3-D but got 2-D tensor",
            jordan, x, np.zeros((2, 2)))
    _raises(ValueError, "For unbatched 2-D input, y0 should also be 2-D but got 3-D tensor",
            jordan, x[:, 0], np.zeros((1, 1, 2)))
    _raises(ValueError, "Expected y0 size (1, 2), got [2, 2]", jordan, x[:, 0], np.zeros((2, 2)))
    _raises(ValueError, "lengths must be a 1-D array with one entry per batch element: expected "
            "shape (2,), got (3,)", jordan, x, None, [1, 2, 3])
    _raises(ValueError, "lengths must lie in [0, T] with T=5, got values from 1 to 6",
            jordan, x, None, [1, 6])
    _raises(TypeError, "lengths must be integers, got dtype float64", jordan, x, None, [1.0, 2.0])
    _raises(ValueError, "step: Expected x_t to be 1D or 2D, got 3D input instead",
            jordan.step, x)
    _raises(ValueError, "x_t.size(-1) must be equal to input_size. Expected 3, got 2",
            jordan.step, np.zeros((2, 2)))
    _raises(ValueError, "Expected y size (1, 2, 2), got [2, 2]", jordan.step, x[0],
            np.zeros((2, 2)))
    jordan.params["weight_yh"] = np.zeros((2, 4), np.float32)
    _raises(ValueError, "params['weight_yh'] has shape (2, 4), expected (4, 2)", jordan, x)
    jordan = gru_cy.Jordan(3, 4, 2)
    jordan.nonlinearity = "elu"
    _raises(ValueError, "Unknown nonlinearity 'elu'. Select from 'tanh', 'relu' or 'sigmoid'.",
            jordan, x)


def test_backward_errors():
    jordan = gru_cy.Jordan(3, 4, 2)
    x = np.zeros((5, 2, 3), np.float32)
    out, y_n, tape = jordan.forward_train(x)
    _raises(TypeError, "tape must be the third result of forward_train, got tuple",
            jordan.backward, (out, y_n))
    _raises(ValueError, "tape was recorded by a different module; pass it to that module's "
            "backward", gru_cy.Jordan(3, 4, 2).backward, tape)
    _raises(ValueError, "dout must have shape (5, 2, 2) (as returned by forward_train), got "
            "(5, 2, 3)", jordan.backward, tape, np.zeros((5, 2, 3)))
    _raises(ValueError, "dy_n must have shape (1, 2, 2) (as returned by forward_train), got "
            "(2, 2)", jordan.backward, tape, None, np.zeros((2, 2)))
    jordan.grads["weight_hy"] = np.zeros((4, 2), np.float32)
    _raises(ValueError, "grads['weight_hy'] must be a writable C-contiguous float32 array of "
            "shape (2, 4); call zero_grad() to recreate it", jordan.backward, tape)
    jordan.zero_grad()
    jordan.output_activation = "tanh"
    _raises(ValueError, "tape was recorded with a different configuration or dtype than the "
            "module has now; run forward_train again", jordan.backward, tape)


# ---------------------------------------------------------------------------
# the same equations as a PyTorch loop with autograd


def _torch_jordan(torch, params, x, y0, lengths, act, out_act):
    F = torch.nn.functional
    acts = {"tanh": torch.tanh, "relu": F.relu, "sigmoid": torch.sigmoid,
            "identity": lambda v: v}
    T, B = x.shape[0], x.shape[1]
    y = y0
    outs = []
    for t in range(T):
        h = acts[act](F.linear(x[t], params["weight_ih"], params.get("bias_ih"))
                      + F.linear(y, params["weight_yh"]))
        y_new = acts[out_act](F.linear(h, params["weight_hy"], params.get("bias_hy")))
        running = (torch.as_tensor(lengths) > t)[:, None]
        outs.append(torch.where(running, y_new, torch.zeros_like(y_new)))
        y = torch.where(running, y_new, y)
    return torch.stack(outs), y


@pytest.mark.parametrize("act,out_act", PAIRS)
def test_matches_a_pytorch_loop(act, out_act):
    torch = pytest.importorskip("torch")
    T, B, I, H, O = 6, 5, 4, 7, 3
    x, y0, dout, dy_n = _data(T, B, I, O, seed=11)
    lengths = [6, 0, 3, 6, 1]
    jordan = gru_cy.Jordan(I, H, O, act, out_act, dtype=np.float64, seed=6)
    out, y_n, tape = jordan.forward_train(x, y0[None], lengths)
    jordan.zero_grad()
    dx, dy0 = jordan.backward(tape, dout, dy_n[None])
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in jordan.params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ty0 = torch.tensor(y0, requires_grad=True)
    t_out, t_yn = _torch_jordan(torch, tp, tx, ty0, lengths, act, out_act)
    ((t_out * torch.tensor(dout)).sum() + (t_yn * torch.tensor(dy_n)).sum()).backward()
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out, t_out.detach().numpy(), **tol)
    np.testing.assert_allclose(y_n[0], t_yn.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(dy0[0], ty0.grad.numpy(), **tol)
    for name, p in tp.items():
        np.testing.assert_allclose(jordan.grads[name], p.grad.numpy(), err_msg=name, **tol)


def test_concurrent_calls_from_threads_agree_with_serial_ones():
    # The kernels release the GIL and share no workspace between calls.
    from concurrent.futures import ThreadPoolExecutor

    jordan = gru_cy.Jordan(6, 32, 5, "relu", "tanh", seed=0)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((40, 4, 6)).astype(np.float32) for _ in range(8)]
    lengths = [None, [40, 3, 17, 0]] * 4
    serial = [jordan(x, None, n) for x, n in zip(xs, lengths)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda a: jordan(*a), zip(xs, [None] * 8, lengths)))
    for (a, b), (c, d) in zip(serial, threaded):
        assert same_bits(a, c) and same_bits(b, d)


@pytest.mark.parametrize("split", [(2, 2, 1), (2, 1, 2), (4, 2, 2)])
@pytest.mark.parametrize("B,lengths,batch_first", [
    (6, None, False), (5, [7, 3, 0, 7, 1], False), (7, [1, 2, 3, 4, 5, 6, 7], True),
    (2, [7, 4], False)])
def test_threads_give_the_one_thread_bits(B, lengths, batch_first, split):
    # Whichever way the threads split the rows and the units (forced here
    # whatever the size), every result is the one-thread run's bit for bit.
    T, I, H, O = 7, 3, 40, 36
    rng = np.random.default_rng(B)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    y0 = rng.standard_normal((1, B, O))
    dout = rng.standard_normal((B, T, O) if batch_first else (T, B, O))
    dy_n = rng.standard_normal((1, B, O))
    jordan = gru_cy.Jordan(I, H, O, "sigmoid", "tanh", batch_first=batch_first,
                           dtype=np.float64, seed=1)

    def run():
        out, y_n = jordan(x, y0, lengths)
        t_out, t_yn, tape = jordan.forward_train(x, y0, lengths)
        jordan.zero_grad()
        dx, dy0 = jordan.backward(tape, dout, dy_n)
        dx2, dy02 = jordan.backward(tape, dout, dy_n)   # grads add up
        return ([out, y_n, t_out, t_yn, dx, dy0, dx2, dy02]
                + [jordan.grads[k].copy() for k in sorted(jordan.grads)])

    with threads(1):
        whole = run()
    with threads(*split):
        got = run()
    for a, b in zip(whole, got):
        assert same_bits(a, b)
    # and against the reference
    tm = (lambda a: a.transpose(1, 0, 2)) if batch_first else (lambda a: a)
    r_out, r_yn, _ = ref.forward(jordan.params, tm(x), y0[0], lengths, "sigmoid", "tanh")
    np.testing.assert_allclose(tm(whole[0]), r_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(whole[1][0], r_yn, rtol=1e-12, atol=1e-13)


def test_random_shapes_and_lengths_match_the_reference():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(T=st.integers(0, 6), B=st.integers(0, 5), I=st.integers(1, 4),
                      H=st.integers(1, 4), O=st.integers(1, 4), pair=st.sampled_from(PAIRS),
                      bias=st.booleans(), seed=st.integers(0, 2**16), data=st.data())
    def check(T, B, I, H, O, pair, bias, seed, data):
        lengths = data.draw(st.none() | st.lists(st.integers(0, T), min_size=B, max_size=B))
        x, y0, dout, dy_n = _data(T, B, I, O, seed)
        if lengths is not None:
            dout[np.arange(T)[:, None] >= np.asarray(lengths, dtype=int)[None, :]] = 0
        jordan = gru_cy.Jordan(I, H, O, *pair, bias=bias, dtype=np.float64, seed=seed)
        _compare(jordan, x, y0, lengths, dout, dy_n, *pair)

    check()


def test_concurrent_backward_on_one_module_loses_nothing():
    # Backward adds into jordan.grads under the module's lock (the shared
    # driver's), so calls from several threads take turns and all count.
    T, B, I, H, O = 12, 9, 4, 16, 3
    x, y0, dout, dy_n = _data(T, B, I, O, 5)
    y0, dy_n = y0[None], dy_n[None]
    jordan = gru_cy.Jordan(I, H, O, "tanh", "sigmoid", dtype=np.float64, seed=2)
    _, _, tape = jordan.forward_train(x, y0, [12, 3, 0, 7, 12, 1, 5, 9, 11])
    jordan.zero_grad()
    dx_once, dy0_once = jordan.backward(tape, dout, dy_n)
    once = {k: g.copy() for k, g in jordan.grads.items()}
    jordan.zero_grad()
    results = []
    most = backward_calls_take_turns(
        jordan, lambda: results.append(jordan.backward(tape, dout, dy_n)), 4, 5)
    assert most == 1, "two backward calls on one module ran at once"
    for k, g in once.items():
        np.testing.assert_allclose(jordan.grads[k], 20 * g, rtol=1e-12, atol=1e-12, err_msg=k)
    assert len(results) == 20
    for dx, dy0 in results:
        assert same_bits(dx, dx_once) and same_bits(dy0, dy0_once)
