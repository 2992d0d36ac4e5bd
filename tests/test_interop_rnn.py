"""gru_cy.RNN and the other frameworks: torch.nn.RNN, Keras SimpleRNN / Bidirectional(SimpleRNN),
the ONNX RNN operator, and the convert command.

Without any peer: golden files (tests/golden/rnn_onnx_*, rnn_keras_*, written by
tests/make_golden_interop_rnn.py) hold ONNX models with ONNX Runtime's outputs and Keras layer
configs and weights with Keras's outputs; gru_cy must reproduce them within 1e-5.
With the peers installed: live parity both ways with torch, Keras and ONNX Runtime.

Keras's go_backwards returns its sequence in processing order (reversed in time); gru_cy's out[t]
stays aligned with x[t], so the tests flip Keras's sequence. With a mask a plain Keras layer
repeats its last output over masked steps where gru_cy writes zeros: only valid steps are
compared there.
"""

import glob
import json
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gru_cy  # noqa: E402
from gru_cy.io import keras as keras_io  # noqa: E402
from gru_cy.io.convert import convert_cli  # noqa: E402
from helpers import assert_same_modules  # noqa: E402

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
ONNX_NODE = sorted(os.path.basename(p)[9:-5]
                   for p in glob.glob(os.path.join(GOLDEN_DIR, "rnn_onnx_*.onnx"))
                   if not os.path.basename(p).startswith(("rnn_onnx_unsupported_",
                                                           "rnn_onnx_torch_")))
ONNX_TORCH = sorted(os.path.basename(p)[9:-5]
                    for p in glob.glob(os.path.join(GOLDEN_DIR, "rnn_onnx_torch_*.onnx")))
ONNX_UNSUPPORTED = sorted(os.path.basename(p)[len("rnn_onnx_unsupported_"):-5]
                          for p in glob.glob(os.path.join(GOLDEN_DIR,
                                                          "rnn_onnx_unsupported_*.onnx")))
KERAS = sorted(glob.glob(os.path.join(GOLDEN_DIR, "rnn_keras_*.npz")))
TOL = dict(rtol=1e-5, atol=1e-5)


def _onnx_golden(name):
    with np.load(os.path.join(GOLDEN_DIR, f"rnn_onnx_{name}.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _as_onnx_outputs(m, out, h_n):
    """gru_cy's time-major (out, h_n) in ONNX's Y (T, D, B, H), Y_h layout."""
    T, B = out.shape[:2]
    return out.reshape(T, B, m.num_directions, m.hidden_size).transpose(0, 2, 1, 3), h_n


# ---- golden files: no optional package needed ----------------------------------------------------

def test_golden_files_exist():
    assert len(ONNX_NODE) >= 6 and len(ONNX_TORCH) >= 2 and len(ONNX_UNSUPPORTED) >= 3
    assert len(KERAS) >= 5


@pytest.mark.parametrize("name", ONNX_NODE)
def test_golden_onnx_node(name):
    meta, arrays = _onnx_golden(name)
    case = meta["case"]
    m = gru_cy.load_onnx(os.path.join(GOLDEN_DIR, f"rnn_onnx_{name}.onnx"))
    assert type(m) is gru_cy.RNN
    assert m.nonlinearity == ("relu" if case["activations"] and case["activations"][0] == "Relu"
                              else "tanh")
    assert m.bidirectional == (case["direction"] == "bidirectional")
    assert m.go_backwards == (case["direction"] == "reverse")
    assert (m.bias, m.hidden_size, m.input_size) == (case["bias"], case["H"], case["I"])
    out, h_n = m(arrays["X"], arrays.get("initial_h"), arrays.get("sequence_lens"))
    Y, Y_h = _as_onnx_outputs(m, out, h_n)
    np.testing.assert_allclose(Y, arrays["Y"], **TOL)
    np.testing.assert_allclose(Y_h, arrays["Y_h"], **TOL)


@pytest.mark.parametrize("name", ONNX_TORCH)
def test_golden_torch_onnx_export(name):
    """Graphs torch.onnx.export(dynamo=False) wrote for nn.RNN (layers, directions, batch_first,
    relu and tanh, with and without constant folding): (out, h_n) are the graph's outputs."""
    meta, arrays = _onnx_golden(name)
    case = meta["case"]
    m = gru_cy.load_onnx(os.path.join(GOLDEN_DIR, f"rnn_onnx_{name}.onnx"))
    assert (type(m), m.num_layers, m.nonlinearity, m.bidirectional, m.batch_first, m.bias) == \
        (gru_cy.RNN, case["L"], case["nonlinearity"], case["bidirectional"],
         case["batch_first"], case["bias"])
    out, h_n = m(arrays["X"], arrays.get("initial_h"))
    np.testing.assert_allclose(out, arrays["Y"], **TOL)
    np.testing.assert_allclose(h_n, arrays["Y_h"], **TOL)


@pytest.mark.parametrize("name", ONNX_UNSUPPORTED)
def test_golden_onnx_unsupported_attributes_are_named(name):
    with pytest.raises(NotImplementedError, match="cannot honour: .*(activations|clip)"):
        gru_cy.load_onnx(os.path.join(GOLDEN_DIR, f"rnn_onnx_unsupported_{name}.onnx"))


def _keras_golden(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    specs = json.loads(str(arrays.pop("spec")))
    counter = [0]

    def fill(spec):
        if spec["class_name"] == "SimpleRNN":
            i = counter[0]
            counter[0] += 1
            spec["weights"] = [arrays[f"w{i}_{j}"] for j in range(3) if f"w{i}_{j}" in arrays]
        else:
            fill(spec["forward"])
            fill(spec["backward"])
        return spec

    return [fill(s) for s in specs], arrays


def _compare_keras(m, out, h_n, keras_out, keras_states, lengths, plain_last):
    T = out.shape[1]
    valid = np.ones(out.shape[:2], bool) if lengths is None else \
        np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    if m.go_backwards:
        keras_out = keras_out[:, ::-1]
    if plain_last:
        np.testing.assert_allclose(out[valid], keras_out[valid], **TOL)
    else:  # Bidirectional zeroes masked steps, as gru_cy does
        np.testing.assert_allclose(out, keras_out, **TOL)
    D = m.num_directions
    for d, state in enumerate(keras_states):
        np.testing.assert_allclose(h_n[-D + d], state, **TOL)


@pytest.mark.parametrize("path", KERAS, ids=os.path.basename)
def test_golden_keras(path):
    specs, arrays = _keras_golden(path)
    m = keras_io._from_keras_specs(specs)
    assert type(m) is gru_cy.RNN and m.batch_first and m.num_layers == len(specs)
    first = specs[0] if specs[0]["class_name"] == "SimpleRNN" else specs[0]["forward"]
    assert m.nonlinearity == first["config"].get("activation", "tanh")
    lengths = arrays.get("lengths")
    out, h_n = m(arrays["x"], lengths=lengths)
    states = [arrays[k] for k in sorted(k for k in arrays if k.startswith("h"))]
    _compare_keras(m, out, h_n, arrays["out"], states, lengths,
                   specs[-1]["class_name"] == "SimpleRNN")


def test_keras_single_bias_is_bias_ih():
    specs, _ = _keras_golden(os.path.join(GOLDEN_DIR, "rnn_keras_tanh_masked.npz"))
    m = keras_io._from_keras_specs(specs)
    np.testing.assert_array_equal(m.params["bias_ih_l0"], specs[0]["weights"][2])
    assert np.all(m.params["bias_hh_l0"] == 0)


def test_keras_activation_other_than_tanh_relu_is_refused():
    specs, _ = _keras_golden(os.path.join(GOLDEN_DIR, "rnn_keras_relu_nobias.npz"))
    specs[0]["config"]["activation"] = "sigmoid"
    with pytest.raises(ValueError, match="activation='sigmoid' \\(gru_cy computes tanh or relu"):
        keras_io._from_keras_specs(specs)


def test_state_dict_of_an_rnn_is_recognised_by_its_rows():
    from gru_cy.io.torch import config_from_state_dict
    m = gru_cy.RNN(3, 4, 2, bidirectional=True)
    config, state, ignored = config_from_state_dict({f"rnn.{k}": v
                                                     for k, v in m.state_dict().items()})
    assert config["kind"] == "RNN" and config["num_layers"] == 2 and config["bidirectional"]
    assert not ignored
    with pytest.raises(ValueError, match="a GRU needs \\(3H, H\\); this looks like an Elman RNN"):
        gru_cy.GRU.from_torch(m.state_dict())


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_npz_round_trip_and_convert_to_onnx_and_back(tmp_path, act, bidirectional):
    m = gru_cy.RNN(3, 4, 2, act, bidirectional=bidirectional, seed=3)
    m.save(tmp_path / "m.npz")
    back = gru_cy.load(tmp_path / "m.npz")
    assert type(back) is gru_cy.RNN
    assert_same_modules(m, back)
    assert convert_cli(str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")) == 0
    from_onnx = gru_cy.load_onnx(tmp_path / "m.onnx")
    assert_same_modules(m, from_onnx)
    go_back = gru_cy.RNN(3, 4, 1, act, go_backwards=True, seed=3)
    go_back.to_onnx(tmp_path / "r.onnx")
    assert_same_modules(go_back, gru_cy.load_onnx(tmp_path / "r.onnx"))


# ---- live peers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_torch_both_ways(act):
    torch = pytest.importorskip("torch")
    t = torch.nn.RNN(3, 4, 2, nonlinearity=act, bidirectional=True, batch_first=True).double()
    m = gru_cy.RNN.from_torch(t)
    assert (m.nonlinearity, m.dtype, m.batch_first) == (act, np.float64, True)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out, h_n = m(x)
    out_t, h_t = t(torch.tensor(x))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n, h_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    back = m.to_torch()
    assert isinstance(back, torch.nn.RNN) and back.nonlinearity == act
    for name, p in back.named_parameters():
        np.testing.assert_array_equal(p.detach().numpy(), m.params[name])
    with pytest.raises(ValueError, match="go_backwards=True .* no torch.nn.RNN form"):
        gru_cy.RNN(3, 4, go_backwards=True).to_torch()


def test_convert_torch_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    t = torch.nn.RNN(3, 4, 2)
    torch.save(t.state_dict(), tmp_path / "rnn.pt")
    assert convert_cli(str(tmp_path / "rnn.pt"), str(tmp_path / "rnn.npz")) == 0
    m = gru_cy.load(tmp_path / "rnn.npz")
    assert type(m) is gru_cy.RNN and m.nonlinearity == "tanh"
    for name, p in t.named_parameters():
        np.testing.assert_array_equal(m.params[name], p.detach().numpy())
    assert convert_cli(str(tmp_path / "rnn.npz"), str(tmp_path / "back.pt")) == 0
    state = torch.load(tmp_path / "back.pt", weights_only=True)
    for name, p in t.named_parameters():
        np.testing.assert_array_equal(state[name].numpy(), p.detach().numpy())


@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime")


def _ort_run(ort, path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("config", [dict(bidirectional=True), dict(go_backwards=True),
                                    dict(batch_first=True, num_layers=3, bias=False)],
                         ids=["bidirectional", "reverse", "batch_first3_nobias"])
def test_onnx_runtime_runs_exported_models(ort, tmp_path, act, config):
    config = dict(config)
    L = config.pop("num_layers", 2)
    m = gru_cy.RNN(3, 5, L, act, seed=4, **config)
    D = m.num_directions
    path = m.to_onnx(tmp_path / "m.onnx", with_h0=True, with_lengths=True)
    rng = np.random.default_rng(1)
    T, B = 6, 4
    x = rng.standard_normal((B, T, 3) if m.batch_first else (T, B, 3)).astype(np.float32)
    h0 = rng.standard_normal((L * D, B, 5)).astype(np.float32)
    lengths = np.array([6, 0, 3, 1], np.int32)
    Y, Y_h = _ort_run(ort, path, {"input": x, "h0": h0, "lengths": lengths})
    out, h_n = m(x, h0, lengths)
    np.testing.assert_allclose(Y, out, **TOL)
    np.testing.assert_allclose(Y_h, h_n, **TOL)


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_load_onnx_live(ort, tmp_path, act, direction):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(2)
    D = 2 if direction == "bidirectional" else 1
    T, B, I, H = 5, 3, 4, 6
    inits = [numpy_helper.from_array(rng.uniform(-.5, .5, shape).astype(np.float32), name)
             for name, shape in (("W", (D, H, I)), ("R", (D, H, H)), ("B", (D, 2 * H)))]
    node = helper.make_node("RNN", ["X", "W", "R", "B", "L", "H0"], ["Y", "Y_h"], hidden_size=H,
                            direction=direction, activations=[act.capitalize()] * D)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I]),
         helper.make_tensor_value_info("L", TensorProto.INT32, [B]),
         helper.make_tensor_value_info("H0", TensorProto.FLOAT, [D, B, H])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "rnn.onnx"
    onnx.save(model, path)
    feeds = {"X": rng.standard_normal((T, B, I)).astype(np.float32),
             "L": np.array([5, 2, 4], np.int32),
             "H0": rng.standard_normal((D, B, H)).astype(np.float32)}
    Y, Y_h = _ort_run(ort, path, feeds)
    m = gru_cy.load_onnx(path)
    assert m.nonlinearity == act
    out, h_n = m(feeds["X"], feeds["H0"], feeds["L"])
    Y_ours, Y_h_ours = _as_onnx_outputs(m, out, h_n)
    np.testing.assert_allclose(Y_ours, Y, **TOL)
    np.testing.assert_allclose(Y_h_ours, Y_h, **TOL)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_load_torch_onnx_export_live(ort, tmp_path, act):
    torch = pytest.importorskip("torch")
    t = torch.nn.RNN(3, 4, 2, nonlinearity=act, bidirectional=True)
    x = torch.randn(5, 2, 3)
    path = tmp_path / "t.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(t, (x,), str(path), dynamo=False)
        except Exception as exc:  # the legacy exporter may be missing in a future torch
            pytest.skip(f"torch.onnx.export(dynamo=False) failed: {exc!r}")
    m = gru_cy.load_onnx(path)
    assert m.nonlinearity == act and m.num_layers == 2 and m.bidirectional
    out, h_n = m(x.numpy())
    out_t, h_t = t(x)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(h_n, h_t.detach().numpy(), **TOL)


def test_dynamo_export_of_an_rnn_is_explained(tmp_path):
    """torch.onnx.export(dynamo=True) writes no RNN node for nn.RNN: it unrolls the time loop
    for the traced length into MatMul/Add/Tanh nodes, which gru_cy refuses with a hint."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    t = torch.nn.RNN(3, 4)
    path = tmp_path / "d.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(t, (torch.randn(5, 2, 3),), str(path), dynamo=True, verbose=False)
        except Exception as exc:
            pytest.skip(f"torch.onnx.export(dynamo=True) failed: {exc!r}")
    with pytest.raises(ValueError, match="dynamo=True, which unrolls the time loop"):
        gru_cy.load_onnx(path)


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("kind", ["plain", "go_backwards", "bidirectional", "stack"])
def test_keras_both_ways(act, kind):
    keras = pytest.importorskip("keras")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip("needs Keras 3")
    L = 2 if kind == "stack" else 1
    m = gru_cy.RNN(3, 4, L, act, bidirectional=kind in ("bidirectional", "stack"),
                   go_backwards=kind == "go_backwards", batch_first=True, seed=5)
    layer = m.to_keras()
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    keras_out = keras.ops.convert_to_numpy(layer(x))
    out, _ = m(x)
    if m.go_backwards:
        keras_out = keras_out[:, ::-1]
    np.testing.assert_allclose(out, keras_out, **TOL)
    back = gru_cy.RNN.from_keras(layer)
    assert back.nonlinearity == act
    np.testing.assert_allclose(back(x)[0], out, rtol=1e-6, atol=1e-7)
    assert set(back.params) == set(m.params)
