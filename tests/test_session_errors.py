"""InferenceSession: errors at load (unsupported, malformed, hostile files), errors at run
(feeds), the graph features around the operators (If, folding, outputs, threads), and the
recurrent golden files of the loaders run whole.

Models are written here with gru_cy's own protobuf writers: no optional package needed.
"""

import glob
import os
import threading

import numpy as np
import pytest

import gru_cy
from gru_cy.io.onnx.codec import onnx_node, onnx_tensor_proto, onnx_value_info, pb_bytes, pb_int

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
F32 = np.float32


def graph_bytes(nodes, inits=None, inputs=(("x", 1, ["B", 3]),), outputs=("y",), name="g"):
    return (b"".join(pb_bytes(1, n) for n in nodes) + pb_bytes(2, name)
            + b"".join(pb_bytes(5, onnx_tensor_proto(k, v)) for k, v in (inits or {}).items())
            + b"".join(pb_bytes(11, onnx_value_info(n, t, d)) for n, t, d in inputs)
            + b"".join(pb_bytes(12, pb_bytes(1, o)) for o in outputs))


def model(nodes, inits=None, inputs=(("x", 1, ["B", 3]),), outputs=("y",), opset=17):
    return (pb_int(1, 8) + pb_bytes(7, graph_bytes(nodes, inits, inputs, outputs))
            + pb_bytes(8, pb_int(2, opset)))


def graph_attr(name, graph):
    return pb_bytes(5, pb_bytes(1, name) + pb_int(20, 5) + pb_bytes(6, graph))


def float_attr(name, value):
    import struct

    return pb_bytes(5, pb_bytes(1, name) + pb_int(20, 1) + bytes([2 << 3 | 5])
                    + struct.pack("<f", value))


def if_node(cond, then_graph, else_graph, outputs=("y",), name="if"):
    return (pb_bytes(1, cond) + b"".join(pb_bytes(2, o) for o in outputs) + pb_bytes(3, name)
            + pb_bytes(4, "If") + graph_attr("then_branch", then_graph)
            + graph_attr("else_branch", else_graph))


X = np.arange(6, dtype=F32).reshape(2, 3)


# ---------------------------------------------------------------------------
# unsupported: NotImplementedError naming node, operator, attribute


def test_unsupported_operator_is_named():
    with pytest.raises(NotImplementedError, match=r"Resize node 'up'.*Resize"):
        gru_cy.InferenceSession(model([onnx_node("Resize", ["x"], ["y"], "up")]))
    node = onnx_node("FusedGemm", ["x"], ["y"], "fused")[:-0 or None] + pb_bytes(7, "com.microsoft")
    with pytest.raises(NotImplementedError, match="FusedGemm.*com.microsoft"):
        gru_cy.InferenceSession(model([node]))


@pytest.mark.parametrize("node, attr", [
    (onnx_node("Relu", ["x"], ["y"], "r", alpha=1), "alpha"),
    (onnx_node("Gelu", ["x"], ["y"], "g", approximate="erf"), "approximate"),
    (onnx_node("Pad", ["x", "pads"], ["y"], "p", mode="mirror"), "mode"),
    (onnx_node("MaxPool", ["x3"], ["y", "idx"], "m", kernel_shape=[2]), "Indices"),
    (onnx_node("Dropout", ["x", "", "train"], ["y"], "d"), "training_mode"),
    (onnx_node("Cast", ["x"], ["y"], "c", to=16), "to=16"),
], ids=["Relu", "Gelu", "Pad", "MaxPool", "Dropout", "Cast"])
def test_unsupported_attribute_is_named(node, attr):
    inits = {"pads": np.zeros(4, np.int64), "train": np.array(True)}
    nodes = [onnx_node("Unsqueeze", ["x", "ax"], ["x3"], "u"), node]
    inits["ax"] = np.array([0], np.int64)
    with pytest.raises(NotImplementedError, match=attr) as info:
        gru_cy.InferenceSession(model(nodes, inits))
    assert "node '" in str(info.value)


def test_unsupported_recurrent_attribute_is_named():
    H, I = 2, 3
    inits = {"W": np.ones((1, 3 * H, I), F32), "R": np.ones((1, 3 * H, H), F32)}
    node = (onnx_node("GRU", ["x3", "W", "R"], ["y"], "gru", hidden_size=H)
            + float_attr("clip", 5.0))
    nodes = [onnx_node("Unsqueeze", ["x", "ax"], ["x3"], "u"), node]
    inits["ax"] = np.array([0], np.int64)
    with pytest.raises(NotImplementedError, match="GRU node 'gru'.*clip"):
        gru_cy.InferenceSession(model(nodes, inits))


def test_unsupported_opset():
    with pytest.raises(NotImplementedError, match="opset 7"):
        gru_cy.InferenceSession(model([onnx_node("Relu", ["x"], ["y"], "r")], opset=7))


def test_precision():
    path = os.path.join(GOLDEN, "session_text_gru_torchscript.onnx")
    with pytest.raises(ValueError, match="precision"):
        gru_cy.InferenceSession(path, precision="fp16")
    if not all(hasattr(cls, "freeze") for cls in (gru_cy.GRU, gru_cy.LSTM, gru_cy.RNN)):
        with pytest.raises(NotImplementedError, match="precision='bf16' needs.*freeze"):
            gru_cy.InferenceSession(path, precision="bf16")
    assert gru_cy.InferenceSession(path, "fp32").precision == "fp32"


def test_precision_uses_freeze_when_the_module_has_it(monkeypatch):
    asked = []

    def freeze(self, precision="fp32"):
        asked.append(precision)
        return self

    for cls in (gru_cy.GRU, gru_cy.LSTM, gru_cy.RNN):
        monkeypatch.setattr(cls, "freeze", freeze, raising=False)
    path = os.path.join(GOLDEN, "session_text_gru_torchscript.onnx")
    session = gru_cy.InferenceSession(path, precision="int8")
    assert asked and set(asked) == {"int8"}
    tokens = np.zeros((1, 3), np.int64)
    session.run(None, {"tokens": tokens, "h0": np.zeros((2, 1, 16), F32)})


def test_onnx_runtime_constructor_arguments_are_accepted():
    class SessionOptions:   # what a script written for ONNX Runtime passes second
        pass

    data = model([onnx_node("Relu", ["x"], ["y"], "r")])
    session = gru_cy.InferenceSession(data, SessionOptions(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": X - 2})[0], np.maximum(X - 2, 0))


# ---------------------------------------------------------------------------
# malformed and hostile files: ValueError, in bounded time and memory


@pytest.mark.parametrize("data, match", [
    (b"", "no graph"),
    (b"\x3a\xff\xff\xff\xff\x0f", "past the end"),
    (model([onnx_node("Relu", ["x"], ["y"], "a"), onnx_node("Relu", ["x"], ["y"], "b")]),
     "already defined"),
    (model([onnx_node("Relu", ["z"], ["y"], "a")]), "no node, graph input"),
    (model([onnx_node("Relu", ["t"], ["y"], "a"), onnx_node("Relu", ["y"], ["t"], "b")]),
     "cycle"),
    (model([onnx_node("Relu", ["x"], ["t"], "a")]), "computed by no node"),
    (model([onnx_node("Concat", ["x", "x"], ["y"], "c")]), "no axis"),
    (model([onnx_node("Transpose", ["x"], ["y"], "t", perm="01")]), "should be a list"),
    (model([onnx_node("Add", ["x"], ["y"], "a")]), "inputs"),
], ids=range(9))
def test_malformed_models_are_value_errors(data, match):
    with pytest.raises(ValueError, match=match):
        gru_cy.InferenceSession(data)


@pytest.mark.parametrize("shape", [[1 << 20, 1 << 20], [1 << 40], [1 << 62, 4]])
def test_folding_huge_constants_is_refused(shape):
    nodes = [onnx_node("ConstantOfShape", ["shape"], ["big"], "fill"),
             onnx_node("Add", ["x", "big"], ["y"], "add")]
    with pytest.raises(ValueError, match="memory limit"):
        gru_cy.InferenceSession(model(nodes, {"shape": np.array(shape, np.int64)}))


def test_expanding_to_a_huge_shape_at_run_is_refused():
    nodes = [onnx_node("Shape", ["x"], ["s"], "shape"),
             onnx_node("Concat", ["k", "s"], ["big"], "concat", axis=0),
             onnx_node("Expand", ["x", "big"], ["y"], "expand")]
    session = gru_cy.InferenceSession(model(nodes, {"k": np.array([1 << 20, 1 << 20],
                                                                  np.int64)}))
    with pytest.raises(ValueError, match="Expand node 'expand'.*more than"):
        session.run(None, {"x": X})


def test_deeply_nested_graphs_are_refused():
    leaf = graph_bytes([onnx_node("Identity", ["x"], ["y"], "id")], inputs=(), outputs=("y",))
    graph = leaf
    for depth in range(40):
        inner = if_node("c", graph, leaf, outputs=("y",), name=f"if{depth}")
        graph = graph_bytes([inner], inputs=(), outputs=("y",))
    data = model([if_node("c", graph, leaf)], inputs=(("x", 1, [2, 3]), ("c", 9, [])))
    with pytest.raises(ValueError, match="nested"):
        gru_cy.InferenceSession(data)


def test_corrupted_exports_raise_only_clean_errors():
    data = open(os.path.join(GOLDEN, "session_speech_conv_lstm_torchscript.onnx"), "rb").read()
    feeds = {"features": np.ones((1, 13, 9), F32)}
    rng = np.random.default_rng(0)
    for _ in range(150):
        flipped = bytearray(data)
        for pos in rng.choice(len(data), size=3, replace=False):
            flipped[pos] = int(rng.integers(256))
        try:
            session = gru_cy.InferenceSession(bytes(flipped))
        except (ValueError, NotImplementedError):
            continue
        try:
            with np.errstate(all="ignore"):
                session.run(None, feeds)
        except ValueError:
            pass


# ---------------------------------------------------------------------------
# feeds and outputs at run


def test_feed_errors_name_the_input():
    session = gru_cy.InferenceSession(model([onnx_node("Relu", ["x"], ["y"], "r")]))
    with pytest.raises(ValueError, match="unknown input name.*'z'"):
        session.run(None, {"x": X, "z": X})
    with pytest.raises(ValueError, match="missing input.*'x'"):
        session.run(None, {})
    with pytest.raises(ValueError, match="input 'x'.*tensor\\(float\\).*float64"):
        session.run(None, {"x": X.astype(np.float64)})
    with pytest.raises(ValueError, match="input 'x'.*axis 1 must be 3"):
        session.run(None, {"x": np.ones((2, 4), F32)})
    with pytest.raises(ValueError, match="input 'x'.*2-D"):
        session.run(None, {"x": np.ones(3, F32)})
    with pytest.raises(ValueError, match="unknown output"):
        session.run(["nope"], {"x": X})
    with pytest.raises(TypeError):
        session.run(None, [X])
    np.testing.assert_array_equal(session.run(["y"], {"x": [[-1, 2, 3]]})[0], [[0, 2, 3]])


def test_a_kernel_failure_at_run_names_the_node():
    nodes = [onnx_node("Reshape", ["x", "shape"], ["y"], "to_five")]
    session = gru_cy.InferenceSession(model(nodes, {"shape": np.array([5, -1], np.int64)}))
    with pytest.raises(ValueError, match="Reshape node 'to_five'"):
        session.run(None, {"x": X})
    np.testing.assert_array_equal(session.run(None, {"x": np.ones((5, 3), F32)})[0],
                                  np.ones((5, 3)))
    with pytest.raises(ValueError, match="Reshape node 'to_five'"):   # the specialised path
        session.run(None, {"x": np.ones((5, 3), F32)[:, :2].copy().reshape(5, 2)[:, :1]
                           .repeat(3, axis=1)[:4]})


def test_outputs_never_alias_inputs_constants_or_each_other():
    nodes = [onnx_node("Identity", ["x"], ["a"], "a"), onnx_node("Identity", ["k"], ["b"], "b"),
             onnx_node("Relu", ["x"], ["c"], "c"), onnx_node("Identity", ["c"], ["d"], "d")]
    session = gru_cy.InferenceSession(model(nodes, {"k": np.ones(3, F32)},
                                            outputs=("a", "b", "c", "d", "k", "x")))
    x = X.copy()
    for _ in range(2):
        a, b, c, d, k, x_out = session.run(None, {"x": x})
        np.testing.assert_array_equal(k, np.ones(3))
        np.testing.assert_array_equal(x_out, X)
        a[:] = -1
        b[:] = -1
        c[:] = -7
        k[:] = 5
        x_out[:] = 3
        np.testing.assert_array_equal(x, X)
        np.testing.assert_array_equal(d, X)
    np.testing.assert_array_equal(session.run(["b"], {"x": x})[0], np.ones(3))


def test_an_output_is_never_overwritten_by_a_later_node():
    nodes = [onnx_node("Relu", ["x"], ["a"], "relu"), onnx_node("Neg", ["a"], ["b"], "neg"),
             onnx_node("Exp", ["b"], ["c"], "exp")]
    session = gru_cy.InferenceSession(model(nodes, outputs=("a", "c")))
    for _ in range(3):
        a, c = session.run(None, {"x": X - 2})
        np.testing.assert_array_equal(a, np.maximum(X - 2, 0))
        np.testing.assert_allclose(c, np.exp(-np.maximum(X - 2, 0)), rtol=1e-6)


def test_chains_reuse_buffers_without_changing_results():
    nodes = [onnx_node("MatMul", ["x", "w"], ["m"], "mm"),
             onnx_node("Add", ["m", "b"], ["s"], "add"), onnx_node("Relu", ["s"], ["r"], "relu"), onnx_node("Mul", ["r", "r"], ["q"], "sq"),
             onnx_node("Sub", ["q", "s"], ["y"], "sub")]
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 200)).astype(F32), rng.standard_normal(200).astype(F32)
    session = gru_cy.InferenceSession(model(nodes, {"w": w, "b": b}))
    for rows in (50, 3, 50, 50):
        x = rng.standard_normal((rows, 3)).astype(F32)
        s = x @ w + b
        expected = np.maximum(s, 0) ** 2 - s
        np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-5,
                                   atol=1e-5)


def test_threads_share_a_session():
    nodes = [onnx_node("MatMul", ["x", "w"], ["m"], "mm"), onnx_node("Tanh", ["m"], ["y"], "t")]
    w = np.random.default_rng(1).standard_normal((3, 5000)).astype(F32)
    session = gru_cy.InferenceSession(model(nodes, {"w": w}))
    inputs = [np.full((4, 3), i, F32) for i in range(8)]
    expected = [np.tanh(x @ w) for x in inputs]
    failures = []

    def work(i):
        for _ in range(20):
            got = session.run(None, {"x": inputs[i]})[0]
            if not np.allclose(got, expected[i], atol=1e-5):
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---------------------------------------------------------------------------
# If


def _branch(op, value):
    return graph_bytes([onnx_node(op, ["x", "k" + value], ["out"], "b" + value)],
                       {"k" + value: np.array(float(value), F32)}, inputs=(), outputs=("out",))


def test_if_with_a_stored_condition_is_replaced_by_its_branch():
    data = model([if_node("c", _branch("Add", "1"), _branch("Mul", "2"))],
                 {"c": np.array(False)})
    session = gru_cy.InferenceSession(data)
    np.testing.assert_array_equal(session.run(None, {"x": X})[0], X * 2)
    assert not any(s.op_type == "If" for s in session._plan.steps)


def test_if_branches_giving_stored_tensors():
    def stored(value):
        return graph_bytes([], {"out": np.full((2, 3), value, F32)}, inputs=(),
                           outputs=("out",))
    data = model([if_node("c", stored(1.0), stored(2.0), outputs=("t",)),
                  onnx_node("Add", ["x", "t"], ["y"], "add")],
                 inputs=(("x", 1, [2, 3]), ("c", 9, [])))
    session = gru_cy.InferenceSession(data)
    for c in (True, False):
        np.testing.assert_array_equal(session.run(None, {"x": X, "c": np.array(c)})[0],
                                      X + (1 if c else 2))


def test_if_on_the_input_shape_and_on_data():
    shape_cond = [onnx_node("Shape", ["x"], ["s"], "s"),
                  onnx_node("Gather", ["s", "zero"], ["rows"], "g"),
                  onnx_node("Greater", ["rows", "two"], ["c"], "gt"),
                  if_node("c", _branch("Add", "1"), _branch("Mul", "2"))]
    session = gru_cy.InferenceSession(model(shape_cond, {"zero": np.array(0, np.int64),
                                                         "two": np.array(2, np.int64)}))
    for rows in (1, 3, 1, 3):
        x = np.ones((rows, 3), F32)
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], x + 1 if rows > 2 else x * 2)
    data_cond = model([if_node("c", _branch("Add", "1"), _branch("Mul", "2"))],
                      inputs=(("x", 1, ["B", 3]), ("c", 9, [])))
    session = gru_cy.InferenceSession(data_cond)
    for c in (True, False, True):
        np.testing.assert_array_equal(session.run(None, {"x": X, "c": np.array(c)})[0],
                                      X + 1 if c else X * 2)


# ---------------------------------------------------------------------------
# load_onnx points at InferenceSession; the recurrent golden files run whole


def test_load_onnx_of_a_whole_model_points_at_the_session(tmp_path, capsys):
    path = os.path.join(GOLDEN, "session_text_gru_torchscript.onnx")
    with pytest.raises(ValueError, match="InferenceSession"):
        gru_cy.load_onnx(path)
    path = os.path.join(GOLDEN, "session_speech_conv_lstm_torchscript.onnx")
    with pytest.raises(ValueError, match="InferenceSession"):
        gru_cy.load_onnx(path)
    from gru_cy.io.convert import convert_cli

    assert convert_cli(path, str(tmp_path / "lstm.npz")) == 1
    assert "InferenceSession" in capsys.readouterr().err


LOADER_GOLDEN = sorted(p for p in glob.glob(os.path.join(GOLDEN, "*onnx_*.onnx"))
                       if "unsupported" not in p and os.path.exists(p[:-5] + ".npz"))


@pytest.mark.parametrize("path", LOADER_GOLDEN, ids=lambda p: os.path.basename(p)[:-5])
def test_loader_golden_files_run_whole(path):
    """The GRU, LSTM and RNN files of the loaders' tests, run as graphs: ONNX Runtime's
    outputs (ONNX's layouts for single nodes, layout 1 included; the torch module's for
    exports), every input and output named as in the graph."""
    with np.load(path[:-5] + ".npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
    session = gru_cy.InferenceSession(path)
    outputs = session.run(None, {a.name: arrays[a.name] for a in session.get_inputs()})
    for arg, got in zip(session.get_outputs(), outputs):
        np.testing.assert_allclose(got, arrays[arg.name], rtol=1e-5, atol=1e-5,
                                   err_msg=arg.name)


# ---------------------------------------------------------------------------
# buffer reuse on random graphs, against NumPy node by node


_UNARY_NUMPY = {"Relu": lambda a: np.maximum(a, 0), "Neg": np.negative, "Tanh": np.tanh,
                "Abs": np.abs, "Identity": lambda a: a, "Sigmoid": lambda a: 1 / (1 + np.exp(-a))}
_BINARY_NUMPY = {"Add": np.add, "Mul": np.multiply, "Sub": np.subtract}


def _random_graph(rng, n_nodes, R, C):
    """Nodes over (R, C) float tensors: unary, binary, transposes and reshapes, a Split; some
    intermediates are outputs too. Returns (model bytes, output names, reference function)."""
    nodes, steps, values = [], [], ["x"]
    inits = {"k": rng.standard_normal((R, C)).astype(F32),
             "flat": np.array([R * C], np.int64), "back": np.array([R, C], np.int64)}
    for i in range(n_nodes):
        kind = rng.choice(["unary", "binary", "transpose", "reshape", "split"],
                          p=[0.35, 0.35, 0.1, 0.1, 0.1])
        a = str(rng.choice(values))
        out = f"v{i}"
        if kind == "unary":
            op = str(rng.choice(sorted(_UNARY_NUMPY)))
            nodes.append(onnx_node(op, [a], [out], out))
            steps.append((out, lambda env, a=a, op=op: _UNARY_NUMPY[op](env[a])))
        elif kind == "binary":
            b = str(rng.choice(values + ["k"]))
            op = str(rng.choice(sorted(_BINARY_NUMPY)))
            nodes.append(onnx_node(op, [a, b], [out], out))
            steps.append((out, lambda env, a=a, b=b, op=op: _BINARY_NUMPY[op](env[a], env[b])))
        elif kind == "transpose":   # twice: back to (R, C) through a transposed view
            nodes += [onnx_node("Transpose", [a], [out + "t"], out + "t", perm=[1, 0]),
                      onnx_node("Transpose", [out + "t"], [out], out, perm=[1, 0])]
            steps.append((out, lambda env, a=a: env[a].T.T))
        elif kind == "reshape":
            nodes += [onnx_node("Reshape", [a, "flat"], [out + "f"], out + "f"),
                      onnx_node("Reshape", [out + "f", "back"], [out], out)]
            steps.append((out, lambda env, a=a: env[a].reshape(-1).reshape(R, C)))
        else:                       # halves of the columns, joined again
            nodes += [onnx_node("Split", [a], [out + "l", out + "r"], out + "s", axis=1),
                      onnx_node("Concat", [out + "r", out + "l"], [out], out, axis=1)]
            steps.append((out, lambda env, a=a: np.concatenate(
                [env[a][:, C // 2:], env[a][:, :C // 2]], axis=1)))
        values.append(out)
    extra = rng.choice(values[1:], size=1 if R > 8 else 3)
    outputs = sorted({values[-1]} | {str(v) for v in extra})

    def reference(x):
        env = {"x": x, "k": inits["k"]}
        for name, fn in steps:
            env[name] = fn(env)
        return [env[o] for o in outputs]
    data = model(nodes, inits, inputs=(("x", 1, [R, C]),), outputs=outputs)
    return data, outputs, reference


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_reuse_buffers_safely(seed):
    """Small tensors (in-place writes) and large ones (buffers kept between runs too)."""
    rng = np.random.default_rng(seed)
    R, C = (4, 6) if seed % 2 else (64, 256)
    data, outputs, reference = _random_graph(rng, int(rng.integers(3, 14)), R, C)
    session = gru_cy.InferenceSession(data)
    for run in range(3):
        x = rng.standard_normal((R, C)).astype(F32)
        kept = x.copy()
        got = session.run(None, {"x": x})
        for name, g, e in zip(outputs, got, reference(kept)):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6, err_msg=f"{name}, run {run}")
        np.testing.assert_array_equal(x, kept)
        for g in got:   # outputs are the caller's: writing them changes nothing later
            g[...] = np.nan


def test_shapes_of_inputs_with_fixed_dimensions_fold_at_load():
    nodes = [onnx_node("Shape", ["x"], ["s"], "shape"),
             onnx_node("ConstantOfShape", ["s"], ["zeros"], "zeros"),
             onnx_node("Add", ["x", "zeros"], ["y"], "add")]
    session = gru_cy.InferenceSession(model(nodes, inputs=(("x", 1, [2, 3]),)))
    assert [s.op_type for s in session._plan.steps] == ["Add"]
    np.testing.assert_array_equal(session.run(None, {"x": X})[0], X)
    # a huge declared input costs nothing to fold its shape
    big = model([onnx_node("Shape", ["x"], ["y"], "shape")], inputs=(("x", 1, [1, 1 << 40]),))
    session = gru_cy.InferenceSession(big)
    with pytest.raises(ValueError, match="axis 0 must be 1"):
        session.run(None, {"x": X})
    symbolic = gru_cy.InferenceSession(model(nodes))   # x: ["B", 3]: folded at the first run
    assert [s.op_type for s in symbolic._plan.steps] == ["Shape", "ConstantOfShape", "Add"]
    np.testing.assert_array_equal(symbolic.run(None, {"x": X})[0], X)
