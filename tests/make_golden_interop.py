"""Generate the interop golden files tests/golden/onnx_*.{onnx,npz} and tests/golden/keras_*.npz.

Run from anywhere:  KERAS_BACKEND=torch python tests/make_golden_interop.py
Needs onnx, onnxruntime, torch and keras; the tests that read the files
(tests/test_interop_onnx.py, tests/test_interop_keras.py) need none of them.

ONNX: onnx_<case>.onnx is a small model (H <= 5) built with onnx.helper or written by
torch.onnx.export (the dynamo exporter, when onnxscript is installed, also writes
onnx_<case>.onnx.data: external data); onnx_<case>.npz holds (plain arrays, allow_pickle=False):
  meta      0-d str: JSON {"kind": "node" | "torch", "layout", "inputs": [...], "ort_version", ...}
  X, initial_h, sequence_lens   the inputs fed to ONNX Runtime (those the model takes)
  Y, Y_h    ONNX Runtime's outputs (for "torch" cases: the exported module's out and h_n)
A model ONNX Runtime cannot run (layout=1) is run as the equivalent layout-0 model, with
inputs and outputs transposed. onnx_unsupported_<attr>.onnx hold attributes gru_cy refuses.

Keras: keras_<case>.npz holds
  spec      0-d str: JSON, the layer descriptions of gru_cy.io.keras._keras_specs without
            their weights (get_config() of each GRU, Bidirectional merge_mode)
  w<i>_<j>  weight j (get_weights() order) of GRU number i in the spec, depth first
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


def _gru_node_model(case, seed):
    """A single ONNX GRU node: (model, feeds) with layout-0 feeds."""
    rng = np.random.default_rng(seed)
    T, B, I, H = case["T"], case["B"], case["I"], case["H"]
    D = 2 if case["direction"] == "bidirectional" else 1
    layout = case.get("layout", 0)
    W = rng.uniform(-0.6, 0.6, (D, 3 * H, I)).astype(np.float32)
    R = rng.uniform(-0.6, 0.6, (D, 3 * H, H)).astype(np.float32)
    Bias = rng.uniform(-0.6, 0.6, (D, 6 * H)).astype(np.float32)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if case["bias"]:
        inits.append(numpy_helper.from_array(Bias, "B"))
    x_dims = [T, B, I] if layout == 0 else [B, T, I]
    h_dims = [D, B, H] if layout == 0 else [B, D, H]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_dims)]
    node_inputs = ["X", "W", "R", "B" if case["bias"] else "", "", ""]
    feeds = {"X": rng.standard_normal((T, B, I)).astype(np.float32)}
    if case.get("lengths") is not None:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]))
        node_inputs[4] = "sequence_lens"
        feeds["sequence_lens"] = np.array(case["lengths"], np.int32)
    if case.get("initial_h"):
        graph_inputs.append(helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, h_dims))
        node_inputs[5] = "initial_h"
        feeds["initial_h"] = rng.standard_normal((D, B, H)).astype(np.float32)
    while node_inputs[-1] == "":
        node_inputs.pop()
    attrs = dict(hidden_size=H, direction=case["direction"],
                 linear_before_reset=case["linear_before_reset"])
    attrs.update(case.get("extra_attrs", {}))

    def build(layout_attr):
        node = helper.make_node("GRU", node_inputs, ["Y", "Y_h"],
                                **dict(attrs, **({"layout": 1} if layout_attr else {})))
        ins = graph_inputs
        if not layout_attr and layout == 1:  # the layout-0 twin ORT can run
            ins = [helper.make_tensor_value_info(v.name, v.type.tensor_type.elem_type,
                                                 {"X": [T, B, I], "initial_h": [D, B, H]}.get(
                                                     v.name, [B]))
                   for v in graph_inputs]
        outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None] * 4),
                   helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [None] * 3)]
        graph = helper.make_graph([node], "gru_case", ins, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="gru_cy tests/make_golden_interop.py")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    return build(layout == 1), build(False), feeds, layout


ONNX_NODE_CASES = {
    "forward_lbr0": dict(T=5, B=3, I=3, H=4, direction="forward", linear_before_reset=0,
                         bias=True, lengths=[5, 2, 4], initial_h=True),
    "forward_lbr1_nobias": dict(T=4, B=2, I=2, H=3, direction="forward", linear_before_reset=1,
                                bias=False),
    "reverse_lbr1": dict(T=6, B=3, I=3, H=4, direction="reverse", linear_before_reset=1,
                         bias=True, lengths=[6, 1, 3], initial_h=True),
    "reverse_lbr0": dict(T=5, B=2, I=3, H=2, direction="reverse", linear_before_reset=0,
                         bias=True),
    # a zero length with initial_h absent: ORT's Y_h (zeros) equals gru_cy's h0 (zeros).
    "bidirectional_lbr1": dict(T=5, B=4, I=3, H=5, direction="bidirectional",
                               linear_before_reset=1, bias=True, lengths=[5, 3, 0, 1]),
    "bidirectional_lbr0": dict(T=4, B=3, I=2, H=4, direction="bidirectional",
                               linear_before_reset=0, bias=True, lengths=[2, 4, 1],
                               initial_h=True),
    "layout1_bidirectional_lbr0": dict(T=5, B=3, I=3, H=3, direction="bidirectional",
                                       linear_before_reset=0, bias=True, initial_h=True,
                                       layout=1),
}

ONNX_UNSUPPORTED = {
    "clip": dict(extra_attrs={"clip": 3.0}),
    "activations": dict(extra_attrs={"activations": ["HardSigmoid", "Tanh"]}),
}


def make_onnx_node_case(name, case, seed):
    model, runnable, feeds, layout = _gru_node_model(case, seed)
    Y, Y_h = _run_ort(runnable.SerializeToString(), feeds)
    if layout == 1:  # the stored inputs and outputs take the model's layout
        feeds["X"] = np.ascontiguousarray(feeds["X"].transpose(1, 0, 2))
        if "initial_h" in feeds:
            feeds["initial_h"] = np.ascontiguousarray(feeds["initial_h"].transpose(1, 0, 2))
        Y = np.ascontiguousarray(Y.transpose(2, 0, 1, 3))  # (T, D, B, H) -> (B, T, D, H)
        Y_h = np.ascontiguousarray(Y_h.transpose(1, 0, 2))
    onnx.save(model, os.path.join(GOLDEN_DIR, f"onnx_{name}.onnx"))
    meta = dict(kind="node", layout=layout, inputs=sorted(feeds), ort_version=ort.__version__,
                case={k: v for k, v in case.items()})
    _save_npz(f"onnx_{name}.npz", meta, dict(feeds, Y=Y, Y_h=Y_h))


TORCH_EXPORT_CASES = {
    # constant folding off: W, R, B are Slice/Concat/Unsqueeze of the raw parameters.
    "torch_bi2_batch_first_unfolded": dict(I=3, H=4, L=2, bidirectional=True, batch_first=True,
                                           bias=True, h0=True, fold=False, opset=17, T=5, B=2),
    "torch_uni3_folded_opset11": dict(I=2, H=3, L=3, bidirectional=False, batch_first=False,
                                      bias=False, h0=False, fold=True, opset=11, T=4, B=3),
}


# The default exporter (dynamo=True, needs onnxscript) moves tensors over 256 bytes into
# "<model>.onnx.data" next to the model: ONNX external data.
DYNAMO_EXPORT_CASES = {
    "torch_dynamo_bi2_external_data": dict(I=3, H=4, L=2, bidirectional=True, batch_first=True,
                                           bias=True, h0=True, dynamo=True, T=5, B=2),
}


def make_torch_export_case(name, case, seed):
    torch.manual_seed(seed)
    module = torch.nn.GRU(case["I"], case["H"], num_layers=case["L"], bias=case["bias"],
                          batch_first=case["batch_first"], bidirectional=case["bidirectional"])
    D = 2 if case["bidirectional"] else 1
    T, B = case["T"], case["B"]
    x = torch.randn((B, T, case["I"]) if case["batch_first"] else (T, B, case["I"]))
    args, names = (x,), ["X"]
    if case["h0"]:
        args, names = (x, torch.randn(case["L"] * D, B, case["H"])), ["X", "initial_h"]
    path = os.path.join(GOLDEN_DIR, f"onnx_{name}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.get("dynamo"):
            torch.onnx.export(module, args, path, dynamo=True, input_names=names,
                              output_names=["Y", "Y_h"], verbose=False)
        else:
            torch.onnx.export(module, args, path, dynamo=False, do_constant_folding=case["fold"],
                              opset_version=case["opset"], input_names=names,
                              output_names=["Y", "Y_h"])
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    Y, Y_h = _run_ort(path, feeds)
    out, h_n = module(*args)
    assert np.abs(out.detach().numpy() - Y).max() < 1e-5
    meta = dict(kind="torch", layout=0, inputs=sorted(feeds), ort_version=ort.__version__,
                torch_version=torch.__version__, case=case)
    _save_npz(f"onnx_{name}.npz", meta, dict(feeds, Y=Y, Y_h=Y_h))


def make_unsupported(name, extra, seed):
    case = dict(T=3, B=1, I=2, H=2, direction="forward", linear_before_reset=1, bias=True, **extra)
    model, _, _, _ = _gru_node_model(case, seed)
    onnx.save(model, os.path.join(GOLDEN_DIR, f"onnx_unsupported_{name}.onnx"))


KERAS_CASES = {
    "gru_reset_after": dict(layers=[("GRU", dict(units=4))], lengths=[6, 2, 4]),
    "gru_reset_before": dict(layers=[("GRU", dict(units=4, reset_after=False))],
                             lengths=[6, 2, 4]),
    "gru_nobias": dict(layers=[("GRU", dict(units=3, use_bias=False))]),
    "gru_go_backwards": dict(layers=[("GRU", dict(units=4, go_backwards=True))],
                             lengths=[6, 2, 4]),
    "bidirectional_reset_before": dict(
        layers=[("Bidirectional", dict(units=4, reset_after=False))], lengths=[6, 2, 4]),
    "stack_bidirectional": dict(layers=[("Bidirectional", dict(units=3)),
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
        gru = keras.layers.GRU(**kwargs, return_sequences=True, return_state=last)
        layers.append(gru if kind == "GRU" else keras.layers.Bidirectional(gru))
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
        if spec["class_name"] == "GRU":
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
    np.savez_compressed(os.path.join(GOLDEN_DIR, f"keras_{name}.npz"),
             spec=np.array(json.dumps(specs, default=str)),
             meta=np.array(json.dumps(dict(keras_version=keras.__version__,
                                           backend=keras.backend.backend()))),
             **arrays)


def main():
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    for seed, (name, case) in enumerate(ONNX_NODE_CASES.items()):
        make_onnx_node_case(name, case, 100 + seed)
    for seed, (name, case) in enumerate(TORCH_EXPORT_CASES.items()):
        make_torch_export_case(name, case, 200 + seed)
    try:
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) needs it)
    except ImportError:
        print("onnxscript is not installed: kept the existing dynamo export golden files")
    else:
        for seed, (name, case) in enumerate(DYNAMO_EXPORT_CASES.items()):
            make_torch_export_case(name, case, 250 + seed)
    for seed, (name, extra) in enumerate(ONNX_UNSUPPORTED.items()):
        make_unsupported(name, extra, 300 + seed)
    for seed, (name, case) in enumerate(KERAS_CASES.items()):
        make_keras_case(name, case, 400 + seed)
    print(f"wrote {len(os.listdir(GOLDEN_DIR))} files in {GOLDEN_DIR}")


if __name__ == "__main__":
    main()
