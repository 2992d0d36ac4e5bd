"""Generate the Elman RNN interop golden files tests/golden/rnn_onnx_*.{onnx,npz} and
tests/golden/rnn_keras_*.npz.

Run from anywhere:  KERAS_BACKEND=torch python tests/make_golden_interop_rnn.py
Needs onnx, onnxruntime, torch and keras; the tests that read the files
(tests/test_interop_rnn.py) need none of them.

ONNX: rnn_onnx_<case>.onnx is a small model: a single RNN node built with onnx.helper, or what
torch.onnx.export(dynamo=False) writes for torch.nn.RNN; rnn_onnx_<case>.npz holds (plain arrays,
allow_pickle=False):
  meta      0-d str: JSON {"kind": "node" | "torch", "case": {...}, "ort_version", ...}
  X, initial_h, sequence_lens   the inputs fed to ONNX Runtime (those the model takes)
  Y, Y_h    ONNX Runtime's outputs (for "torch" cases, the graph's two outputs)
rnn_onnx_unsupported_<attr>.onnx hold attributes gru_cy refuses.

Keras: rnn_keras_<case>.npz holds
  spec      0-d str: JSON, the layer descriptions of gru_cy.io.keras._keras_specs without
            their weights (get_config() of each SimpleRNN, Bidirectional merge_mode)
  w<i>_<j>  weight j (get_weights() order) of SimpleRNN number i in the spec, depth first
  x (B, T, I), lengths (optional; the Keras call used the mask t < lengths[b])
  out       Keras's output sequence; h<i> its final states (return_state)
"""

import json
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from gru_cy.io.keras import _keras_specs  # noqa: E402

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def _run_ort(model, feeds):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _save_npz(name, meta, arrays):
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez_compressed(os.path.join(GOLDEN_DIR, name),
                        meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def _rnn_node_model(case, seed):
    """A single ONNX RNN node: (model, feeds)."""
    rng = np.random.default_rng(seed)
    T, B, I, H = case["T"], case["B"], case["I"], case["H"]
    D = 2 if case["direction"] == "bidirectional" else 1
    W = rng.uniform(-0.6, 0.6, (D, H, I)).astype(np.float32)
    R = rng.uniform(-0.6, 0.6, (D, H, H)).astype(np.float32)
    Bias = rng.uniform(-0.6, 0.6, (D, 2 * H)).astype(np.float32)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if case["bias"]:
        inits.append(numpy_helper.from_array(Bias, "B"))
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])]
    node_inputs = ["X", "W", "R", "B" if case["bias"] else "", "", ""]
    feeds = {"X": rng.standard_normal((T, B, I)).astype(np.float32)}
    if case.get("lengths") is not None:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]))
        node_inputs[4] = "sequence_lens"
        feeds["sequence_lens"] = np.array(case["lengths"], np.int32)
    if case.get("initial_h"):
        graph_inputs.append(helper.make_tensor_value_info("initial_h", TensorProto.FLOAT,
                                                          [D, B, H]))
        node_inputs[5] = "initial_h"
        feeds["initial_h"] = rng.standard_normal((D, B, H)).astype(np.float32)
    while node_inputs[-1] == "":
        node_inputs.pop()
    attrs = dict(hidden_size=H, direction=case["direction"])
    if case.get("activations") is not None:
        attrs["activations"] = case["activations"]
    attrs.update(case.get("extra_attrs", {}))
    node = helper.make_node("RNN", node_inputs, ["Y", "Y_h"], **attrs)
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None] * 4),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [None] * 3)]
    graph = helper.make_graph([node], "rnn_case", graph_inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="gru_cy tests/make_golden_interop_rnn.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, feeds


# No zero lengths: for them ONNX Runtime's Y_h is 0 where gru_cy (like torch) returns h0.
ONNX_NODE_CASES = {
    "forward_tanh_default": dict(T=5, B=3, I=3, H=4, direction="forward", activations=None,
                                 bias=True, lengths=[5, 2, 4], initial_h=True),
    "forward_relu_nobias": dict(T=4, B=2, I=2, H=3, direction="forward", activations=["Relu"],
                                bias=False),
    "reverse_relu": dict(T=6, B=3, I=3, H=4, direction="reverse", activations=["Relu"],
                         bias=True, lengths=[6, 1, 3], initial_h=True),
    "reverse_tanh": dict(T=5, B=2, I=3, H=2, direction="reverse", activations=["Tanh"],
                         bias=True),
    "bidirectional_tanh": dict(T=5, B=4, I=3, H=5, direction="bidirectional",
                               activations=["Tanh", "Tanh"], bias=True, lengths=[5, 3, 2, 1]),
    "bidirectional_relu": dict(T=4, B=3, I=2, H=4, direction="bidirectional",
                               activations=["Relu", "Relu"], bias=True, lengths=[2, 4, 1],
                               initial_h=True),
}

ONNX_UNSUPPORTED = {
    "sigmoid": dict(activations=["Sigmoid"]),
    "clip": dict(activations=None, extra_attrs={"clip": 3.0}),
    "mixed": dict(direction="bidirectional", activations=["Tanh", "Relu"]),
}


def make_onnx_node_case(name, case, seed):
    model, feeds = _rnn_node_model(case, seed)
    Y, Y_h = _run_ort(model.SerializeToString(), feeds)
    onnx.save(model, os.path.join(GOLDEN_DIR, f"rnn_onnx_{name}.onnx"))
    meta = dict(kind="node", inputs=sorted(feeds), ort_version=ort.__version__, case=case)
    _save_npz(f"rnn_onnx_{name}.npz", meta, dict(feeds, Y=Y, Y_h=Y_h))


TORCH_EXPORT_CASES = {
    # constant folding off: W, R, B are Slice/Concat/Unsqueeze of the raw parameters.
    "torch_relu_bi2_batch_first_unfolded": dict(I=3, H=4, L=2, nonlinearity="relu",
                                                bidirectional=True, batch_first=True, bias=True,
                                                h0=True, fold=False, opset=17, T=5, B=2),
    "torch_tanh_uni3_folded_opset11": dict(I=2, H=3, L=3, nonlinearity="tanh",
                                           bidirectional=False, batch_first=False, bias=False,
                                           h0=False, fold=True, opset=11, T=4, B=3),
}


def make_torch_export_case(name, case, seed):
    torch.manual_seed(seed)
    module = torch.nn.RNN(case["I"], case["H"], num_layers=case["L"],
                          nonlinearity=case["nonlinearity"], bias=case["bias"],
                          batch_first=case["batch_first"], bidirectional=case["bidirectional"])
    D = 2 if case["bidirectional"] else 1
    T, B = case["T"], case["B"]
    x = torch.randn((B, T, case["I"]) if case["batch_first"] else (T, B, case["I"]))
    args, names = (x,), ["X"]
    if case["h0"]:
        args, names = (x, torch.randn(case["L"] * D, B, case["H"])), ["X", "initial_h"]
    path = os.path.join(GOLDEN_DIR, f"rnn_onnx_{name}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, dynamo=False, do_constant_folding=case["fold"],
                          opset_version=case["opset"], input_names=names,
                          output_names=["Y", "Y_h"])
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    Y, Y_h = _run_ort(path, feeds)
    out, h_n = module(*args)
    assert np.abs(out.detach().numpy() - Y).max() < 1e-5
    meta = dict(kind="torch", inputs=sorted(feeds), ort_version=ort.__version__,
                torch_version=torch.__version__, case=case)
    _save_npz(f"rnn_onnx_{name}.npz", meta, dict(feeds, Y=Y, Y_h=Y_h))


def make_unsupported(name, extra, seed):
    case = dict(T=3, B=1, I=2, H=2, direction="forward", bias=True)
    case.update(extra)
    model, _ = _rnn_node_model(case, seed)
    onnx.save(model, os.path.join(GOLDEN_DIR, f"rnn_onnx_unsupported_{name}.onnx"))


KERAS_CASES = {
    "tanh_masked": dict(layers=[("SimpleRNN", dict(units=4))], lengths=[6, 2, 4]),
    "relu_nobias": dict(layers=[("SimpleRNN", dict(units=3, activation="relu",
                                                   use_bias=False))]),
    "relu_go_backwards": dict(layers=[("SimpleRNN", dict(units=4, activation="relu",
                                                         go_backwards=True))],
                              lengths=[6, 2, 4]),
    "bidirectional_relu": dict(layers=[("Bidirectional", dict(units=4, activation="relu"))],
                               lengths=[6, 2, 4]),
    "stack_bidirectional_tanh": dict(layers=[("Bidirectional", dict(units=3)),
                                             ("Bidirectional", dict(units=3))]),
}


def make_keras_case(name, case, seed):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    B, T, I = 3, 6, 5
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    layers = []
    for i, (kind, kwargs) in enumerate(case["layers"]):
        last = i == len(case["layers"]) - 1
        rnn = keras.layers.SimpleRNN(**kwargs, return_sequences=True, return_state=last)
        layers.append(rnn if kind == "SimpleRNN" else keras.layers.Bidirectional(rnn))
    mask = None
    if case.get("lengths") is not None:
        mask = np.arange(T)[None, :] < np.array(case["lengths"])[:, None]
    y = x
    for layer in layers:
        layer.build(y.shape)
        # Keras starts biases at zero; random values make every weight count.
        layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
                           for w in layer.get_weights()])
        result = layer(y, mask=mask)
        y = result[0] if isinstance(result, (list, tuple)) else result
    out, states = result[0], result[1:]
    specs = _keras_specs(layers)
    weights = {}

    def strip(spec, counter):
        if spec["class_name"] == "SimpleRNN":
            for j, w in enumerate(spec.pop("weights")):
                weights[f"w{counter[0]}_{j}"] = np.asarray(w)
            counter[0] += 1
        else:
            strip(spec["forward"], counter)
            strip(spec["backward"], counter)
        return spec

    counter = [0]
    specs = [strip(s, counter) for s in specs]
    arrays = dict(weights, x=x, out=keras.ops.convert_to_numpy(out))
    for i, s in enumerate(states):
        arrays[f"h{i}"] = keras.ops.convert_to_numpy(s)
    if case.get("lengths") is not None:
        arrays["lengths"] = np.array(case["lengths"], np.int64)
    np.savez_compressed(os.path.join(GOLDEN_DIR, f"rnn_keras_{name}.npz"),
                        spec=np.array(json.dumps(specs, default=str)),
                        meta=np.array(json.dumps(dict(keras_version=keras.__version__,
                                                      backend=keras.backend.backend()))),
                        **arrays)


def main():
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    for seed, (name, case) in enumerate(ONNX_NODE_CASES.items()):
        make_onnx_node_case(name, case, 500 + seed)
    for seed, (name, case) in enumerate(TORCH_EXPORT_CASES.items()):
        make_torch_export_case(name, case, 600 + seed)
    for seed, (name, extra) in enumerate(ONNX_UNSUPPORTED.items()):
        make_unsupported(name, extra, 700 + seed)
    for seed, (name, case) in enumerate(KERAS_CASES.items()):
        make_keras_case(name, case, 800 + seed)
    print("wrote the rnn_onnx_* and rnn_keras_* files in", GOLDEN_DIR)


if __name__ == "__main__":
    main()
