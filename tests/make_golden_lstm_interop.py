"""Generate the LSTM interop golden files tests/golden/lstm_onnx_*.{onnx,npz} and
tests/golden/lstm_keras_*.npz.

Run from anywhere:  KERAS_BACKEND=torch python tests/make_golden_lstm_interop.py
Needs onnx, onnxruntime, torch and keras; tests/test_interop_lstm.py reads the files without them.

ONNX: lstm_onnx_<case>.onnx is an LSTM model built with onnx.helper (one node; gate order
i, o, f, c) or written by torch.onnx.export (dynamo=False) from a torch.nn.LSTM;
lstm_onnx_<case>.npz holds the inputs fed to ONNX Runtime (X, and initial_h, initial_c,
sequence_lens when the model takes them) and its outputs Y, Y_h, Y_c (for "torch" cases: the
exported model's output, h_n, c_n).

Keras: lstm_keras_<case>.npz holds
  spec      0-d str: JSON, gru_cy.io.keras._keras_specs of the layer without its weights
  w<i>_<j>  weight j (get_weights() order) of LSTM number i in the spec, depth first
  x (B, T, I); out, Keras's output sequence; h<i> its final states (return_state: h, c per
  direction)
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
    np.savez_compressed(os.path.join(GOLDEN_DIR, name),
                        meta=np.array(json.dumps(meta, sort_keys=True)),
                        **{k: v for k, v in arrays.items() if v is not None})


def node_case(name, direction, seed, T=5, B=3, I=3, H=4, bias=True, lengths=None):
    """One ONNX LSTM node with initial states (and sequence_lens)."""
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    W = rng.uniform(-0.7, 0.7, (D, 4 * H, I)).astype(np.float32)
    R = rng.uniform(-0.7, 0.7, (D, 4 * H, H)).astype(np.float32)
    Bias = rng.uniform(-0.5, 0.5, (D, 8 * H)).astype(np.float32) if bias else None
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if bias:
        inits.append(numpy_helper.from_array(Bias, "B"))
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I]),
                    helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [D, "B", H]),
                    helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, [D, "B", H])]
    node_inputs = ["X", "W", "R", "B" if bias else "", "", "initial_h", "initial_c"]
    if lengths is not None:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32,
                                                          ["B"]))
        node_inputs[4] = "sequence_lens"
    node = helper.make_node("LSTM", node_inputs, ["Y", "Y_h", "Y_c"], hidden_size=H,
                            direction=direction)
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", D, "B", H]),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [D, "B", H]),
               helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [D, "B", H])]
    model = helper.make_model(helper.make_graph([node], name, graph_inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    feeds = dict(X=rng.standard_normal((T, B, I)).astype(np.float32),
                 initial_h=rng.standard_normal((D, B, H)).astype(np.float32),
                 initial_c=rng.standard_normal((D, B, H)).astype(np.float32))
    if lengths is not None:
        feeds["sequence_lens"] = np.asarray(lengths, np.int32)
    Y, Y_h, Y_c = _run_ort(model.SerializeToString(), feeds)
    onnx.save(model, os.path.join(GOLDEN_DIR, f"lstm_onnx_{name}.onnx"))
    _save_npz(f"lstm_onnx_{name}.npz", dict(kind="node", ort_version=ort.__version__),
              dict(feeds, Y=Y, Y_h=Y_h, Y_c=Y_c))


def torch_case(name, seed, **kwargs):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(3, 4, **kwargs).eval()
    x = torch.randn(2, 5, 3) if kwargs.get("batch_first") else torch.randn(5, 2, 3)
    path = os.path.join(GOLDEN_DIR, f"lstm_onnx_{name}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(lstm, (x,), path, dynamo=False, input_names=["X"],
                          output_names=["Y", "Y_h", "Y_c"])
    with torch.no_grad():
        out, (h, c) = lstm(x)
    _save_npz(f"lstm_onnx_{name}.npz", dict(kind="torch", torch_version=torch.__version__),
              dict(X=x.numpy(), Y=out.numpy(), Y_h=h.numpy(), Y_c=c.numpy()))


def keras_case(name, make, seed, T=5, B=2, I=3):
    keras.utils.set_random_seed(seed)
    layer = make()
    x = np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)
    result = layer(x)
    out, states = result[0], result[1:]
    for w in layer.weights:  # non-zero biases
        if "bias" in w.path:
            w.assign(np.random.default_rng(seed + 1).uniform(-0.5, 0.5, w.shape))
    result = layer(x)
    out, states = result[0], result[1:]
    specs = _keras_specs(layer)
    arrays, counter = {}, [0]

    def strip(spec):
        if spec["class_name"] == "LSTM":
            for j, w in enumerate(spec.pop("weights")):
                arrays[f"w{counter[0]}_{j}"] = np.asarray(w)
            counter[0] += 1
        else:
            strip(spec["forward"])
            strip(spec["backward"])
        spec["config"] = {k: v for k, v in spec.get("config", {}).items()
                          if isinstance(v, (int, float, str, bool, type(None)))}
        return spec

    specs = [strip(s) for s in specs]
    arrays.update(x=x, out=np.asarray(out.detach().cpu()))
    for i, s in enumerate(states):
        arrays[f"h{i}"] = np.asarray(s.detach().cpu())
    np.savez_compressed(os.path.join(GOLDEN_DIR, f"lstm_keras_{name}.npz"),
                        spec=np.array(json.dumps(specs)), **arrays)


def main():
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    node_case("forward", "forward", 1)
    node_case("reverse_lengths", "reverse", 2, lengths=[5, 2, 4])
    node_case("bidirectional_nobias", "bidirectional", 3, bias=False)
    node_case("bidirectional_lengths", "bidirectional", 4, lengths=[3, 5, 1])
    torch_case("torch_bi2_batch_first", 5, num_layers=2, bidirectional=True, batch_first=True)
    torch_case("torch_uni3", 6, num_layers=3)
    L = keras.layers
    keras_case("lstm", lambda: L.LSTM(4, return_sequences=True, return_state=True), 7)
    keras_case("lstm_nobias_backwards",
               lambda: L.LSTM(4, use_bias=False, go_backwards=True, return_sequences=True,
                              return_state=True), 8)
    keras_case("bidirectional",
               lambda: L.Bidirectional(L.LSTM(4, return_sequences=True, return_state=True)), 9)
    for f in sorted(os.listdir(GOLDEN_DIR)):
        if f.startswith("lstm_"):
            print(f"wrote tests/golden/{f}")


if __name__ == "__main__":
    main()
