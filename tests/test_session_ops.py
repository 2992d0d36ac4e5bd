"""InferenceSession, one operator at a time, against the ONNX specification's semantics.

Without any optional package: every model in tests/golden/session_ops.npz (made by
tests/make_golden_session.py with onnx's reference implementation, or ONNX Runtime
where the case says why) must give the stored outputs: same shape and type, values
within 1e-5. Each model runs twice, since the first run with new shapes walks the
plan step by step and later runs call the specialised function. With onnx
installed, every case is also rebuilt and run against ReferenceEvaluator live; with
onnxruntime, the recurrent cases against ONNX Runtime.
"""

import json
import os

import numpy as np
import pytest

import gru_cy
from session_cases import build, build_recurrent, cases, recurrent_cases

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "session_ops.npz")
TOL = dict(rtol=1e-5, atol=1e-5)


def _golden():
    """{case: {part: array}} from the file's blob and index (tests/make_golden_session.py)."""
    with np.load(GOLDEN, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        blob = data["blob"].tobytes()
    grouped = {}
    for key, (offset, dtype, shape) in meta.pop("arrays").items():
        count = int(np.prod(shape))
        value = np.frombuffer(blob, np.dtype(dtype), count, offset).reshape(shape).copy()
        case, _, part = key.partition("::")
        grouped.setdefault(case, {})[part] = value
    return meta, grouped


META, GOLDEN_CASES = _golden()


def _check(session, feeds, expected, label):
    for attempt in ("first run", "second run"):
        got = session.run(None, feeds)
        assert len(got) == len(expected), label
        for k, (g, e) in enumerate(zip(got, expected)):
            e = np.asarray(e)
            assert g.shape == e.shape, f"{label} ({attempt}) output {k}: {g.shape} vs {e.shape}"
            assert g.dtype == e.dtype, f"{label} ({attempt}) output {k}: {g.dtype} vs {e.dtype}"
            np.testing.assert_allclose(g, e, **TOL, equal_nan=True,
                                       err_msg=f"{label} ({attempt}) output {k}")


def test_golden_file_covers_the_cases():
    names = {c.name for c in cases()} | {c[0] for c in recurrent_cases()}
    stored = {k.split("@")[0] for k in GOLDEN_CASES}
    assert names == stored, "tests/make_golden_session.py must be rerun"


@pytest.mark.parametrize("key", sorted(GOLDEN_CASES))
def test_golden(key):
    parts = GOLDEN_CASES[key]
    feeds = {k[4:]: v for k, v in parts.items() if k.startswith("in::")}
    expected = [parts[f"out{k}"] for k in range(sum(p.startswith("out") for p in parts))]
    session = gru_cy.InferenceSession(parts["model"].tobytes())
    inputs_before = {k: v.copy() for k, v in feeds.items()}
    _check(session, feeds, expected, key)
    for k, v in feeds.items():   # the caller's arrays are never written
        np.testing.assert_array_equal(v, inputs_before[k])


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.mark.parametrize("case", [c for c in cases() if c.reference == "onnx"],
                         ids=lambda c: c.name)
def test_live_against_the_reference_implementation(onnx, case):
    from onnx.reference import ReferenceEvaluator

    for stored in (False, True):
        model, feeds = build(case, stored, onnx)
        expected = ReferenceEvaluator(model).run(None, feeds)
        _check(gru_cy.InferenceSession(model.SerializeToString()), feeds, expected,
               f"{case.name} stored={stored}")


@pytest.mark.parametrize("case", [c for c in recurrent_cases()], ids=lambda c: c[0])
def test_live_recurrent_against_onnx_runtime(onnx, case):
    ort = pytest.importorskip("onnxruntime")
    model, feeds = build_recurrent(*case, onnx)
    data = model.SerializeToString()
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    _check(gru_cy.InferenceSession(data), feeds, expected, case[0])
