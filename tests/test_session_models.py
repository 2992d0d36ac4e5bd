"""InferenceSession on whole models exported from PyTorch, against ONNX Runtime.

Without any optional package: the models in tests/golden/session_*_{torchscript,dynamo}
(made by tests/make_golden_session_models.py: embedding + GRU stack + softmax head
with its state as input and output, a Conv1d + BatchNorm + MaxPool front end before
an LSTM, bidirectional LSTM and GRU taggers, a Conv2d front end before an Elman RNN;
both exporters, dynamic batch and time axes) must reproduce ONNX Runtime's outputs
within 1e-4 for every stored shape, and a streaming run over 100 calls (each fed the
previous call's state) ONNX Runtime's. Shapes ONNX Runtime refuses (an exporter
that fixed an axis) must raise ValueError. With torch and onnxruntime installed, the
same checks run on fresh exports, and against PyTorch's own outputs.
"""

import glob
import json
import os
import warnings

import numpy as np
import pytest

import gru_cy
from gru_cy.runtime import Stream
from session_models import MODELS, SHAPES, TORCHSCRIPT_ONLY, export, torch_outputs

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
CASES = sorted(os.path.basename(p)[8:-5]
               for p in glob.glob(os.path.join(GOLDEN, "session_*_*.onnx")))
TOL = dict(rtol=1e-4, atol=1e-4)


def _golden(case):
    with np.load(os.path.join(GOLDEN, f"session_{case}.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    runs = {}
    for key, value in arrays.items():
        shape, _, part = key.partition("::")
        runs.setdefault(shape, {})[part] = value
    return meta, runs


def test_every_model_has_golden_files():
    assert len(CASES) == 2 * len(MODELS) - len(TORCHSCRIPT_ONLY)


def _check_runs(session, runs, label):
    for shape, parts in runs.items():
        if shape == "stream":
            continue
        feeds = {k[4:]: v for k, v in parts.items() if k.startswith("in::")}
        expected = [parts[f"out{k}"] for k in range(sum(p.startswith("out") for p in parts))]
        for attempt in ("first", "second"):
            got = session.run(None, feeds)
            for k, (g, e) in enumerate(zip(got, expected)):
                assert g.shape == e.shape and g.dtype == e.dtype, (label, shape, k)
                np.testing.assert_allclose(g, e, **TOL,
                                           err_msg=f"{label} {shape} output {k} ({attempt} run)")


@pytest.mark.parametrize("case", CASES)
def test_golden_model(case):
    meta, runs = _golden(case)
    session = gru_cy.InferenceSession(os.path.join(GOLDEN, f"session_{case}.onnx"))
    _check_runs(session, runs, case)
    first = next(iter(v for k, v in runs.items() if k != "stream"))
    feeds = {k[4:]: v for k, v in first.items() if k.startswith("in::")}
    for B, T in meta["shapes_failing"]:   # the exporter fixed an axis: ONNX Runtime refuses
        resized = {k: np.resize(v, _resize(v.shape, B, T, first)) for k, v in feeds.items()}
        with pytest.raises(ValueError):
            session.run(None, resized)


def _resize(shape, B, T, first):
    """A shape like the first stored input's, with its batch and time axes changed."""
    shape = list(shape)
    b0, t0 = SHAPES[0]
    return [B if d == b0 else T if d == t0 else d for d in shape]


def _stream(session, tokens, h0):
    stream = Stream(session, {"h0": "h_n"}, initial={"h0": h0})
    probs = [stream.run(["probs"], {"tokens": tokens[:, t:t + 1]})[0]
             for t in range(tokens.shape[1])]
    return np.concatenate(probs, axis=1), stream.state["h0"]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_golden_streaming_over_100_calls(exporter):
    _, runs = _golden(f"text_gru_{exporter}")
    parts = runs["stream"]
    session = gru_cy.InferenceSession(os.path.join(GOLDEN, f"session_text_gru_{exporter}.onnx"))
    probs, h_n = _stream(session, parts["tokens"], parts["h0"])
    np.testing.assert_allclose(probs, parts["probs"], **TOL)
    np.testing.assert_allclose(h_n, parts["h_n"], **TOL)
    # Chunk by chunk equals one call over the whole sequence.
    whole, h_whole = session.run(None, {"tokens": parts["tokens"], "h0": parts["h0"]})
    np.testing.assert_allclose(probs, whole, **TOL)
    np.testing.assert_allclose(h_n, h_whole, **TOL)


def test_stream_starts_from_zeros_named_by_the_other_inputs():
    path = os.path.join(GOLDEN, "session_text_gru_torchscript.onnx")
    session = gru_cy.InferenceSession(path)
    tokens = np.arange(12, dtype=np.int64).reshape(3, 4)
    stream = Stream(session, {"h0": "h_n"})
    first = stream.run(None, {"tokens": tokens[:, :2]})
    assert stream.state["h0"].shape == (2, 3, 16)
    second = stream.run(["probs"], {"tokens": tokens[:, 2:]})
    whole = session.run(["probs"], {"tokens": tokens, "h0": np.zeros((2, 3, 16), np.float32)})
    np.testing.assert_allclose(np.concatenate([first[0], second[0]], axis=1), whole[0], **TOL)
    stream.reset()
    again = stream.run(None, {"tokens": tokens[:, :2]})
    np.testing.assert_array_equal(again[0], first[0])
    with pytest.raises(ValueError, match="state input"):
        stream.run(None, {"tokens": tokens, "h0": np.zeros((2, 3, 16), np.float32)})
    with pytest.raises(ValueError, match="not an input"):
        Stream(session, {"h": "h_n"})
    with pytest.raises(ValueError, match="not an output"):
        Stream(session, {"h0": "h"})


def test_a_stack_of_nodes_runs_as_one_module():
    """The TorchScript exporter writes a 2-layer GRU as two nodes joined by a Squeeze, their
    initial states slices of h0: one step on a 2-layer module, whose results the golden
    test above holds to ONNX Runtime's."""
    session = gru_cy.InferenceSession(os.path.join(GOLDEN, "session_text_gru_torchscript.onnx"))
    kinds = [s.op_type for s in session._plan.steps]
    assert kinds.count("GRU") == 1 and kinds.count("Squeeze") == 1 and "Slice" not in kinds
    assert " + " in next(s.label for s in session._plan.steps if s.op_type == "GRU")


def test_inputs_and_outputs_describe_the_graph():
    session = gru_cy.InferenceSession(os.path.join(GOLDEN,
                                                   "session_text_gru_torchscript.onnx"))
    inputs, outputs = session.get_inputs(), session.get_outputs()
    assert [(a.name, a.shape, a.type) for a in inputs] == [
        ("tokens", ["batch", "time"], "tensor(int64)"), ("h0", [2, "batch", 16], "tensor(float)")]
    assert [(a.name, a.shape, a.type) for a in outputs] == [
        ("probs", ["batch", "time", 5], "tensor(float)"),
        ("h_n", [2, "batch", 16], "tensor(float)")]


# ---------------------------------------------------------------------------
# live: torch, onnxruntime (and onnxscript for the dynamo exporter)


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("torch")
    return pytest.importorskip("onnxruntime")


# The dynamo exporter takes seconds per model: live for two models, the golden files
# (written by it) cover the others.
LIVE = [(name, False) for name in MODELS] + [("text_gru", True), ("speech_conv_lstm", True)]


@pytest.mark.parametrize("name, dynamo", LIVE,
                         ids=[f"{'dynamo' if d else 'torchscript'}-{n}" for n, d in LIVE])
def test_live_export_against_onnx_runtime_and_torch(ort, tmp_path, name, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    path = str(tmp_path / f"{name}.onnx")
    try:
        module, inputs, _, make_inputs = export(name, dynamo, path)
    except Exception as exc:  # noqa: BLE001  (an exporter this test does not know)
        pytest.skip(f"torch.onnx.export(dynamo={dynamo}) failed: {exc!r}")
    reference = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    session = gru_cy.InferenceSession(path)
    assert [(a.name, a.shape, a.type) for a in session.get_inputs()] == \
        [(a.name, a.shape, a.type) for a in reference.get_inputs()]
    assert [a.name for a in session.get_outputs()] == \
        [a.name for a in reference.get_outputs()]
    for B, T in SHAPES:
        feeds = make_inputs(B, T)
        try:
            expected = reference.run(None, feeds)
        except Exception:  # noqa: BLE001  (the exporter fixed this axis)
            with pytest.raises(ValueError):
                session.run(None, feeds)
            continue
        for _ in range(2):
            got = session.run(None, feeds)
            for g, e in zip(got, expected):
                np.testing.assert_allclose(g, e, **TOL)
        for g, t in zip(got, torch_outputs(module, inputs, feeds)):
            np.testing.assert_allclose(g, t, **TOL)


def test_live_streaming_against_onnx_runtime(ort, tmp_path):
    path = str(tmp_path / "text_gru.onnx")
    _, _, _, make_inputs = export("text_gru", False, path)
    feeds = make_inputs(3, 100)
    reference = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ref_probs, h = [], feeds["h0"]
    for t in range(100):
        p, h = reference.run(None, {"tokens": feeds["tokens"][:, t:t + 1], "h0": h})
        ref_probs.append(p)
    probs, h_n = _stream(gru_cy.InferenceSession(path), feeds["tokens"], feeds["h0"])
    np.testing.assert_allclose(probs, np.concatenate(ref_probs, axis=1), **TOL)
    np.testing.assert_allclose(h_n, h, **TOL)


def test_live_keras_export_against_onnx_runtime(ort, tmp_path, monkeypatch):
    """Keras 3's own ONNX export (through torch.onnx with the torch backend)."""
    if os.environ.get("KERAS_BACKEND", "torch") != "torch":
        pytest.skip("Keras 3 exports to ONNX here through its torch backend")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    inputs = keras.Input((None, 6))
    x = keras.layers.GRU(8, return_sequences=True)(inputs)
    x = keras.layers.LSTM(5)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.predict(np.zeros((2, 4, 6), np.float32), verbose=0)
    path = str(tmp_path / "keras.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.export(path, format="onnx", verbose=False)
    except Exception as exc:  # noqa: BLE001  (an export this Keras cannot make)
        pytest.skip(f"Keras's ONNX export failed: {exc!r}")
    session = gru_cy.InferenceSession(path)
    reference = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for B, T in ((2, 4), (3, 9)):
        x = np.random.default_rng(T).standard_normal((B, T, 6)).astype(np.float32)
        for g, e in zip(session.run(None, {name: x}), reference.run(None, {name: x})):
            np.testing.assert_allclose(g, e, **TOL)
