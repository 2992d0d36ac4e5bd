"""Frozen inference (module.freeze, gru_cy/nn/frozen.py; kernels/rc_qgemm.h):

- fp32: bit for bit the module's __call__ and step() for every cell, both dtypes, every layout;
- bf16 / int8 products bit for bit the NumPy model of their arithmetic (reference_quant.py) under
  every instruction set this CPU runs, special values included; each frozen cell step by step
  against that model within rounding of the activations;
- within each precision: batch, thread-split and step-versus-sequence invariance, the same bits
  under every GRU_CY_ISA (bf16's emulation reproduces vdpbf16ps exactly);
- pickling, independence from later changes to the module, the errors.
"""

import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gru_cy
from gru_cy.kernels import _core
from helpers import same_bits, threads
import reference_quant as rq

CELLS = ["gru", "gru-reset-before", "lstm", "lstm-proj", "rnn-tanh", "rnn-relu", "jordan"]
QUANT = ["bf16", "int8"]
ORDER = ("portable", "avx2", "avx512")
ISAS = [isa for isa in ORDER if ORDER.index(isa) <= ORDER.index(_core.cpu_isa())]


def make(cell, I, H, L=1, bidirectional=False, dtype=np.float32, seed=0, **kw):
    if cell == "jordan":
        return gru_cy.Jordan(I, H, max(1, H // 3), "tanh", "sigmoid", dtype=dtype, seed=seed,
                             **kw)
    kw = dict(num_layers=L, bidirectional=bidirectional, dtype=dtype, seed=seed, **kw)
    if cell.startswith("gru"):
        return gru_cy.GRU(I, H, reset_after=cell == "gru", **kw)
    if cell == "lstm-proj":
        return gru_cy.LSTM(I, H, proj_size=max(1, H // 2), **kw)
    if cell == "lstm":
        return gru_cy.LSTM(I, H, **kw)
    return gru_cy.RNN(I, H, nonlinearity=cell.split("-")[1], **kw)


def same(a, b):
    """Bitwise equality of results, states as tuples included."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    return same_bits(a, b)


def state_of(result):
    return result[1] if isinstance(result[1], tuple) else (result[1],)


class isa:
    """Run the block with the kernels' instruction set name."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.saved = _core.isa()
        _core.set_isa(self.name)

    def __exit__(self, *exc):
        _core.set_isa(self.saved)


# ---- fp32: the module's bits ----------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fp32_is_the_module_bit_for_bit(cell, dtype):
    rng = np.random.default_rng(1)
    for L, bidirectional, batch_first in [(1, False, False), (2, False, True), (2, True, False)]:
        if cell == "jordan" and (L > 1 or bidirectional):
            continue
        kw = {} if cell == "jordan" else {}
        m = make(cell, 7, 37, L, bidirectional, dtype, seed=3, batch_first=batch_first, **kw)
        f = m.freeze()
        assert f.precision == "fp32" and f.dtype == m.dtype
        x = rng.standard_normal((5, 4, 7)).astype(dtype)
        lengths = [5, 2, 4, 0] if not batch_first else [4, 1, 3, 2, 0]
        assert same(f(x), m(x))
        assert same(f(x, None, lengths), m(x, None, lengths))
        assert same(f(x[:, 0]), m(x[:, 0]))                        # unbatched
        state = m(x)[1]
        assert same(f(x, state), m(x, state))
        assert same(f(x.astype(np.float64 if dtype == np.float32 else np.float32)),
                    m(x.astype(np.float64 if dtype == np.float32 else np.float32)))
        if not bidirectional:
            s_f = s_m = None
            for t in range(3):
                y_f, s_f = f.step(x[t], s_f)
                y_m, s_m = m.step(x[t], s_m)
                assert same((y_f, s_f), (y_m, s_m))
            assert same(f.step(x[0, 0]), m.step(x[0, 0]))            # unbatched step
        with threads(2, 2, 2):
            assert same(f(x, None, lengths), m(x, None, lengths))


def test_blas_backend():
    """fp32: the module's bits under the BLAS backend too; bf16 / int8 products stay gru_cy's."""
    rng = np.random.default_rng(2)
    m = gru_cy.LSTM(6, 40, num_layers=2, proj_size=9, seed=0)
    f = m.freeze()
    x = rng.standard_normal((9, 3, 6)).astype(np.float32)
    low = {p: (m.freeze(p), m.freeze(p)(x)) for p in QUANT}
    before = gru_cy.get_backend()
    try:
        gru_cy.set_backend("blas")
        assert same(f(x), m(x))
        assert same(f.step(x[0]), m.step(x[0]))
        for frozen, want in low.values():
            assert same(frozen(x), want)
    finally:
        gru_cy.set_backend(before)


@pytest.mark.parametrize("precision", ["fp32"] + QUANT)
def test_linear(precision):
    rng = np.random.default_rng(3)
    lin = gru_cy.Linear(45, 13, seed=1)
    f = lin.freeze(precision)
    x = rng.standard_normal((3, 5, 45)).astype(np.float32)
    if precision == "fp32":
        assert same(f(x), lin(x)) and same(f(x[0, 0]), lin(x[0, 0]))
    else:
        want = rq.matmul(precision)(x.reshape(-1, 45), lin.params["weight"]) + lin.params["bias"]
        assert same(f(x), want.reshape(3, 5, 13))
        assert same(f(x[1, 2]), want[7])
    assert f(np.zeros((0, 45), np.float32)).shape == (0, 13)
    nb = gru_cy.Linear(45, 13, bias=False, seed=1).freeze(precision)
    assert nb(x).shape == (3, 5, 13)
    g = pickle.loads(pickle.dumps(f))
    assert same(g(x), f(x))


# ---- the products: bit for bit the model of their arithmetic ----------------------------------


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("precision", QUANT)
def test_products_are_the_model_bit_for_bit(name, precision):
    rng = np.random.default_rng(4)
    mm = rq.matmul(precision)
    with isa(name):
        for M, K, N in [(1, 1, 1), (1, 7, 5), (2, 64, 200), (3, 33, 70), (7, 130, 33),
                        (13, 5, 64), (12, 96, 96), (25, 301, 40), (40, 64, 129)]:
            A = rng.standard_normal((M, K)).astype(np.float32)
            W = (rng.standard_normal((N, K)) * rng.uniform(0.01, 3, (N, 1))).astype(np.float32)
            pw = _core.PackedWeight(W, precision)
            want = mm(A, W)
            assert same(_core.qgemm(A, pw), want), (M, K, N)
            # column blocks of any offset and width, as threads split them
            for j0, n in [(0, 1), (N // 3, max(1, N // 2)), (N - 1, 1)]:
                if n <= N - j0:
                    assert same(_core.qgemm(A, pw, j0, n), want[:, j0:j0 + n]), (M, K, N, j0)
            # init: the product added into C
            C0 = rng.standard_normal((M, N)).astype(np.float32)
            assert same(_core.qgemm(A, pw, c=C0.copy(), init=True), C0 + want)


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("precision", QUANT)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(M=st.integers(1, 30), K=st.integers(1, 200), N=st.integers(1, 150),
       cut=st.floats(0, 1), width=st.floats(0, 1), scale=st.sampled_from([1e-20, 1e-3, 1, 1e15]),
       seed=st.integers(0, 2**16))
def test_products_random_shapes(name, precision, M, K, N, cut, width, scale, seed):
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((M, K)) * scale).astype(np.float32)
    W = (rng.standard_normal((N, K)) * rng.uniform(0.1, 10, (N, 1))).astype(np.float32)
    j0 = min(N - 1, int(cut * N))
    n = max(1, int(width * (N - j0)))
    pw = _core.PackedWeight(W, precision)
    with isa(name), np.errstate(all="ignore"):
        assert same(_core.qgemm(A, pw, j0, n), rq.matmul(precision)(A, W)[:, j0:j0 + n])


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("precision", QUANT)
@pytest.mark.parametrize("K", [40, 45])
def test_products_special_values(name, precision, K):
    rng = np.random.default_rng(5)
    N = 37
    W = rng.standard_normal((N, K)).astype(np.float32)
    W[3] = 0                                      # a zero output channel
    W[5, 7] = 1e-39                               # a subnormal weight
    W[6] *= 1e-30                                 # tiny, not subnormal
    W[8] *= 1e30                                  # huge
    A = rng.standard_normal((9, K)).astype(np.float32)
    A[1] = 0
    A[2, 4] = np.nan
    A[3, 0] = np.inf
    A[4] *= 1e-38                                 # tiny products: the flush to zero
    A[5, 1:5] = [1e-40, -1e-41, 2e-45, -0.0]      # subnormal activations
    A[6] *= 1e30                                  # products beyond float32's range
    A[7] = -0.0
    pw = _core.PackedWeight(W, precision)
    with isa(name), np.errstate(all="ignore"):
        assert same(_core.qgemm(A, pw), rq.matmul(precision)(A, W))


def test_weight_quantisation_is_the_model():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((50, 77)).astype(np.float32)
    W[0] = 0
    W[1, 3] = np.nan
    W[2, :10] = [1e-40, 2.5, -2.5, 3.5, 0.5, -0.5, 1.5, 7.0, 65504.0, 3.4e38]
    assert same(_core.PackedWeight(W, "bf16").quantized(), rq.bf16_bits(W))
    q, scale = _core.PackedWeight(W, "int8").quantized()
    q_ref, scale_ref = rq.quantize_rows(W)
    assert same(q, q_ref) and same(scale, scale_ref)
    # one row of activations as the products quantise it
    for row in W[:5]:
        qa, sa = _core.quantize_row(row)
        qr, sr = rq.quantize_rows(row[None])
        assert same(qa, qr[0]) and same(sa, sr[0])
    assert same(_core.bf16_round(W), rq.bf16_bits(W))


def test_bf16_rounding_edge_cases():
    x = np.array([1.0, 1 + 2**-8, 1 + 2**-7 + 2**-8, 1 + 2**-8 + 2**-20, -1 - 2**-8,
                  3.4028235e38, np.inf, -np.inf, 1e-39, -1e-39, 0.0, -0.0], np.float32)
    got = (_core.bf16_round(x).astype(np.uint32) << 16).view(np.float32)
    want = np.array([1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -1.0, np.inf, np.inf, -np.inf, 0.0, -0.0,
                     0.0, -0.0], np.float32)
    assert same(got, want)
    nan = _core.bf16_round(np.array([np.nan, -np.nan], np.float32))
    assert np.isnan((nan.astype(np.uint32) << 16).view(np.float32)).all()


# ---- frozen cells against the model, step by step -------------------------------------------


@pytest.mark.parametrize("precision", QUANT)
@pytest.mark.parametrize("cell", CELLS)
def test_each_step_is_the_model(cell, precision):
    rng = np.random.default_rng(7)
    m = make(cell, 19, 45, seed=8)
    f = m.freeze(precision)
    x = rng.standard_normal((6, 5, 19)).astype(np.float32)
    state = tuple(np.asarray(s) for s in state_of(m.step(x[0])))    # a nonzero start
    for t in range(6):
        y, s = f.step(x[t], state if len(state) > 1 else state[0])
        want = rq.step(m, precision, x[t], state)
        s = s if isinstance(s, tuple) else (s,)
        for got, ref in zip(s, want):
            # only the activations differ (NumPy's against gru_cy's, a few ulp)
            np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)
        state = s


@pytest.mark.parametrize("precision", QUANT)
@pytest.mark.parametrize("cell", CELLS)
def test_invariances_within_a_precision(cell, precision):
    """Batch, lengths, step versus sequence, thread splits: the same bits."""
    rng = np.random.default_rng(9)
    for L, bidirectional in [(1, False), (2, True)]:
        if cell == "jordan" and L > 1:
            continue
        m = make(cell, 11, 70, L, bidirectional, seed=10)
        f = m.freeze(precision)
        x = rng.standard_normal((7, 5, 11)).astype(np.float32)
        lengths = np.array([7, 3, 5, 0, 6])
        out, state = f(x, None, lengths)
        for b in (0, 2, 4):
            out_b, state_b = f(np.ascontiguousarray(x[:, b:b + 1]), None, lengths[b:b + 1])
            assert same_bits(out_b[:lengths[b], 0], out[:lengths[b], b])
            for s, s_b in zip(state if isinstance(state, tuple) else (state,),
                              state_b if isinstance(state_b, tuple) else (state_b,)):
                assert same_bits(s_b[:, 0], s[:, b])
        for split in [(2, 1), (1, 2), (2, 2)]:
            with threads(2, *split):
                assert same(f(x, None, lengths), (out, state))
        if not bidirectional:
            full = f(x)
            s = None
            for t in range(7):
                y, s = f.step(x[t], s)
                assert same_bits(y, full[0][t])
            assert same(s, full[1])


@pytest.mark.parametrize("precision", QUANT)
def test_the_same_bits_under_every_instruction_set(precision):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 4, 13)).astype(np.float32)
    lengths = [6, 2, 5, 1]
    results = {}
    for name in ISAS:
        with isa(name):
            results[name] = [make(cell, 13, 50, seed=12).freeze(precision)(x, None, lengths)
                             for cell in CELLS]
    for name in ISAS[:-1]:
        for a, b in zip(results[name], results[ISAS[-1]]):
            assert same(a, b), name


_DIGEST = r"""
import hashlib, numpy as np, gru_cy
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 3, 21)).astype(np.float32)
h = hashlib.sha256()
for m in (gru_cy.GRU(21, 40, num_layers=2, seed=1), gru_cy.LSTM(21, 33, proj_size=7, seed=2),
          gru_cy.GRU(21, 40, reset_after=False, bidirectional=True, seed=3),
          gru_cy.Jordan(21, 30, 5, seed=4), gru_cy.RNN(21, 64, nonlinearity="relu", seed=5)):
    for p in ("bf16", "int8"):
        out, state = m.freeze(p)(x, None, [8, 5, 1])
        h.update(out.tobytes())
        for s in state if isinstance(state, tuple) else (state,):
            h.update(s.tobytes())
print(gru_cy.kernels._core.isa(), h.hexdigest())
"""


def test_gru_cy_isa_environment():
    """Fresh processes under each GRU_CY_ISA the CPU has: one digest of bf16 and int8 results."""
    digests = set()
    for name in ISAS:
        env = dict(os.environ, GRU_CY_ISA=name)
        run = subprocess.run([sys.executable, "-c", _DIGEST], env=env, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        chosen, digest = run.stdout.split()
        assert chosen == name
        digests.add(digest)
    assert len(digests) == 1


def test_native_says_how_the_products_run():
    assert _core.native("fp32")
    with isa("portable"):
        assert not _core.native("bf16") and not _core.native("int8")
    with pytest.raises(ValueError, match="precision"):
        _core.native("fp16")



def test_info_says_whether_bf16_and_int8_are_native():
    from gru_cy.__main__ import _precision_info

    for name in ISAS:
        with isa(name):
            line = _precision_info()
            assert ("bf16 native" in line) == _core.native("bf16")
            assert ("int8 native" in line) == _core.native("int8")
            if name == "portable":
                assert "bf16 emulated" in line and "int8 without" in line


# ---- error against float32 -----------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_error_against_float32_is_small(cell):
    """A loose guard of the published error (docs/precision.md measures it)."""
    rng = np.random.default_rng(13)
    m = make(cell, 64, 128, 2, seed=14)
    x = rng.standard_normal((30, 8, 64)).astype(np.float32)
    ref = m(x)[0]
    for precision, bound in (("bf16", 0.02), ("int8", 0.05)):
        err = np.abs(m.freeze(precision)(x)[0] - ref).max()
        assert 0 < err < bound, (precision, err)


# ---- objects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32"] + QUANT)
def test_frozen_is_independent_of_the_module(precision):
    rng = np.random.default_rng(15)
    m = make("lstm-proj", 9, 33, 2, seed=16)
    x = rng.standard_normal((5, 3, 9)).astype(np.float32)
    f = m.freeze(precision)
    before = f(x)
    for p in m.params.values():
        p *= 2
    m.params["weight_hh_l0"] = np.zeros_like(m.params["weight_hh_l0"])
    m.hidden_size = 5           # a reconfigured module
    assert same(f(x), before)
    assert f.hidden_size == 33


@pytest.mark.parametrize("precision", ["fp32"] + QUANT)
@pytest.mark.parametrize("cell", ["gru", "lstm-proj", "jordan"])
def test_pickling(cell, precision):
    rng = np.random.default_rng(17)
    m = make(cell, 8, 40, seed=18)
    f = m.freeze(precision)
    x = rng.standard_normal((4, 2, 8)).astype(np.float32)
    g = pickle.loads(pickle.dumps(f))
    assert same(g(x), f(x)) and same(g.step(x[0]), f.step(x[0]))
    assert repr(g) == repr(f) and g.precision == precision
    assert f.nbytes > 0


def test_packed_weight():
    rng = np.random.default_rng(19)
    W = rng.standard_normal((20, 30)).astype(np.float32)
    for precision in ["fp32"] + QUANT:
        pw = _core.PackedWeight(W, precision)
        assert pw.shape == (20, 30) and pw.precision == precision
        back = pickle.loads(pickle.dumps(pw))
        assert same(back.dequantized(), pw.dequantized())
    assert same(_core.PackedWeight(W, "fp32").dequantized(), W)
    q, scale = _core.PackedWeight(W, "int8").quantized()
    np.testing.assert_allclose(q * scale[:, None], W, rtol=0, atol=np.abs(W).max() / 254 + 1e-7)
    with pytest.raises(TypeError, match="float32"):
        _core.PackedWeight(W.astype(np.float64), "int8")
    with pytest.raises(ValueError, match="precision"):
        _core.PackedWeight(W, "fp16")
    with pytest.raises(ValueError, match="corrupt"):
        _core._packed_weight("int8", 20, 30, (np.full((20, 30), -128, np.int8),
                                              np.ones(20, np.float32)))
    with pytest.raises(ValueError, match="corrupt"):
        _core._packed_weight("bf16", 20, 30, np.zeros((3, 3), np.uint16))


def test_threads_may_share_a_frozen_module():
    rng = np.random.default_rng(20)
    f = make("gru", 16, 64, 2, seed=21).freeze("int8")
    xs = [rng.standard_normal((12, 3, 16)).astype(np.float32) for _ in range(4)]
    want = [f(x) for x in xs]
    got = [None] * 4

    def work(i):
        for _ in range(5):
            got[i] = f(xs[i])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(same(g, w) for g, w in zip(got, want))


# ---- errors ----------------------------------------------------------------------------------


def test_errors():
    m = gru_cy.GRU(5, 8, seed=0)
    for bad in ("fp16", "FP32", None, 8):
        with pytest.raises(ValueError, match="precision must be one of"):
            m.freeze(bad)
    with pytest.raises(ValueError, match="float32"):
        gru_cy.GRU(5, 8, dtype=np.float64).freeze("int8")
    with pytest.raises(ValueError, match="float32"):
        gru_cy.Linear(5, 8, dtype=np.float64).freeze("bf16")
    f = m.freeze("int8")
    with pytest.raises(ValueError, match="input_size. Expected 5, got 4"):
        f(np.zeros((3, 2, 4), np.float32))
    with pytest.raises(ValueError, match="Expected hidden size"):
        f(np.zeros((3, 2, 5), np.float32), np.zeros((1, 3, 8), np.float32))
    with pytest.raises(ValueError, match="lengths must lie in"):
        f(np.zeros((3, 2, 5), np.float32), None, [4, 1])
    with pytest.raises(TypeError):
        f(np.array([["a"]]))
    with pytest.raises(ValueError, match="unidirectional"):
        gru_cy.GRU(5, 8, bidirectional=True).freeze("bf16").step(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="in_features"):
        gru_cy.Linear(5, 8).freeze("int8")(np.zeros((2, 4), np.float32))
    with pytest.raises(AttributeError):
        f.params
    # the int32 bound of the integer sums
    big = gru_cy.RNN(_core.Q_MAX_K + 1, 1, seed=0)
    with pytest.raises(ValueError, match="at most"):
        big.freeze("int8")
    # a packed weight is inference-only and of one shape
    pw = _core.PackedWeight(np.zeros((24, 5), np.float32), "int8")
    x = np.zeros((2, 1, 5), np.float32)
    out = np.zeros((2, 1, 8), np.float32)
    with pytest.raises(ValueError, match="shape"):
        _core.forward(_core.GRU, 1, 0, x, out, ((np.zeros((1, 8), np.float32),),),
                      ((pw, pw, None, None, None, None),), None, (False,), (None,))
    with pytest.raises(ValueError, match="inference only"):
        _core.backward(_core.GRU, 1, 0, x, out, (np.zeros_like(x),),
                       ((np.zeros((1, 8), np.float32),),),
                       ((pw, pw, None, None, None, None),),
                       ((np.zeros((24, 5), np.float32), np.zeros((24, 8), np.float32), None,
                         None, None, None),), None, (False,), (np.zeros(1000, np.float32),))
    with pytest.raises(ValueError, match="float32 inputs"):
        _core.forward(_core.GRU, 1, 0, x.astype(np.float64), out.astype(np.float64),
                      ((np.zeros((1, 8)),),),
                      ((pw, _core.PackedWeight(np.zeros((24, 8), np.float32), "int8"), None,
                        None, None, None),), None, (False,), (None,))


# ---- estimators --------------------------------------------------------------------------------


def test_estimator_inference_precision():
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    rng = np.random.default_rng(22)
    X = rng.standard_normal((120, 10, 3)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    clf = gru_cy.RNNClassifier(hidden_size=16, max_iter=5, random_state=0)
    assert clf.get_params()["inference_precision"] == "fp32"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    p32 = clf.predict(X)
    for precision in QUANT:
        clf.set_params(inference_precision=precision)
        assert clone(clf).get_params()["inference_precision"] == precision
        p = clf.predict(X)
        assert (p == p32).mean() >= 0.95
        emb, cell, lin = clf._parts()
        frozen = (cell.freeze(precision), lin.freeze(precision))
        h = frozen[0](X.transpose(1, 0, 2))[1][-1]
        assert same_bits(clf.predict_proba(X).argmax(axis=1), frozen[1](h).argmax(axis=1))
    # training again drops the frozen copies
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(X, y)
    emb, cell, lin = clf._parts()
    h = cell.freeze("int8")(X.transpose(1, 0, 2))[1][-1]
    assert same_bits(clf.predict(X), clf.classes_[lin.freeze("int8")(h).argmax(axis=1)])
    clf.set_params(inference_precision="fp16")
    with pytest.raises(ValueError, match="inference_precision"):
        clf.predict(X)
    with pytest.raises(ValueError, match="inference_precision"):
        clf.fit(X, y)
    reg = gru_cy.RNNRegressor(hidden_size=8, max_iter=2, random_state=0,
                              dtype=np.float64, inference_precision="int8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, X[:, -1, 0])
    with pytest.raises(ValueError, match="float32"):
        reg.predict(X)


# ---- whole exported models ----------------------------------------------------------------------


@pytest.mark.parametrize("precision", QUANT)
@pytest.mark.parametrize("name", ["session_tagger_bilstm_torchscript", "session_text_gru_torchscript",
                                  "session_speech_conv_lstm_torchscript",
                                  "session_tagger_packed_torchscript"])
def test_sessions_at_lower_precision(name, precision):
    """InferenceSession(precision=...) runs the recurrent nodes frozen: close to fp32."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", name + ".onnx")
    rng = np.random.default_rng(23)
    fp32 = gru_cy.InferenceSession(path)
    low = gru_cy.InferenceSession(path, precision=precision)
    assert low.precision == precision
    feed = {}
    for i in fp32.get_inputs():
        shape = [d if isinstance(d, int) else {"batch": 3, "time": 9}.get(d, 3) for d in i.shape]
        if i.name == "lengths":
            feed[i.name] = np.array([9, 4, 6][:shape[0]], np.int64)
        elif i.type == "tensor(int64)":
            feed[i.name] = rng.integers(0, 5, shape).astype(np.int64)
        else:
            feed[i.name] = rng.standard_normal(shape).astype(np.float32)
    for a, b in zip(low.run(None, feed), fp32.run(None, feed)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=0.05 * max(1.0, np.abs(b).max()))
        assert not np.array_equal(a, b) or b.dtype != np.float32 or b.size == 0


class MyGRU(gru_cy.GRU):
    """A user's subclass: its frozen copy keeps the class."""


def test_a_subclass_freezes_as_itself():
    m = MyGRU(4, 9, seed=0)
    f = m.freeze("int8")
    assert f.module_type is MyGRU
    x = np.random.default_rng(24).standard_normal((3, 2, 4)).astype(np.float32)
    g = pickle.loads(pickle.dumps(f))
    assert g.module_type is MyGRU and same(g(x), f(x))


@pytest.mark.parametrize("precision", QUANT)
def test_products_with_long_rows(precision):
    """Rows too long for the products' stack block take a heap block: the same arithmetic."""
    rng = np.random.default_rng(25)
    A = rng.standard_normal((14, 40001)).astype(np.float32)
    W = rng.standard_normal((5, 40001)).astype(np.float32)
    pw = _core.PackedWeight(W, precision)
    want = rq.matmul(precision)(A, W)
    for name in ISAS:
        with isa(name):
            assert same(_core.qgemm(A, pw), want), name


# -- the one-step cells ---------------------------------------------------------------------

CELL_CLASSES = {"gru": gru_cy.GRUCell, "lstm": gru_cy.LSTMCell, "rnn": gru_cy.RNNCell}


def cell_and_module(name, I, H, dtype=np.float32, bias=True, seed=0):
    """A cell and a one-layer module with the same weights."""
    cell = CELL_CLASSES[name](I, H, bias=bias, dtype=dtype, seed=seed)
    module = {"gru": gru_cy.GRU, "lstm": gru_cy.LSTM, "rnn": gru_cy.RNN}[name](
        I, H, bias=bias, dtype=dtype)
    for k in cell.params:
        module.params[k + "_l0"][...] = cell.params[k]
    return cell, module


@pytest.mark.parametrize("name", list(CELL_CLASSES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_frozen_cell_fp32_is_the_cell_bit_for_bit(name, dtype, bias):
    rng = np.random.default_rng(3)
    cell, _ = cell_and_module(name, 21, 37, dtype, bias)
    frozen = cell.freeze()
    assert frozen.precision == "fp32" and frozen.module_type is type(cell)
    assert frozen.dtype == cell.dtype and frozen.hidden_size == 37 and frozen.bias == bias
    for B in (1, 3, 40):
        x = rng.standard_normal((B, 21)).astype(dtype)
        h = rng.standard_normal((B, 37)).astype(dtype)
        hx = (h, rng.standard_normal((B, 37)).astype(dtype)) if name == "lstm" else h
        assert same(frozen(x), cell(x))
        assert same(frozen(x, hx), cell(x, hx))
        # The general path: lists, another dtype, unbatched input.
        assert same(frozen(x.tolist(), hx), cell(x.tolist(), hx))
        assert same(frozen(x.astype(np.float16), hx), cell(x.astype(np.float16), hx))
    assert same(frozen(x[0]), cell(x[0]))


@pytest.mark.parametrize("name", list(CELL_CLASSES))
@pytest.mark.parametrize("precision", QUANT)
def test_frozen_cell_is_the_frozen_module_step(name, precision):
    """At bf16 and int8 a frozen cell gives the bits of a frozen one-layer
    module's step() with the same weights, step after step."""
    rng = np.random.default_rng(4)
    cell, module = cell_and_module(name, 19, 45)
    fc, fm = cell.freeze(precision), module.freeze(precision)
    x = rng.standard_normal((6, 5, 19)).astype(np.float32)
    state, mstate = None, None
    for t in range(x.shape[0]):
        state = fc(x[t], state)
        _, mstate = fm.step(x[t], mstate)
        if name == "lstm":
            assert same(state, (mstate[0][0], mstate[1][0]))
        else:
            assert same(state, mstate[0])
    # ... and stays near the float32 cell.
    ref = cell(x[0])
    got = fc(x[0])
    for a, b in zip(ref if name == "lstm" else (ref,), got if name == "lstm" else (got,)):
        assert np.max(np.abs(a - b)) < (0.05 if precision == "int8" else 0.02)


@pytest.mark.parametrize("precision", ["fp32"] + QUANT)
def test_frozen_cell_pickles_and_is_independent_of_the_cell(precision):
    rng = np.random.default_rng(5)
    cell = gru_cy.LSTMCell(16, 24, seed=1)
    frozen = cell.freeze(precision)
    x = rng.standard_normal((4, 16)).astype(np.float32)
    before = frozen(x)
    for p in cell.params.values():
        p *= 0.5
    assert same(frozen(x), before)
    again = pickle.loads(pickle.dumps(frozen))
    assert same(again(x), before) and again.precision == precision
    assert frozen.nbytes > 0 and "precision=" in repr(frozen)


def test_frozen_cell_errors():
    cell = gru_cy.GRUCell(8, 12)
    with pytest.raises(ValueError, match="precision must be one of"):
        cell.freeze("fp16")
    with pytest.raises(ValueError, match="needs a float32"):
        gru_cy.RNNCell(8, 12, dtype=np.float64).freeze("int8")
    frozen = cell.freeze("int8")
    with pytest.raises(ValueError, match="inconsistent input_size"):
        frozen(np.zeros((2, 9), np.float32))
    with pytest.raises(ValueError, match="batch size"):
        frozen(np.zeros((2, 8), np.float32), np.zeros((3, 12), np.float32))
    with pytest.raises(AttributeError):
        frozen.params
    with pytest.raises(AttributeError):
        frozen.forward_train
