"""ONNX: gru_cy.load_onnx and gru.to_onnx against ONNX Runtime.

Without any optional package: the golden files (tests/golden/onnx_*, made by
tests/make_golden_interop.py with onnx.helper, torch.onnx.export and ONNX Runtime) must be
reproduced within 1e-5; gru_cy -> ONNX -> gru_cy round trips are exact; unsupported
attributes raise NotImplementedError naming them; truncated, corrupted and hostile files
raise ValueError. With onnxruntime (and onnx, torch) installed, the same checks run live
on freshly built models, and every model to_onnx writes must run in ONNX Runtime with
gru_cy's results.
"""

import glob
import json
import os
import struct
import warnings

import numpy as np
import pytest

import gru_cy
from helpers import assert_same_modules

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
NODE_CASES = sorted(
    os.path.basename(p)[5:-5] for p in glob.glob(os.path.join(GOLDEN_DIR, "onnx_*.onnx"))
    if not os.path.basename(p).startswith(("onnx_unsupported_", "onnx_torch_")))
TORCH_CASES = sorted(os.path.basename(p)[5:-5]
                     for p in glob.glob(os.path.join(GOLDEN_DIR, "onnx_torch_*.onnx")))
TOL = dict(rtol=1e-5, atol=1e-5)


def _golden(name):
    with np.load(os.path.join(GOLDEN_DIR, f"onnx_{name}.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _as_onnx_outputs(gru, out, h_n, layout):
    """gru_cy's (out, h_n) in ONNX's Y, Y_h layout."""
    D, H = gru.num_directions, gru.hidden_size
    if layout == 0:
        T, B = out.shape[:2]
        return out.reshape(T, B, D, H).transpose(0, 2, 1, 3), h_n
    B, T = out.shape[:2]
    return out.reshape(B, T, D, H), h_n.transpose(1, 0, 2)


# ---------------------------------------------------------------------------
# golden files: no optional package needed


def test_golden_files_exist():
    assert len(NODE_CASES) >= 7 and len(TORCH_CASES) >= 3


@pytest.mark.parametrize("name", NODE_CASES)
def test_golden_single_node(name):
    meta, arrays = _golden(name)
    case, layout = meta["case"], meta["layout"]
    gru = gru_cy.load_onnx(os.path.join(GOLDEN_DIR, f"onnx_{name}.onnx"))
    assert gru.bidirectional == (case["direction"] == "bidirectional")
    assert gru.go_backwards == (case["direction"] == "reverse")
    assert gru.reset_after == bool(case["linear_before_reset"])
    assert gru.bias == case["bias"] and gru.batch_first == (layout == 1)
    assert gru.hidden_size == case["H"] and gru.input_size == case["I"]
    h0 = arrays.get("initial_h")
    if h0 is not None and layout == 1:
        h0 = h0.transpose(1, 0, 2)
    out, h_n = gru(arrays["X"], h0, arrays.get("sequence_lens"))
    Y, Y_h = _as_onnx_outputs(gru, out, h_n, layout)
    np.testing.assert_allclose(Y, arrays["Y"], **TOL)
    np.testing.assert_allclose(Y_h, arrays["Y_h"], **TOL)


@pytest.mark.parametrize("name", TORCH_CASES)
def test_golden_torch_export(name):
    """Graphs torch.onnx.export wrote for nn.GRU (layers, directions, batch_first, with and
    without constant folding, and the dynamo exporter's external data): the module's
    (out, h_n) are the graph's outputs."""
    meta, arrays = _golden(name)
    case = meta["case"]
    gru = gru_cy.load_onnx(os.path.join(GOLDEN_DIR, f"onnx_{name}.onnx"))
    assert (gru.num_layers, gru.bidirectional, gru.batch_first, gru.bias) == \
        (case["L"], case["bidirectional"], case["batch_first"], case["bias"])
    out, h_n = gru(arrays["X"], arrays.get("initial_h"))
    np.testing.assert_allclose(out, arrays["Y"], **TOL)
    np.testing.assert_allclose(h_n, arrays["Y_h"], **TOL)


@pytest.mark.parametrize("attr", ["clip", "activations"])
def test_unsupported_attributes_are_named(attr):
    with pytest.raises(NotImplementedError, match=attr):
        gru_cy.load_onnx(os.path.join(GOLDEN_DIR, f"onnx_unsupported_{attr}.onnx"))


EXPORT_CONFIGS = [
    dict(),
    dict(reset_after=False),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, reset_after=False, bidirectional=True, batch_first=True),
    dict(go_backwards=True),
    dict(go_backwards=True, reset_after=False, num_layers=2),
    dict(bias=False, num_layers=2),
    dict(bias=False, bidirectional=True, reset_after=False),
]


@pytest.mark.parametrize("config", EXPORT_CONFIGS, ids=range(len(EXPORT_CONFIGS)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_exact(tmp_path, config, dtype):
    gru = gru_cy.GRU(3, 4, seed=5, dtype=dtype, **config)
    path = gru.to_onnx(tmp_path / "m.onnx", with_h0=True, with_lengths=True)
    assert_same_modules(gru, gru_cy.load_onnx(path))


def test_load_from_bytes_and_file_objects(tmp_path):
    gru = gru_cy.GRU(3, 4, seed=1)
    path = gru.to_onnx(str(tmp_path / "m.onnx"))
    with open(path, "rb") as f:
        data = f.read()
    assert_same_modules(gru, gru_cy.load_onnx(data))
    with open(path, "rb") as f:
        assert_same_modules(gru, gru_cy.load_onnx(f))


@pytest.mark.parametrize("opset", [9, 29, "x"])
def test_to_onnx_rejects_unknown_opsets(tmp_path, opset):
    with pytest.raises(ValueError):
        gru_cy.GRU(3, 4).to_onnx(tmp_path / "m.onnx", opset=opset)


# ---------------------------------------------------------------------------
# hand-made protobuf, for files the exporters never write


def _varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def _field(num, value):
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def _tensor(name, arr, external=None):
    """A float32 TensorProto; external=(location, offset) stores it as external data."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    out = b"".join(_field(1, d) for d in arr.shape) + _field(2, 1) + _field(8, name)
    if external:
        location, offset = external
        entries = [("location", location), ("offset", str(offset)),
                   ("length", str(arr.nbytes))]
        return out + b"".join(_field(13, _field(1, k) + _field(2, v)) for k, v in entries) \
            + _field(14, 1)
    return out + _field(9, arr.tobytes())


def _attr(name, value):
    if isinstance(value, str):
        return _field(1, name) + _field(20, 3) + _field(4, value)
    if isinstance(value, float):
        return _field(1, name) + _field(20, 1) + _varint(2 << 3 | 5) + struct.pack("<f", value)
    return _field(1, name) + _field(20, 2) + _field(3, value)


def _node(op, inputs, outputs, **attrs):
    return (b"".join(_field(1, i) for i in inputs) + b"".join(_field(2, o) for o in outputs)
            + _field(4, op) + b"".join(_field(5, _attr(k, v)) for k, v in attrs.items()))


def _model(nodes, inits, inputs=("X",), outputs=("Y",)):
    graph = (b"".join(_field(1, n) for n in nodes) + b"".join(_field(5, t) for t in inits)
             + b"".join(_field(11, _field(1, i)) for i in inputs)
             + b"".join(_field(12, _field(1, o)) for o in outputs))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(2, 17))


def _weights(H=2, I=3, D=1, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((D, 3 * H, I)), rng.standard_normal((D, 3 * H, H)),
            rng.standard_normal((D, 6 * H)))


def _single_gru(**attrs):
    W, R, B = _weights()
    return _model([_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=2, **attrs)],
                  [_tensor("W", W), _tensor("R", R), _tensor("B", B)])


def test_hand_made_model_loads_with_the_right_weights():
    W, R, B = _weights()
    gru = gru_cy.load_onnx(_single_gru(linear_before_reset=1))
    H = 2
    zrn_to_rzn = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
    np.testing.assert_array_equal(gru.params["weight_ih_l0"], W[0][zrn_to_rzn].astype(np.float32))
    np.testing.assert_array_equal(gru.params["weight_hh_l0"], R[0][zrn_to_rzn].astype(np.float32))
    np.testing.assert_array_equal(gru.params["bias_ih_l0"], B[0, :3 * H][zrn_to_rzn]
                                  .astype(np.float32))
    np.testing.assert_array_equal(gru.params["bias_hh_l0"], B[0, 3 * H:][zrn_to_rzn]
                                  .astype(np.float32))
    assert gru.reset_after and not gru.bidirectional and not gru.go_backwards


@pytest.mark.parametrize("attrs, name", [
    (dict(clip=10.0), "clip"),
    (dict(activation_alpha=1.0), "activation_alpha"),
])
def test_more_unsupported_attributes(attrs, name):
    with pytest.raises(NotImplementedError, match=name):
        gru_cy.load_onnx(_single_gru(**attrs))


def test_default_activations_spelled_out_are_accepted():
    W, R, B = _weights()
    acts = _field(1, "activations") + _field(20, 8) + _field(9, "Sigmoid") + _field(9, "Tanh")
    node = (b"".join(_field(1, i) for i in ["X", "W", "R", "B"]) + _field(2, "Y")
            + _field(4, "GRU") + _field(5, acts))
    gru = gru_cy.load_onnx(_model([node], [_tensor("W", W), _tensor("R", R), _tensor("B", B)]))
    assert gru.hidden_size == 2


def test_graphs_gru_cy_cannot_represent():
    W, R, B = _weights()
    inits = [_tensor("W", W), _tensor("R", R), _tensor("B", B)]
    with pytest.raises(ValueError, match="no ONNX GRU .*node.*Scan"):
        gru_cy.load_onnx(_model([_node("Scan", ["X", "W", "R"], ["Y"])], inits))
    with pytest.raises(ValueError, match="no ONNX GRU node.*LSTM"):
        gru_cy.load_onnx(_model([_node("LSTM", ["X", "W", "R"], ["Y"])], inits),
                         cls=gru_cy.GRU)
    with pytest.raises(ValueError, match="no ONNX GRU.* node.*Attention"):
        gru_cy.load_onnx(_model([_node("Attention", ["X", "W", "R"], ["Y"])], inits))
    # weights fed at run time are not in the file
    with pytest.raises(ValueError, match="computed from graph inputs"):
        gru_cy.load_onnx(_model([_node("GRU", ["X", "Wrt", "R"], ["Y"])], inits,
                                inputs=("X", "Wrt")))
    # two GRUs side by side are not a stack
    with pytest.raises(ValueError, match="does not read the Y output"):
        gru_cy.load_onnx(_model([_node("GRU", ["X", "W", "R"], ["Y1"], hidden_size=2),
                                 _node("GRU", ["X", "W", "R"], ["Y2"], hidden_size=2)], inits))
    # a stored, non-zero initial state
    with pytest.raises(NotImplementedError, match="initial_h"):
        gru_cy.load_onnx(_model([_node("GRU", ["X", "W", "R", "B", "", "h"], ["Y"])],
                                inits + [_tensor("h", np.ones((1, 1, 2)))]))
    # shapes that do not fit together
    with pytest.raises(ValueError, match="R has shape"):
        gru_cy.load_onnx(_model([_node("GRU", ["X", "W", "B"], ["Y"])], inits))
    with pytest.raises(ValueError, match="hidden_size=3"):
        gru_cy.load_onnx(_model([_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=3)], inits))
    # external data needs the model's folder: not available when loading from bytes
    with pytest.raises(NotImplementedError, match="external file"):
        gru_cy.load_onnx(_model([_node("GRU", ["X", "W", "R"], ["Y"])],
                                [_tensor("W", W, external=("w.bin", 0)), _tensor("R", R)]))


def _external_model(tmp_path, location, offset=0, data=None):
    """A model whose W lives in an external file; returns (path, W)."""
    W, R, B = _weights()
    blob = np.ascontiguousarray(W, np.float32).tobytes()
    if data is not None:
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / "w.bin").write_bytes(data(blob))
    model = _model([_node("GRU", ["X", "W", "R", "B"], ["Y"], hidden_size=2)],
                   [_tensor("W", W, external=(location, offset)), _tensor("R", R),
                    _tensor("B", B)])
    path = tmp_path / "model.onnx"
    path.write_bytes(model)
    return path, W


def test_external_data_next_to_the_model(tmp_path):
    path, W = _external_model(tmp_path, "data/w.bin", 5, data=lambda blob: b"xxxxx" + blob)
    gru = gru_cy.load_onnx(path)
    H = 2
    np.testing.assert_array_equal(gru.params["weight_ih_l0"],
                                  W[0][np.r_[H:2 * H, 0:H, 2 * H:3 * H]].astype(np.float32))
    with open(path, "rb") as f:  # a file object with a name finds the folder too
        gru_cy.load_onnx(f)


@pytest.mark.parametrize("location", ["../w.bin", "data/../../w.bin", "/etc/passwd",
                                      "C:\\w.bin", "..\\w.bin", ""])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    sub = tmp_path / "models"
    sub.mkdir()
    (tmp_path / "w.bin").write_bytes(b"\0" * 4096)
    path, _ = _external_model(sub, location)
    with pytest.raises(ValueError, match="refused"):
        gru_cy.load_onnx(path)


def test_external_data_through_a_symlink_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 4096)
    sub = tmp_path / "models"
    sub.mkdir()
    try:
        os.symlink(outside, sub / "w.bin")
    except (OSError, NotImplementedError):
        pytest.skip("no symbolic links here")
    path, _ = _external_model(sub, "w.bin")
    with pytest.raises(ValueError, match="refused"):
        gru_cy.load_onnx(path)


def test_external_data_missing_or_short(tmp_path):
    path, _ = _external_model(tmp_path, "data/w.bin")
    with pytest.raises(ValueError, match="cannot read"):
        gru_cy.load_onnx(path)
    path, _ = _external_model(tmp_path, "data/w.bin", data=lambda blob: blob[:-1])
    with pytest.raises(ValueError, match="too short"):
        gru_cy.load_onnx(path)
    path, _ = _external_model(tmp_path, "data/w.bin", offset=-3, data=lambda blob: blob)
    with pytest.raises(ValueError, match="offset"):
        gru_cy.load_onnx(path)


def test_golden_external_data_needs_its_data_file(tmp_path):
    name = "onnx_torch_dynamo_bi2_external_data.onnx"
    with open(os.path.join(GOLDEN_DIR, name), "rb") as f:
        data = f.read()
    with pytest.raises(NotImplementedError, match="external"):
        gru_cy.load_onnx(data)
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match="cannot read"):
        gru_cy.load_onnx(tmp_path / name)


@pytest.mark.parametrize("data", [
    b"",                                       # no graph
    b"\x08",                                   # a truncated varint
    b"\x3a\xff\xff\xff\xff\x0f",               # graph field longer than the file
    b"\x3a\x02\x0a\xff",                       # node longer than its graph
    b"\x0b\x0c",                               # group wire types
    b"\xff" * 12,                              # an endless varint
    b"PK\x03\x04 this is a zip, not ONNX",
], ids=range(7))
def test_malformed_protobuf_is_a_value_error(data):
    with pytest.raises(ValueError):
        gru_cy.load_onnx(data)


def test_tensor_claiming_more_data_than_it_has():
    W, R, B = _weights()
    huge = _field(1, 1 << 20) + _field(1, 1 << 20) + _field(2, 1) + _field(8, "W") + \
        _field(9, b"\0" * 16)
    with pytest.raises(ValueError, match="elements|bytes"):
        gru_cy.load_onnx(_model([_node("GRU", ["X", "W", "R"], ["Y"])], [huge, _tensor("R", R)]))


def test_an_npz_is_not_onnx(tmp_path):
    path = tmp_path / "m.npz"
    gru_cy.GRU(3, 4).save(path)
    with pytest.raises(ValueError):
        gru_cy.load_onnx(path)


def test_truncated_files_raise_or_load_the_same_model():
    """Cut anywhere, a file either fails with ValueError or (cut after the last weight) still
    holds the whole model."""
    data = open(os.path.join(GOLDEN_DIR, "onnx_torch_uni3_folded_opset11.onnx"), "rb").read()
    full = gru_cy.load_onnx(data)
    for cut in range(0, len(data), 7):
        try:
            loaded = gru_cy.load_onnx(data[:cut])
        except ValueError:
            continue
        assert_same_modules(full, loaded)


def test_corrupted_files_raise_only_clean_errors():
    """Protobuf has no checksum, so a flipped byte may change a weight; it must never crash
    the loader with anything but ValueError / NotImplementedError."""
    data = open(os.path.join(GOLDEN_DIR, "onnx_torch_bi2_batch_first_unfolded.onnx"), "rb").read()
    rng = np.random.default_rng(0)
    for _ in range(300):
        flipped = bytearray(data)
        for pos in rng.choice(len(data), size=3, replace=False):
            flipped[pos] = int(rng.integers(256))
        try:
            gru = gru_cy.load_onnx(bytes(flipped))
        except (ValueError, NotImplementedError):
            continue
        assert isinstance(gru, gru_cy.GRU)


# ---------------------------------------------------------------------------
# live: ONNX Runtime (and onnx, torch) installed


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


def _run(ort, path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("config", EXPORT_CONFIGS, ids=range(len(EXPORT_CONFIGS)))
def test_onnx_runtime_runs_exported_models(ort, tmp_path, config):
    gru = gru_cy.GRU(3, 5, seed=2, **config)
    rng = np.random.default_rng(3)
    T, B = 7, 4
    x = rng.standard_normal((B, T, 3) if gru.batch_first else (T, B, 3)).astype(np.float32)
    LD = gru.num_layers * gru.num_directions
    h0 = rng.standard_normal((LD, B, 5)).astype(np.float32)
    lengths = np.array([7, 0, 3, 1], np.int32)   # a zero length: h_n must stay h0
    path = gru.to_onnx(tmp_path / "full.onnx", with_h0=True, with_lengths=True)
    out, h_n = _run(ort, path, {"input": x, "h0": h0, "lengths": lengths})
    ref_out, ref_h = gru(x, h0, lengths)
    np.testing.assert_allclose(out, ref_out, **TOL)
    np.testing.assert_allclose(h_n, ref_h, **TOL)
    path = gru.to_onnx(tmp_path / "plain.onnx")
    out, h_n = _run(ort, path, {"input": x})
    ref_out, ref_h = gru(x)
    np.testing.assert_allclose(out, ref_out, **TOL)
    np.testing.assert_allclose(h_n, ref_h, **TOL)


@pytest.mark.parametrize("opset", [10, 14, 21])
def test_opsets(ort, tmp_path, opset):
    gru = gru_cy.GRU(3, 4, num_layers=2, bidirectional=True, reset_after=False, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    path = gru.to_onnx(tmp_path / "m.onnx", opset=opset, with_lengths=True)
    lengths = np.array([5, 2], np.int32)
    out, h_n = _run(ort, path, {"input": x, "lengths": lengths})
    ref_out, ref_h = gru(x, lengths=lengths)
    np.testing.assert_allclose(out, ref_out, **TOL)
    np.testing.assert_allclose(h_n, ref_h, **TOL)


def test_float64_module_exported_as_float32(ort, tmp_path):
    gru = gru_cy.GRU(3, 4, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    path = gru.to_onnx(tmp_path / "m.onnx", dtype=np.float32)
    out, _ = _run(ort, path, {"input": x.astype(np.float32)})
    np.testing.assert_allclose(out, gru(x)[0], **TOL)


def test_onnx_checker_accepts_exported_models(tmp_path):
    onnx = pytest.importorskip("onnx")
    for i, config in enumerate(EXPORT_CONFIGS):
        path = gru_cy.GRU(3, 4, seed=0, **config).to_onnx(tmp_path / f"m{i}.onnx",
                                                          with_h0=True, with_lengths=True)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def _helper_model(onnx, direction, lbr, lengths, initial_h, bias, seed):
    from onnx import TensorProto, helper, numpy_helper

    T, B, I, H = 6, 3, 4, 5
    D = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    W, R, Bias = (rng.uniform(-0.7, 0.7, s).astype(np.float32)
                  for s in ((D, 3 * H, I), (D, 3 * H, H), (D, 6 * H)))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if bias:
        inits.append(numpy_helper.from_array(Bias, "B"))
    names = ["X", "W", "R", "B" if bias else "", "", ""]
    ins = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])]
    feeds = {"X": rng.standard_normal((T, B, I)).astype(np.float32)}
    if lengths:
        names[4] = "L"
        ins.append(helper.make_tensor_value_info("L", TensorProto.INT32, [B]))
        feeds["L"] = np.array([6, 2, 4], np.int32)
    if initial_h:
        names[5] = "h0"
        ins.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [D, B, H]))
        feeds["h0"] = rng.standard_normal((D, B, H)).astype(np.float32)
    node = helper.make_node("GRU", names, ["Y", "Y_h"], hidden_size=H, direction=direction,
                            linear_before_reset=lbr)
    graph = helper.make_graph([node], "g", ins, [
        helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None] * 4),
        helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [None] * 3)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString(), feeds


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("lbr", [0, 1])
def test_load_onnx_live(ort, direction, lbr):
    onnx = pytest.importorskip("onnx")
    for seed, (lengths, initial_h, bias) in enumerate(
            [(True, True, True), (False, False, False), (True, False, True)]):
        data, feeds = _helper_model(onnx, direction, lbr, lengths, initial_h, bias, seed)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        Y, Y_h = session.run(None, feeds)
        gru = gru_cy.load_onnx(data)
        out, h_n = gru(feeds["X"], feeds.get("h0"), feeds.get("L"))
        Y_cy, Y_h_cy = _as_onnx_outputs(gru, out, h_n, 0)
        np.testing.assert_allclose(Y_cy, Y, **TOL)
        np.testing.assert_allclose(Y_h_cy, Y_h, **TOL)


TORCH_EXPORTS = [
    dict(num_layers=2, bidirectional=True, fold=True, opset=17, h0=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, fold=False, opset=17, h0=False),
    dict(num_layers=3, bias=False, fold=True, opset=13, h0=True),
    dict(num_layers=1, fold=False, opset=9, h0=False),
]


@pytest.mark.parametrize("config", [dict(num_layers=2, bidirectional=True, batch_first=True),
                                    dict(num_layers=3, bias=False)], ids=range(2))
def test_load_torch_dynamo_export_live(ort, tmp_path, config):
    """The default exporter (dynamo=True): GRU nodes, weights as external data."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    torch.manual_seed(1)
    module = torch.nn.GRU(3, 4, **config)
    x = torch.randn((2, 6, 3) if module.batch_first else (6, 2, 3))
    path = tmp_path / "dynamo.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), dynamo=True, verbose=False)
    gru = gru_cy.load_onnx(path)
    assert_same_modules(gru_cy.GRU.from_torch(module), gru)
    out, h_n = _run(ort, path, {_input_names(ort, path)[0]: x.numpy()})
    ref_out, ref_h = gru(x.numpy())
    np.testing.assert_allclose(ref_out, out, **TOL)
    np.testing.assert_allclose(ref_h, h_n, **TOL)


def _input_names(ort, path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [i.name for i in session.get_inputs()]


@pytest.mark.parametrize("case", TORCH_EXPORTS, ids=range(len(TORCH_EXPORTS)))
def test_load_torch_onnx_export_live(ort, tmp_path, case):
    torch = pytest.importorskip("torch")
    case = dict(case)
    fold, opset, with_h0 = case.pop("fold"), case.pop("opset"), case.pop("h0")
    torch.manual_seed(0)
    module = torch.nn.GRU(3, 4, **case)
    T, B = 6, 2
    x = torch.randn((B, T, 3) if module.batch_first else (T, B, 3))
    D = 2 if module.bidirectional else 1
    args = (x, torch.randn(module.num_layers * D, B, 4)) if with_h0 else (x,)
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(path), dynamo=False, do_constant_folding=fold,
                              opset_version=opset, input_names=["x", "h0"][:len(args)])
        except Exception as exc:  # an exporter this test does not know
            pytest.skip(f"torch.onnx.export(dynamo=False) failed: {exc!r}")
    gru = gru_cy.load_onnx(path)
    assert_same_modules(gru_cy.GRU.from_torch(module), gru)
    out, h_n = _run(ort, path, {n: a.numpy() for n, a in zip(["x", "h0"], args)})
    ref_out, ref_h = gru(*(a.numpy() for a in args))
    np.testing.assert_allclose(ref_out, out, **TOL)
    np.testing.assert_allclose(ref_h, h_n, **TOL)
