"""The reproducibility contract (docs/architecture.md, "The guarantees"), for every cell and
both dtypes, over random shapes: on one machine and instruction set, bit for bit,

- a sequence's outputs and final state do not depend on the other sequences of the batch, the
  batch size, their lengths or their order;
- forward_train's outputs are __call__'s;
- step() fed a sequence returns what the whole-sequence call returns;
- nothing depends on gru_cy's thread count or on how its threads split a call, nor on the BLAS
  (its kernels, its thread count);

and, on a CPU that has both, the AVX2 and AVX-512 kernels give the same bits.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gru_cy
from gru_cy.kernels import _core
from helpers import THREAD_SPLITS, same_bits, threads

CELLS = ["gru", "gru-reset-before", "lstm", "lstm-proj", "rnn-tanh", "rnn-relu", "jordan"]
DTYPES = [np.float32, np.float64]
SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def make(cell, I, H, L=1, bidirectional=False, dtype=np.float32, seed=0):
    if cell == "jordan":
        return gru_cy.Jordan(I, H, max(1, H // 3), "tanh", "sigmoid", dtype=dtype, seed=seed)
    kw = dict(num_layers=L, bidirectional=bidirectional, dtype=dtype, seed=seed)
    if cell.startswith("gru"):
        return gru_cy.GRU(I, H, reset_after=cell == "gru", **kw)
    if cell == "lstm-proj":
        H = max(H, 2)
        return gru_cy.LSTM(I, H, proj_size=H // 2, **kw)
    if cell == "lstm":
        return gru_cy.LSTM(I, H, **kw)
    return gru_cy.RNN(I, H, nonlinearity=cell.split("-")[1], **kw)


def state_rows(state, b):
    """Row b of every state array (the LSTM's is a pair)."""
    if isinstance(state, tuple):
        return tuple(s[:, b] for s in state)
    return (state[:, b],)


shapes = st.fixed_dictionaries(dict(
    T=st.integers(1, 9), B=st.integers(1, 7), I=st.integers(1, 40), H=st.integers(1, 70),
    L=st.integers(1, 2), bidirectional=st.booleans(), uneven=st.booleans(),
    seed=st.integers(0, 2**16)))


def _case(cell, dtype, p):
    bidirectional = p["bidirectional"] and cell != "jordan"
    L = 1 if cell == "jordan" else p["L"]
    m = make(cell, p["I"], p["H"], L, bidirectional, dtype, p["seed"])
    rng = np.random.default_rng(p["seed"])
    x = rng.standard_normal((p["T"], p["B"], p["I"])).astype(dtype)
    lengths = rng.integers(0, p["T"] + 1, p["B"]) if p["uneven"] else None
    return m, x, lengths


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@SETTINGS
@given(p=shapes)
def test_batch_invariance(cell, dtype, p):
    m, x, lengths = _case(cell, dtype, p)
    out, state = m(x, None, lengths)
    for b in range(x.shape[1]):
        one = None if lengths is None else lengths[b:b + 1]
        out_b, state_b = m(np.ascontiguousarray(x[:, b:b + 1]), None, one)
        assert same_bits(out_b[:, 0], np.ascontiguousarray(out[:, b]))
        for s_b, s in zip(state_rows(state_b, 0), state_rows(state, b)):
            assert same_bits(s_b, np.ascontiguousarray(s))
    # the batch in another order: each sequence's rows move with it
    order = np.random.default_rng(p["seed"]).permutation(x.shape[1])
    out_p, state_p = m(np.ascontiguousarray(x[:, order]), None,
                       None if lengths is None else lengths[order])
    assert same_bits(out_p, np.ascontiguousarray(out[:, order]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@SETTINGS
@given(p=shapes)
def test_forward_train_is_call(cell, dtype, p):
    m, x, lengths = _case(cell, dtype, p)
    out, state = m(x, None, lengths)
    out_t, state_t, _ = m.forward_train(x, None, lengths)
    assert same_bits(out, out_t)
    for a, b in zip(state_rows(state, slice(None)), state_rows(state_t, slice(None))):
        assert same_bits(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@SETTINGS
@given(p=shapes)
def test_step_is_the_sequence(cell, dtype, p):
    p = dict(p, bidirectional=False, uneven=False)
    m, x, _ = _case(cell, dtype, p)
    out, state = m(x)
    s = None
    for t in range(x.shape[0]):
        y, s = m.step(x[t], s)
        assert same_bits(y, out[t])
    for a, b in zip(state_rows(s, slice(None)), state_rows(state, slice(None))):
        assert same_bits(a, b)


@pytest.mark.parametrize("split", THREAD_SPLITS[1:])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_threads_change_no_bit(cell, dtype, split):
    """Inference, training and every gradient, on one thread and split over threads by rows,
    by units or both (forced whatever the size)."""
    rng = np.random.default_rng(11)
    T, B, I, H = 6, 9, 13, 70
    lengths = np.array([6, 2, 0, 5, 6, 1, 3, 6, 4])
    x = rng.standard_normal((T, B, I)).astype(dtype)
    results = []
    for config in (THREAD_SPLITS[0], split):
        m = make(cell, I, H, 1 if cell == "jordan" else 2, cell != "jordan", dtype, seed=4)
        with threads(*config):
            out, state = m(x, None, lengths)
            out_t, _, tape = m.forward_train(x, None, lengths)
            dout = np.cos(out_t)
            dx, _ = m.backward(tape, dout)
        results.append([out, out_t, dx] + [m.grads[k] for k in sorted(m.grads)])
    for a, b in zip(*results):
        assert same_bits(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_the_blas_thread_count_changes_no_bit(cell):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 6, 20)).astype(np.float32)
    results = []
    for n in (1, 2):
        m = make(cell, 20, 48, seed=1)
        with threadpoolctl.threadpool_limits(n, user_api="blas"):
            out, _, tape = m.forward_train(x)
            dx, _ = m.backward(tape, out)
        results.append([out, dx] + [m.grads[k] for k in sorted(m.grads)])
    for a, b in zip(*results):
        assert same_bits(a, b)


_DIGEST_SCRIPT = """
import hashlib, json, sys, numpy as np, gru_cy
sys.path.insert(0, {tests!r})
from test_reproducibility import CELLS, make
digests = {{}}
rng = np.random.default_rng(0)
x = rng.standard_normal((7, 5, 33)).astype(np.float32)
for cell in CELLS:
    m = make(cell, 33, 40, seed=2)
    out, _, tape = m.forward_train(x, None, [7, 3, 5, 0, 7] if cell != "jordan" else None)
    dx, _ = m.backward(tape, np.cos(out))
    y, _ = m.step(x[0])
    h = hashlib.sha256()
    for a in [out, dx, y] + [m.grads[k] for k in sorted(m.grads)]:
        h.update(np.ascontiguousarray(a).tobytes())
    digests[cell] = h.hexdigest()
print(json.dumps(digests))
"""


def _digests(env):
    tests = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT.format(tests=tests)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_openblas_kernels_change_no_bit():
    """SciPy's OpenBLAS with its own choice of kernels and with its Haswell kernels (what every
    AVX2-only CPU gets): gru_cy's results do not move, training and step() included."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    default = _digests(env)
    env["OPENBLAS_CORETYPE"] = "Haswell"
    assert _digests(env) == default


def test_avx2_and_avx512_kernels_agree():
    if _core.cpu_isa() != "avx512":
        pytest.skip("needs a CPU with AVX-512")
    env = dict(os.environ)
    env["GRU_CY_ISA"] = "avx2"
    avx2 = _digests(env)
    env["GRU_CY_ISA"] = "avx512"
    assert _digests(env) == avx2


@pytest.mark.parametrize("isa", ["portable", "avx2", "avx512"])
def test_every_instruction_set_keeps_the_contract(isa):
    """The invariants above, under each instruction set this CPU runs (smaller draws)."""
    order = ("portable", "avx2", "avx512")
    if order.index(isa) > order.index(_core.cpu_isa()):
        pytest.skip(f"this CPU has no {isa}")
    before = _core.isa()
    try:
        _core.set_isa(isa)
        for cell in CELLS:
            for dtype in DTYPES:
                rng = np.random.default_rng(3)
                m = make(cell, 11, 37, 1 if cell == "jordan" else 2, False, dtype, seed=5)
                x = rng.standard_normal((5, 4, 11)).astype(dtype)
                lengths = np.array([5, 2, 4, 0])
                out, _ = m(x, None, lengths)
                out_t, _, _ = m.forward_train(x, None, lengths)
                assert same_bits(out, out_t)
                out_1, _ = m(np.ascontiguousarray(x[:, 2:3]), None, lengths[2:3])
                assert same_bits(out_1[:, 0], np.ascontiguousarray(out[:, 2]))
                full, _ = m(x)
                s = None
                for t in range(5):
                    y, s = m.step(x[t], s)
                    assert same_bits(y, full[t])
                with threads(2, 1, 2):
                    out_2, _ = m(x, None, lengths)
                assert same_bits(out, out_2)
    finally:
        _core.set_isa(before)
