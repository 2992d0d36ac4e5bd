"""IEEE special values and determinism.

- NaN and Inf in inputs, initial states or weights propagate as IEEE
  arithmetic says: the results, NaN positions included, equal the NumPy
  reference run on the same values (docs/architecture.md), and nothing crashes.
- Values at padded positions (t >= len_b) take no part in the maths, NaN or
  not, in forward and in backward.
- Results never depend on memory contents: the same call gives bitwise the
  same arrays every time, after the heap has been dirtied with NaN, and in a
  process where every workspace and tape starts NaN-filled (GRU_CY_POISON=1)
  as in one where it does not.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gru_cy
from reference import ref_gru_backward, ref_gru_forward
from helpers import same_bits

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}
T, B, I, H = 6, 3, 4, 5


def _run(gru, x, h0=None, lengths=None, dout=None, dh_n=None):
    """out, h_n, dx, dh0 and a copy of the gradients of one training step."""
    gru.zero_grad()
    out, h_n, tape = gru.forward_train(x, h0=h0, lengths=lengths)
    if dout is None:
        dout = np.ones_like(out)
    dx, dh0 = gru.backward(tape, dout, dh_n)
    return out, h_n, dx, dh0, {k: v.copy() for k, v in gru.grads.items()}


def _reference(gru, x, h0=None, lengths=None, dout=None, dh_n=None):
    with np.errstate(all="ignore"):   # NaN and Inf are the point here
        return _reference_raw(gru, x, h0, lengths, dout, dh_n)


def _reference_raw(gru, x, h0, lengths, dout, dh_n):
    params = {k: np.asarray(v, np.float64) for k, v in gru.params.items()}
    x64 = np.asarray(x, np.float64)
    out, h_n, cache = ref_gru_forward(
        x64, params, num_layers=gru.num_layers, bidirectional=gru.bidirectional,
        reset_after=gru.reset_after, bias=gru.bias,
        h0=None if h0 is None else np.asarray(h0, np.float64), lengths=lengths)
    if dout is None:
        dout = np.ones_like(out)
    dx, dh0, grads = ref_gru_backward(cache, np.asarray(dout, np.float64),
                                      None if dh_n is None else np.asarray(dh_n, np.float64))
    return out, h_n, dx, dh0, grads


def _assert_matches(actual, expected, dtype):
    """Equal within the dtype's tolerance, with NaN exactly where the reference has NaN
    and infinities of the same sign where it has infinities."""
    names = ["out", "h_n", "dx", "dh0"]
    pairs = list(zip(names, actual[:4], expected[:4]))
    pairs += [(f"grads[{k!r}]", actual[4][k], expected[4][k]) for k in expected[4]]
    for name, a, e in pairs:
        np.testing.assert_allclose(a, e, err_msg=name, equal_nan=True, **TOL[dtype])


def _module(dtype, **kwargs):
    return gru_cy.GRU(I, H, dtype=dtype, seed=3, **kwargs)


def _x(dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((T, B, I)).astype(dtype)


VARIANTS = [
    dict(),
    dict(reset_after=False),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, reset_after=False, bidirectional=True, bias=False),
]


def _vid(v):
    return ",".join(f"{k}={val}" for k, val in v.items()) or "default"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS, ids=_vid)
@pytest.mark.parametrize("special", ["nan", "+inf", "-inf"])
def test_special_value_in_input_propagates_like_reference(dtype, variant, special):
    gru = _module(dtype, **variant)
    x = _x(dtype)
    x[2, 1, 0] = float(special)                   # one entry of sequence 1 at t = 2
    actual = _run(gru, x)
    expected = _reference(gru, x)
    _assert_matches(actual, expected, dtype)
    out = actual[0]
    # Sequences 0 and 2 never see the value; sequence 1 does, from t = 2 on (and before
    # t = 2 too in the reverse direction).
    assert np.isfinite(out[:, [0, 2]]).all()
    if special == "nan":
        assert np.isnan(out[2:, 1, :H]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS[:2], ids=_vid)
@pytest.mark.parametrize("where", ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"])
@pytest.mark.parametrize("special", ["nan", "+inf"])
def test_special_value_in_weights_propagates_like_reference(dtype, variant, where, special):
    gru = _module(dtype, **variant)
    gru.params[where].reshape(-1)[H + 1] = float(special)   # a z-gate entry
    x = _x(dtype)
    _assert_matches(_run(gru, x), _reference(gru, x), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_special_values_in_h0_and_gradients_propagate_like_reference(dtype, reset_after):
    gru = _module(dtype, reset_after=reset_after)
    x = _x(dtype)
    h0 = np.zeros((1, B, H), dtype)
    h0[0, 0, 1] = np.nan
    h0[0, 2, 3] = np.inf
    dout = np.ones((T, B, H), dtype)
    dout[4, 1, 2] = np.nan
    actual = _run(gru, x, h0=h0, dout=dout)
    _assert_matches(actual, _reference(gru, x, h0=h0, dout=dout), dtype)
    assert np.isnan(actual[0][:, 0]).all() and np.isfinite(actual[0][:, 1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_huge_finite_inputs_saturate_without_overflow(dtype):
    gru = _module(dtype)
    # Large enough to saturate every gate, small enough that x @ W_ih.T stays finite.
    x = _x(dtype) * dtype(np.finfo(dtype).max ** 0.75)
    out, h_n = gru(x)
    assert np.isfinite(out).all() and np.isfinite(h_n).all()
    assert np.abs(out).max() <= 1.0
    np.testing.assert_allclose(out, _reference(gru, x)[0], **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS, ids=_vid)
@pytest.mark.parametrize("fill", ["nan", "inf"])
def test_padding_values_take_no_part_in_forward(dtype, variant, fill):
    gru = _module(dtype, **variant)
    lengths = [T, 2, 0]
    clean = _x(dtype)
    for b, n in enumerate(lengths):
        clean[n:, b] = 0
    dirty = clean.copy()
    for b, n in enumerate(lengths):
        dirty[n:, b] = float(fill)
    out_c, h_c = gru(clean, lengths=lengths)
    out_d, h_d = gru(dirty, lengths=lengths)
    assert np.isfinite(out_d).all() and np.isfinite(h_d).all()
    assert same_bits(out_c, out_d) and same_bits(h_c, h_d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_padding_values_take_no_part_in_backward(dtype):
    gru = _module(dtype)
    lengths = [T, 2, 0]
    x = _x(dtype)
    for b, n in enumerate(lengths):
        x[n:, b] = np.nan
    actual = _run(gru, x, lengths=lengths)
    clean = np.nan_to_num(x, nan=0.0)
    _assert_matches(actual, _run(gru, clean, lengths=lengths), dtype)
    for name, g in actual[4].items():
        assert np.isfinite(g).all(), name


# -- determinism -------------------------------------------------------------------------

DETERMINISM_CASES = [
    dict(module=dict(), call=dict()),
    dict(module=dict(num_layers=2, bidirectional=True), call=dict(lengths=[T, 3, 0])),
    dict(module=dict(reset_after=False, bias=False), call=dict(lengths=[1, T, 4])),
    dict(module=dict(num_layers=3, dropout=0.4, batch_first=True), call=dict()),
    dict(module=dict(go_backwards=True), call=dict(lengths=[2, 5, T])),
]


def _everything(module_kwargs, call_kwargs, dtype):
    """Every result of inference, training and streaming, as bytes."""
    gru = gru_cy.GRU(I, H, dtype=dtype, seed=11, **module_kwargs)
    x = _x(dtype, seed=5)
    if module_kwargs.get("batch_first"):
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    results = list(gru(x, **call_kwargs))
    out, h_n, dx, dh0, grads = _run(gru, x, **call_kwargs)
    results += [out, h_n, dx, dh0] + [grads[k] for k in sorted(grads)]
    if not gru.bidirectional:
        h = None
        for t in range(T):
            y, h = gru.step(x[:, t] if gru.batch_first else x[t], h)
            results += [y, h]
    return [np.ascontiguousarray(r).tobytes() for r in results]


def _dirty_the_heap():
    """Free many NaN-filled blocks, so that the next allocations likely reuse them."""
    blocks = [np.full(n, np.nan) for n in (16, 64, 256, 1024, 4096, 1 << 15, 1 << 18)
              for _ in range(8)]
    del blocks


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", DETERMINISM_CASES,
                         ids=lambda c: _vid({**c["module"], **c["call"]}))
def test_results_are_bitwise_identical_across_runs(dtype, case):
    first = _everything(case["module"], case["call"], dtype)
    _dirty_the_heap()
    second = _everything(case["module"], case["call"], dtype)
    assert len(first) == len(second)
    for i, (a, b) in enumerate(zip(first, second)):
        assert same_bits(a, b), f"result {i} differs between two identical runs"


_POISON_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import gru_cy
    from gru_cy.nn import base as _base

    cases = json.loads(sys.argv[1])
    out = {"poison": bool(_base._POISON), "results": {}}
    for i, case in enumerate(cases):
        dtype = np.dtype(case["dtype"])
        T, B, I, H = case["T"], case["B"], case["I"], case["H"]
        gru = gru_cy.GRU(I, H, dtype=dtype, seed=7, **case["module"])
        x = np.random.default_rng(i).standard_normal((T, B, I)).astype(dtype)
        lengths = case.get("lengths")
        res = list(gru(x, lengths=lengths))
        o, h, tape = gru.forward_train(x, lengths=lengths)
        dout = np.random.default_rng(100 + i).standard_normal(o.shape).astype(dtype)
        res += [o, h] + list(gru.backward(tape, dout, np.ones_like(h)))
        res += [gru.grads[k] for k in sorted(gru.grads)]
        if not gru.bidirectional and T:
            y, hs = gru.step(x[0])
            res += [y, hs]
        out["results"][str(i)] = [np.ascontiguousarray(r).tobytes().hex() for r in res]
        out.setdefault("finite", {})[str(i)] = bool(all(np.isfinite(r).all() for r in res))
    json.dump(out, sys.stdout)
""")

POISON_CASES = [
    dict(T=7, B=4, I=3, H=5, module=dict(), lengths=None),
    dict(T=7, B=4, I=3, H=5, module=dict(reset_after=False), lengths=[7, 3, 0, 1]),
    dict(T=6, B=3, I=4, H=4, module=dict(num_layers=2, bidirectional=True), lengths=[6, 0, 2]),
    dict(T=6, B=3, I=4, H=4, module=dict(num_layers=2, bidirectional=True, reset_after=False,
                                         bias=False), lengths=[1, 6, 5]),
    dict(T=5, B=2, I=3, H=6, module=dict(go_backwards=True), lengths=[3, 5]),
    # Unidirectional without lengths: inference takes the lean path, whose
    # layers below the top write into alternating workspace buffers.
    dict(T=6, B=3, I=4, H=5, module=dict(num_layers=3), lengths=None),
    dict(T=1, B=2, I=4, H=5, module=dict(num_layers=2, reset_after=False), lengths=None),
    dict(T=0, B=3, I=3, H=4, module=dict(), lengths=None),
    dict(T=4, B=0, I=3, H=4, module=dict(bidirectional=True), lengths=None),
    # Long enough that inference projects the input in several chunks.
    dict(T=1500, B=2, I=3, H=128, module=dict(), lengths=None),
    dict(T=1500, B=2, I=3, H=128, module=dict(bidirectional=True), lengths=[1500, 777]),
]


def _poison_run(poison, cases, cwd):
    env = dict(os.environ, GRU_CY_POISON="1" if poison else "0")
    # The child imports the very package under test, wherever it lives; it runs in an
    # empty folder so that a source checkout in the current folder cannot shadow it.
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(gru_cy.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", _POISON_SCRIPT, json.dumps(cases)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=cwd)
    assert proc.returncode == 0, f"child (GRU_CY_POISON={int(poison)}) failed:\n{proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["poison"] == poison
    assert all(result["finite"].values()), "finite inputs gave non-finite results"
    return result["results"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poisoned_workspaces_give_bitwise_the_same_results(dtype, tmp_path):
    cases = [dict(c, dtype=dtype) for c in POISON_CASES]
    clean = _poison_run(False, cases, tmp_path)
    poisoned = _poison_run(True, cases, tmp_path)
    for i, case in enumerate(cases):
        a, b = clean[str(i)], poisoned[str(i)]
        assert len(a) == len(b)
        for j, (ra, rb) in enumerate(zip(a, b)):
            assert same_bits(ra, rb), f"case {case}: result {j} changes when workspaces start as NaN"
