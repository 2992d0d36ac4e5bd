"""Property tests (hypothesis).

- Random valid configurations and calls agree with the NumPy reference
  (tests/reference.py): outputs, final states, input and state gradients and
  every parameter gradient; step() agrees with the whole-sequence call.
- Random invalid arguments (shapes, dtypes, lengths, h0, state dicts, tapes,
  gradients, constructor arguments) raise TypeError or ValueError, never
  anything else and never a crash, and leave the module as it was.
- What the caller does with its own arrays after forward_train (reusing the
  input or lengths buffer for the next batch) changes nothing in backward.

Example counts are modest so that the file runs in seconds; under CI=true the
examples are derandomised (tests/conftest.py).
"""

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gru_cy  # noqa: E402
from reference import ref_gru_backward, ref_gru_forward  # noqa: E402

# GRU_CY_EXAMPLES_SCALE=20 runs twenty times as many examples, for a longer hunt.
_SCALE = float(os.environ.get("GRU_CY_EXAMPLES_SCALE", "1"))


def _n(examples):
    return max(1, int(examples * _SCALE))


TOL = {np.dtype(np.float64): dict(rtol=1e-9, atol=1e-11),
       np.dtype(np.float32): dict(rtol=5e-5, atol=5e-5)}
ERRORS = (TypeError, ValueError)


# -- valid configurations --------------------------------------------------------------------

@st.composite
def configs(draw):
    bidirectional = draw(st.booleans())
    return dict(
        input_size=draw(st.integers(1, 5)),
        hidden_size=draw(st.integers(1, 6)),
        num_layers=draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=bidirectional,
        go_backwards=False if bidirectional else draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.0, 0.4])),
        reset_after=draw(st.booleans()),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def valid_cases(draw):
    cfg = draw(configs())
    T = draw(st.integers(0, 6))
    unbatched = draw(st.booleans())
    B = 1 if unbatched else draw(st.integers(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 4.0]))
    LD = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1)
    H, I = cfg["hidden_size"], cfg["input_size"]
    x_tm = (scale * rng.standard_normal((T, B, I)))                    # time-major
    h0 = rng.standard_normal((LD, B, H)) if draw(st.booleans()) else None
    lengths = None
    if draw(st.booleans()):
        lengths = [draw(st.integers(0, T)) for _ in range(B)]
        if B == 0:
            # np.asarray([]) is float64, which the module refuses as lengths
            lengths = np.zeros(0, np.int64)
    dout_tm = rng.standard_normal((T, B, LD // cfg["num_layers"] * H))
    dh_n = rng.standard_normal((LD, B, H)) if draw(st.booleans()) else None
    return cfg, unbatched, x_tm, h0, lengths, dout_tm, dh_n


def _user_layout(a_tm, unbatched, batch_first):
    """A time-major (T, B, F) array as the module's caller passes it."""
    if unbatched:
        return a_tm[:, 0]
    if batch_first:
        return a_tm.transpose(1, 0, 2)
    return a_tm


def _to_time_major(a, unbatched, batch_first):
    a = np.asarray(a)
    if unbatched:
        return a[:, None]
    if batch_first:
        return a.transpose(1, 0, 2)
    return a


@settings(max_examples=_n(120))
@given(valid_cases())
def test_random_valid_calls_agree_with_reference(case):
    cfg, unbatched, x_tm, h0, lengths, dout_tm, dh_n = case
    gru = gru_cy.GRU(**cfg)
    dt = gru.dtype
    bf = cfg["batch_first"]
    x = _user_layout(x_tm, unbatched, bf).astype(dt)
    h0_user = None if h0 is None else (h0[:, 0] if unbatched else h0).astype(dt)
    len_user = lengths if not (unbatched and lengths is not None) else lengths[0]

    params = {k: v.astype(np.float64) for k, v in gru.params.items()}
    x64 = _to_time_major(x, unbatched, bf).astype(np.float64)
    e_out, e_h, cache = ref_gru_forward(
        x64, params, num_layers=gru.num_layers, bidirectional=gru.bidirectional,
        reset_after=gru.reset_after, bias=gru.bias,
        h0=None if h0 is None else h0.astype(dt).astype(np.float64), lengths=lengths,
        go_backwards=gru.go_backwards)
    dout_user = _user_layout(dout_tm, unbatched, bf).astype(dt)
    dh_user = None if dh_n is None else (dh_n[:, 0] if unbatched else dh_n).astype(dt)
    e_dx, e_dh0, e_grads = ref_gru_backward(
        cache, _to_time_major(dout_user, unbatched, bf).astype(np.float64),
        None if dh_n is None else dh_n.astype(dt).astype(np.float64))

    tol = TOL[dt]
    out, h_n = gru(x, h0_user, len_user)
    assert out.dtype == dt and h_n.dtype == dt
    np.testing.assert_allclose(_to_time_major(out, unbatched, bf), e_out, err_msg="out", **tol)
    h_tm = h_n[:, None] if unbatched else h_n
    np.testing.assert_allclose(h_tm, e_h, err_msg="h_n", **tol)

    if gru.dropout > 0 and gru.num_layers > 1:
        # Dropout masks are random: training is checked against finite differences.
        _check_dropout_training(cfg, gru.state_dict(), x, h0_user, len_user, dout_user,
                                dh_user)
        return
    out2, h_n2, tape = gru.forward_train(x, h0_user, len_user)
    assert out2.tobytes() == out.tobytes(), "forward_train's out differs from the inference call"
    assert h_n2.tobytes() == h_n.tobytes(), "forward_train's h_n differs from the inference call"
    dx, dh0 = gru.backward(tape, dout_user, dh_user)
    np.testing.assert_allclose(_to_time_major(dx, unbatched, bf), e_dx, err_msg="dx", **tol)
    np.testing.assert_allclose(dh0[:, None] if unbatched else dh0, e_dh0, err_msg="dh0", **tol)
    assert set(gru.grads) == set(e_grads)
    for name, g in e_grads.items():
        np.testing.assert_allclose(gru.grads[name], g, err_msg=f"grads[{name!r}]", **tol)

    if not gru.bidirectional and lengths is None and x_tm.shape[0] > 0:
        # Streaming one step at a time gives the whole-sequence result (a
        # reverse-only module reads the sequence from its end).
        h = None if h0_user is None else h0_user
        x_tm_user = _to_time_major(x, unbatched, bf)
        times = range(x_tm_user.shape[0])
        for t in (reversed(times) if gru.go_backwards else times):
            x_t = x_tm_user[t, 0] if unbatched else x_tm_user[t]
            y, h = gru.step(x_t, h)
        np.testing.assert_allclose(h, h_n, err_msg="step h", **tol)


def _check_dropout_training(cfg, state, x, h0, lengths, dout, dh_n):
    """forward_train + backward with dropout against central differences of
    L = sum(out * dout) + sum(h_n * dh_n) along one random direction of the
    input and one of the parameters (float64 only). Each evaluation is the
    first forward_train of a fresh module with the same seed, so every one
    draws the same masks."""
    if np.dtype(cfg["dtype"]) != np.float64:
        return

    def fresh(params=state):
        m = gru_cy.GRU(**cfg)
        m.load_state_dict(params)
        return m

    def loss(x_, params=state):
        out, h_n, _ = fresh(params).forward_train(x_, h0, lengths)
        total = float(np.sum(out * dout))
        if dh_n is not None:
            total += float(np.sum(h_n * dh_n))
        return total

    gru = fresh()
    out, h_n, tape = gru.forward_train(x, h0, lengths)
    gru.zero_grad()
    dx, _ = gru.backward(tape, dout, dh_n)
    rng = np.random.default_rng(0)
    eps = 1e-6
    v = rng.standard_normal(x.shape)
    numeric = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.sum(dx * v), numeric, rtol=1e-5, atol=1e-6,
                               err_msg="dx with dropout")
    vp = {k: rng.standard_normal(p.shape) for k, p in state.items()}
    plus = {k: p + eps * vp[k] for k, p in state.items()}
    minus = {k: p - eps * vp[k] for k, p in state.items()}
    numeric = (loss(x, plus) - loss(x, minus)) / (2 * eps)
    analytic = sum(float(np.sum(gru.grads[k] * vp[k])) for k in state)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6,
                               err_msg="parameter gradients with dropout")


# -- invalid arguments -----------------------------------------------------------------------

I_, H_, L_ = 3, 4, 2


def _module(bidirectional=False, dtype=np.float32):
    return gru_cy.GRU(I_, H_, num_layers=L_, bidirectional=bidirectional, dtype=dtype, seed=0)


bad_scalars = st.one_of(
    st.none(), st.text(max_size=4), st.binary(max_size=4), st.complex_numbers(max_magnitude=5),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=2), st.integers(),
                                                         max_size=2))
non_numeric_dtypes = st.sampled_from(
    [np.complex64, np.complex128, object, "U3", "S3", "datetime64[s]", "timedelta64[s]",
     [("a", np.float32), ("b", np.int8)]])


def _array_of(dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind in "US":
        return np.full(shape, "ab", dtype=dtype)
    if dtype.kind == "O":
        return np.full(shape, None, dtype=object)
    return np.zeros(shape, dtype=dtype)


@st.composite
def bad_inputs(draw):
    """(x, h0, lengths) where at least one is invalid for _module()."""
    T, B = draw(st.integers(0, 4)), draw(st.integers(1, 3))
    x = np.zeros((T, B, I_), np.float32)
    h0 = None
    lengths = None
    kind = draw(st.sampled_from(["x_ndim", "x_size", "x_dtype", "x_object", "h0_shape",
                                 "h0_ndim", "h0_dtype", "len_range", "len_count", "len_dtype",
                                 "len_ndim"]))
    if kind == "x_ndim":
        ndim = draw(st.sampled_from([0, 1, 4, 5]))
        x = np.zeros(draw(st.lists(st.integers(0, 3), min_size=ndim, max_size=ndim)) or (),
                     np.float32)
    elif kind == "x_size":
        x = np.zeros((T, B, draw(st.integers(0, 8).filter(lambda i: i != I_))), np.float32)
    elif kind == "x_dtype":
        x = _array_of(draw(non_numeric_dtypes), (T, B, I_))
    elif kind == "x_object":
        x = draw(bad_scalars)
    elif kind == "h0_shape":
        shape = [L_, B, H_]
        i = draw(st.integers(0, 2))
        shape[i] = draw(st.integers(0, 6).filter(lambda n, i=i: n != shape[i]))
        h0 = np.zeros(shape, np.float32)
    elif kind == "h0_ndim":
        h0 = np.zeros(draw(st.sampled_from([(), (H_,), (L_, H_), (1, L_, B, H_)])), np.float32)
    elif kind == "h0_dtype":
        h0 = _array_of(draw(non_numeric_dtypes), (L_, B, H_))
    elif kind == "len_range":
        lengths = [draw(st.integers(0, T)) for _ in range(B)]
        j = draw(st.integers(0, B - 1))
        lengths[j] = draw(st.one_of(st.integers(-2**40, -1), st.integers(T + 1, 2**40)))
    elif kind == "len_count":
        lengths = [0] * draw(st.integers(0, 6).filter(lambda n: n != B))
    elif kind == "len_dtype":
        lengths = draw(st.sampled_from([
            np.full(B, 1.0), np.full(B, 0.5), ["1"] * B, [None] * B, np.full(B, 1 + 0j)]))
    elif kind == "len_ndim":
        lengths = np.zeros((B, 1), np.int64) if draw(st.booleans()) else np.int64(0)
    return kind, x, h0, lengths


def _snapshot(gru):
    return {k: v.tobytes() for k, v in gru.params.items()}, \
           {k: v.tobytes() for k, v in gru.grads.items()}


@settings(max_examples=_n(200))
@given(bad_inputs(), st.booleans())
def test_random_invalid_inputs_raise_type_or_value_error(bad, train):
    kind, x, h0, lengths = bad
    gru = _module()
    before = _snapshot(gru)
    with pytest.raises(ERRORS):
        if train:
            gru.forward_train(x, h0, lengths)
        else:
            gru(x, h0, lengths)
    assert _snapshot(gru) == before
    # The module still works.
    out, _ = gru(np.ones((2, 1, I_), np.float32))
    assert np.isfinite(out).all()


@st.composite
def bad_steps(draw):
    kind = draw(st.sampled_from(["x_ndim", "x_size", "x_dtype", "h_shape", "h_dtype"]))
    B = draw(st.integers(1, 3))
    x_t, h = np.zeros((B, I_), np.float32), None
    if kind == "x_ndim":
        x_t = np.zeros(draw(st.sampled_from([(), (1, B, I_), (1, 1, B, I_)])), np.float32)
    elif kind == "x_size":
        x_t = np.zeros((B, draw(st.integers(0, 8).filter(lambda i: i != I_))), np.float32)
    elif kind == "x_dtype":
        x_t = _array_of(draw(non_numeric_dtypes), (B, I_))
    elif kind == "h_shape":
        h = np.zeros(draw(st.sampled_from([(L_, B + 1, H_), (L_ + 1, B, H_), (L_, B, H_ + 1),
                                           (B, H_), (L_, H_), (2 * L_, B, H_)])), np.float32)
    else:
        h = _array_of(draw(non_numeric_dtypes), (L_, B, H_))
    return x_t, h


@settings(max_examples=_n(60))
@given(bad_steps())
def test_random_invalid_step_arguments_raise(bad):
    x_t, h = bad
    gru = _module()
    with pytest.raises(ERRORS):
        gru.step(x_t, h)
    with pytest.raises(ValueError):
        _module(bidirectional=True).step(np.zeros((1, I_), np.float32))


@st.composite
def bad_state_dicts(draw):
    bidirectional = draw(st.booleans())
    good = _module(bidirectional).state_dict()
    sd = dict(good)
    kind = draw(st.sampled_from(["missing", "unexpected", "shape", "dtype", "not_mapping"]))
    names = sorted(good)
    if kind == "missing":
        for name in draw(st.lists(st.sampled_from(names), min_size=1, unique=True)):
            del sd[name]
    elif kind == "unexpected":
        sd[draw(st.text(min_size=1, max_size=12).filter(lambda s: s not in good))] = \
            np.zeros(3, np.float32)
    elif kind == "shape":
        name = draw(st.sampled_from(names))
        shape = list(good[name].shape)
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] += draw(st.sampled_from([-1, 1, 5]))
        sd[name] = np.zeros(shape, np.float32)
    elif kind == "dtype":
        name = draw(st.sampled_from(names))
        sd[name] = _array_of(draw(non_numeric_dtypes), good[name].shape)
    else:
        sd = draw(st.one_of(st.none(), st.integers(), st.text(max_size=3),
                            st.just(list(good.values()))))
    return bidirectional, kind, sd


@settings(max_examples=_n(80))
@given(bad_state_dicts())
def test_random_invalid_state_dicts_raise_and_change_nothing(bad):
    bidirectional, kind, sd = bad
    gru = _module(bidirectional)
    before = _snapshot(gru)
    with pytest.raises(ERRORS):
        gru.load_state_dict(sd)
    assert _snapshot(gru) == before
    if kind in ("missing", "unexpected"):
        gru.load_state_dict(sd, strict=False)   # allowed when not strict


@st.composite
def bad_backward_calls(draw):
    kind = draw(st.sampled_from(["not_a_tape", "other_module", "other_config", "dout_shape",
                                 "dout_dtype", "dh_shape", "dh_dtype"]))
    return kind, draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(non_numeric_dtypes)


@settings(max_examples=_n(60))
@given(bad_backward_calls())
def test_random_invalid_backward_calls_raise(bad):
    kind, T, B, bad_dtype = bad
    gru = _module()
    x = np.ones((T, B, I_), np.float32)
    out, h_n, tape = gru.forward_train(x)
    dout, dh_n = None, None
    if kind == "not_a_tape":
        tape = {"T": T}
    elif kind == "other_module":
        _, _, tape = _module().forward_train(x)
    elif kind == "other_config":
        other = gru_cy.GRU(I_, H_ + 1, num_layers=L_, seed=0)
        _, _, tape = other.forward_train(x)
    elif kind == "dout_shape":
        dout = np.ones((T + 1, B, H_), np.float32)
    elif kind == "dout_dtype":
        dout = _array_of(bad_dtype, out.shape)
    elif kind == "dh_shape":
        dh_n = np.ones((L_, B + 1, H_), np.float32)
    else:
        dh_n = _array_of(bad_dtype, h_n.shape)
    before = _snapshot(gru)
    with pytest.raises(ERRORS):
        gru.backward(tape, dout, dh_n)
    assert _snapshot(gru) == before


constructor_args = st.fixed_dictionaries({}, optional={
    "input_size": st.one_of(st.integers(-5, 0), st.floats(allow_nan=True), bad_scalars,
                            st.booleans()),
    "hidden_size": st.one_of(st.integers(-5, 0), st.floats(allow_nan=True), bad_scalars,
                             st.booleans()),
    "num_layers": st.one_of(st.integers(-5, 0), st.floats(allow_nan=True), bad_scalars),
    "dropout": st.one_of(st.floats(1.0001, 1e9), st.floats(-1e9, -1e-9), st.just(float("nan")),
                         bad_scalars),
    "dtype": st.sampled_from([np.int32, np.float16, np.complex64, "nonsense", object]),
    "bias": st.one_of(st.integers(), bad_scalars),
    "batch_first": st.one_of(st.integers(), bad_scalars),
    "bidirectional": st.one_of(st.integers(), bad_scalars),
    "reset_after": st.one_of(st.integers(), bad_scalars),
}).filter(lambda d: len(d) > 0)


@settings(max_examples=_n(100))
@given(constructor_args)
def test_random_invalid_constructor_arguments_raise(kwargs):
    full = dict(input_size=I_, hidden_size=H_)
    full.update(kwargs)
    with pytest.raises(ERRORS):
        gru_cy.GRU(**full)


# -- the caller's arrays after forward_train ---------------------------------------------------

@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_ignores_later_changes_to_the_callers_arrays(with_lengths):
    T, B = 6, 3
    rng = np.random.default_rng(0)
    gru = gru_cy.GRU(I_, H_, seed=0)
    x = rng.standard_normal((T, B, I_)).astype(np.float32)
    lengths = rng.integers(0, T + 1, size=B).astype(np.int64) if with_lengths else None
    expected = _train_grads(gru, x.copy(), None if lengths is None else lengths.copy())
    out, _, tape = gru.forward_train(x, lengths=lengths)
    x[...] = rng.standard_normal(x.shape)            # the buffer now holds the next batch
    if lengths is not None:
        lengths[...] = rng.integers(0, T + 1, size=B)
    gru.zero_grad()
    gru.backward(tape, np.ones_like(out))
    for name, g in expected.items():
        assert gru.grads[name].tobytes() == g.tobytes(), name


def _train_grads(gru, x, lengths):
    gru.zero_grad()
    out, _, tape = gru.forward_train(x, lengths=lengths)
    gru.backward(tape, np.ones_like(out))
    return {k: v.copy() for k, v in gru.grads.items()}


_LENGTHS_REUSE_SCRIPT = """
import numpy as np, gru_cy
gru = gru_cy.GRU(4, 8, seed=0)
lengths = np.array([6, 3, 1], dtype=np.int64)
out, h, tape = gru.forward_train(np.ones((6, 3, 4), np.float32), lengths=lengths)
lengths[:] = 10**9
try:
    gru.backward(tape, np.ones_like(out))
except (TypeError, ValueError):
    pass
"""


def test_reusing_the_lengths_buffer_cannot_crash_backward(tmp_path):
    import subprocess
    import sys

    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(gru_cy.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", _LENGTHS_REUSE_SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"backward crashed (exit {proc.returncode}): {proc.stderr[-500:]}"
