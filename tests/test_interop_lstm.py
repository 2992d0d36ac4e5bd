"""LSTM interop: torch.nn.LSTM both ways (with proj_size), Keras LSTM and Bidirectional(LSTM),
the ONNX LSTM operator (load_onnx / to_onnx), the convert command.

The golden files (tests/golden/lstm_*, made by tests/make_golden_lstm_interop.py) check the
ONNX and Keras weight mappings without onnxruntime, torch or Keras; the other tests use them
when installed.
"""

import glob
import json
import os
import warnings

import numpy as np
import pytest

import gru_cy
from gru_cy.io.keras import _from_keras_specs

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
ONNX_GOLDEN = sorted(glob.glob(os.path.join(GOLDEN_DIR, "lstm_onnx_*.onnx")))
KERAS_GOLDEN = sorted(glob.glob(os.path.join(GOLDEN_DIR, "lstm_keras_*.npz")))
TOL = dict(rtol=1e-5, atol=1e-5)


def _npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# -- golden files: no peer needed ---------------------------------------------------------


def test_golden_files_exist():
    assert len(ONNX_GOLDEN) >= 6 and len(KERAS_GOLDEN) >= 3


@pytest.mark.parametrize("path", ONNX_GOLDEN, ids=os.path.basename)
def test_onnx_golden(path):
    g = _npz(path[:-5] + ".npz")
    meta = json.loads(str(g["meta"]))
    m = gru_cy.load_onnx(path)
    assert type(m) is gru_cy.LSTM
    if meta["kind"] == "torch":
        out, (hn, cn) = m(g["X"])
        np.testing.assert_allclose(out, g["Y"], **TOL)
    else:
        hx = (g["initial_h"], g["initial_c"])
        out, (hn, cn) = m(g["X"], hx, lengths=g.get("sequence_lens"))
        T, D, B, H = g["Y"].shape
        np.testing.assert_allclose(out, g["Y"].transpose(0, 2, 1, 3).reshape(T, B, D * H), **TOL)
    np.testing.assert_allclose(hn, g["Y_h"], **TOL)
    np.testing.assert_allclose(cn, g["Y_c"], **TOL)


def _keras_golden(path):
    arrays = _npz(path)
    specs = json.loads(str(arrays.pop("spec")))
    counter = [0]

    def fill(spec):
        if spec["class_name"] == "LSTM":
            i = counter[0]
            counter[0] += 1
            spec["weights"] = [arrays[f"w{i}_{j}"] for j in range(3) if f"w{i}_{j}" in arrays]
        else:
            fill(spec["forward"])
            fill(spec["backward"])
        return spec

    return [fill(s) for s in specs], arrays


@pytest.mark.parametrize("path", KERAS_GOLDEN, ids=os.path.basename)
def test_keras_golden(path):
    specs, g = _keras_golden(path)
    m = _from_keras_specs(specs)
    assert type(m) is gru_cy.LSTM
    out, (hn, cn) = m(g["x"])
    keras_out = g["out"][:, ::-1] if m.go_backwards else g["out"]
    np.testing.assert_allclose(out, keras_out, **TOL)
    # Keras returns h, c (one direction) or h_fw, c_fw, h_bw, c_bw.
    for d in range(m.num_directions):
        np.testing.assert_allclose(hn[d], g[f"h{2 * d}"], **TOL)
        np.testing.assert_allclose(cn[d], g[f"h{2 * d + 1}"], **TOL)


# -- torch --------------------------------------------------------------------------------


@pytest.mark.parametrize("P,bi,L,bias", [(0, False, 1, True), (3, True, 2, True),
                                         (2, False, 3, False)])
def test_torch_both_ways(P, bi, L, bias):
    torch = pytest.importorskip("torch")
    t = torch.nn.LSTM(4, 6, num_layers=L, bidirectional=bi, proj_size=P, bias=bias).double()
    m = gru_cy.LSTM.from_torch(t)
    assert m.proj_size == P and m.dtype == np.float64 and m.num_layers == L
    x = np.random.default_rng(0).standard_normal((5, 3, 4))
    with torch.no_grad():
        ot, (ht, ct) = t(torch.tensor(x))
    out, (hn, cn) = m(x)
    np.testing.assert_allclose(out, ot.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hn, ht.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cn, ct.numpy(), rtol=1e-10, atol=1e-12)
    back = m.to_torch()
    assert isinstance(back, torch.nn.LSTM) and back.proj_size == P
    for name, p in back.named_parameters():
        np.testing.assert_array_equal(p.detach().numpy(), m.params[name])
    # A state dict (with a prefix, as in a larger model) gives the same module.
    sd = {f"encoder.lstm.{k}": v for k, v in t.state_dict().items()}
    m2 = gru_cy.LSTM.from_torch(sd)
    assert repr(m2) == repr(m)
    np.testing.assert_array_equal(m2(x)[0], out)
    m3 = gru_cy.io.torch.from_torch(t.state_dict())  # the cell from the gate rows
    assert type(m3) is gru_cy.LSTM and m3.proj_size == P


def test_torch_errors():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="go_backwards=True .* has no torch.nn.LSTM form"):
        gru_cy.LSTM(3, 4, go_backwards=True).to_torch()
    with pytest.raises(TypeError, match="expects a torch.nn.LSTM"):
        gru_cy.LSTM.from_torch(torch.nn.GRU(3, 4))
    sd = torch.nn.LSTM(3, 4, proj_size=2).state_dict()
    del sd["weight_hr_l0"]
    with pytest.raises(ValueError, match="weight_hh_l0 has shape"):
        gru_cy.LSTM.from_torch(sd)


# -- Keras --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _np(t):
    return np.asarray(t.detach().cpu() if hasattr(t, "detach") else t)


def test_keras_from_and_to(keras):
    L = keras.layers
    x = np.random.default_rng(1).standard_normal((2, 6, 3)).astype(np.float32)
    layer = L.LSTM(5, return_sequences=True, return_state=True)
    y, h, c = layer(x)
    layer.set_weights([w + 0.1 for w in layer.get_weights()])  # non-zero bias
    y, h, c = layer(x)
    m = gru_cy.LSTM.from_keras(layer)
    out, (hn, cn) = m(x)
    np.testing.assert_allclose(out, _np(y), **TOL)
    np.testing.assert_allclose(hn[0], _np(h), **TOL)
    np.testing.assert_allclose(cn[0], _np(c), **TOL)
    bi = L.Bidirectional(L.LSTM(5, return_sequences=True))
    yb = bi(x)
    mb = gru_cy.LSTM.from_keras(bi)
    assert mb.bidirectional
    np.testing.assert_allclose(mb(x)[0], _np(yb), **TOL)
    # to_keras: a stack of Bidirectional(LSTM) layers, gru_cy's biases folded into one
    m3 = gru_cy.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, seed=2)
    k3 = m3.to_keras()
    np.testing.assert_allclose(_np(k3(x)), m3(x)[0], **TOL)
    back = gru_cy.LSTM.from_keras(k3)
    np.testing.assert_allclose(back(x)[0], m3(x)[0], **TOL)
    np.testing.assert_array_equal(back.params["bias_ih_l1_reverse"],
                                  m3.params["bias_ih_l1_reverse"] + m3.params["bias_hh_l1_reverse"])


def test_keras_errors(keras):
    with pytest.raises(ValueError, match="proj_size=2 has no Keras LSTM form"):
        gru_cy.LSTM(3, 5, proj_size=2).to_keras()
    layer = keras.layers.LSTM(4, activation="relu")
    layer.build((None, None, 3))
    with pytest.raises(ValueError, match="activation='relu'"):
        gru_cy.LSTM.from_keras(layer)
    gru = keras.layers.GRU(4)
    gru.build((None, None, 3))
    with pytest.raises(ValueError, match="cannot convert a Keras GRU layer to a LSTM"):
        gru_cy.io.keras._from_keras_specs(gru_cy.io.keras._keras_specs(gru), cls=gru_cy.LSTM)


# -- ONNX ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bi,back,L", [(False, False, 1), (False, True, 1), (True, False, 2),
                                       (False, False, 3)])
def test_to_onnx_matches_onnxruntime(tmp_path, bi, back, L):
    ort = pytest.importorskip("onnxruntime")
    m = gru_cy.LSTM(3, 5, num_layers=L, bidirectional=bi, go_backwards=back, seed=3)
    path = m.to_onnx(tmp_path / "lstm.onnx", with_h0=True, with_lengths=True)
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    D = 2 if bi else 1
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    h0, c0 = (rng.standard_normal((L * D, 4, 5)).astype(np.float32) for _ in range(2))
    lengths = np.array([6, 3, 0, 5], np.int32)
    o, hn, cn = s.run(None, dict(input=x, h0=h0, c0=c0, lengths=lengths))
    out, (h, c) = m(x, (h0, c0), lengths=lengths)
    np.testing.assert_allclose(o, out, **TOL)
    np.testing.assert_allclose(hn, h, **TOL)
    np.testing.assert_allclose(cn, c, **TOL)
    m2 = gru_cy.load_onnx(path)
    assert repr(m2) == repr(m)
    for name in m.params:
        np.testing.assert_array_equal(m2.params[name], m.params[name])


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_load_what_torch_onnx_export_writes(tmp_path, dynamo):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    t = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.randn(2, 6, 3)
    path = str(tmp_path / "t.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(t, (x,), path, dynamo=dynamo)
    m = gru_cy.load_onnx(path)
    assert type(m) is gru_cy.LSTM and m.batch_first and m.bidirectional and m.num_layers == 2
    with torch.no_grad():
        ot, (ht, ct) = t(x)
    out, (hn, cn) = m(x.numpy())
    np.testing.assert_allclose(out, ot.numpy(), **TOL)
    np.testing.assert_allclose(cn, ct.numpy(), **TOL)


def _edited_golden(tmp_path, edit):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(os.path.join(GOLDEN_DIR, "lstm_onnx_forward.onnx"))
    edit(onnx, model)
    path = str(tmp_path / "edited.onnx")
    onnx.save(model, path)
    return path


def test_onnx_unsupported_settings_are_named(tmp_path):
    def input_forget(onnx, model):
        model.graph.node[0].attribute.append(onnx.helper.make_attribute("input_forget", 1))

    with pytest.raises(NotImplementedError, match="input_forget=1"):
        gru_cy.load_onnx(_edited_golden(tmp_path, input_forget))

    def peepholes(onnx, model):
        H = 4
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(np.ones((1, 3 * H), np.float32), "P"))
        model.graph.node[0].input.append("P")

    with pytest.raises(NotImplementedError, match="peephole"):
        gru_cy.load_onnx(_edited_golden(tmp_path, peepholes))

    def activations(onnx, model):
        model.graph.node[0].attribute.append(
            onnx.helper.make_attribute("activations", ["Sigmoid", "Relu", "Tanh"]))

    with pytest.raises(NotImplementedError, match="activations"):
        gru_cy.load_onnx(_edited_golden(tmp_path, activations))
    with pytest.raises(ValueError, match="proj_size=2 has no ONNX LSTM form"):
        gru_cy.LSTM(3, 5, proj_size=2).to_onnx(tmp_path / "p.onnx")
    assert not os.path.exists(tmp_path / "p.onnx")


# -- convert ----------------------------------------------------------------------------


def test_convert_cli_round_trip(tmp_path):
    from gru_cy.io.convert import convert_cli

    m = gru_cy.LSTM(3, 5, num_layers=2, bidirectional=True, seed=6)
    src = tmp_path / "m.npz"
    m.save(src)
    x = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(np.float32)
    assert convert_cli(str(src), str(tmp_path / "m.onnx")) == 0
    assert convert_cli(str(tmp_path / "m.onnx"), str(tmp_path / "back.npz")) == 0
    back = gru_cy.load(tmp_path / "back.npz")
    assert type(back) is gru_cy.LSTM
    np.testing.assert_array_equal(back(x)[0], m(x)[0])
    pytest.importorskip("torch")
    p = gru_cy.LSTM(3, 5, proj_size=2, seed=7)
    p.save(tmp_path / "p.npz")
    assert convert_cli(str(tmp_path / "p.npz"), str(tmp_path / "p.pt")) == 0
    assert convert_cli(str(tmp_path / "p.pt"), str(tmp_path / "p2.npz")) == 0
    p2 = gru_cy.load(tmp_path / "p2.npz")
    assert p2.proj_size == 2
    np.testing.assert_array_equal(p2(x)[1][1], p(x)[1][1])
