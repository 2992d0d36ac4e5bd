"""The peers of the GRU benchmark: gru_cy, a NumPy GRU, torch.nn.GRU and ONNX
Runtime, each built from a case's weights and inputs with ``forward()`` and,
where it can, ``train()``; the ONNX models ONNX Runtime runs; which peers are
installed. Peers are imported only when used.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from gru_cy._reference import numpy_layer_backward, numpy_layer_forward

__all__ = ["NumpyPeer", "GruCyPeer", "TorchPeer", "OrtPeer", "Unsupported", "available_peers",
           "onnx_gru_model", "torch_onnx_model", "ort_session"]


# the NumPy peer: a plain vectorised GRU (forward for every configuration,
# training for one layer and direction over full lengths)
# (gru_cy._reference: also the self-check's reference)


class NumpyPeer:
    name = "numpy"

    def __init__(self, case, params, x, h0, dout, lengths):
        self.case, self.params, self.x, self.h0, self.dout = case, params, x, h0, dout
        self.lengths = lengths

    def forward(self):
        c = self.case
        layer_in = self.x
        for k in range(c.num_layers):
            outs = []
            for d in range(c.D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                p = self.params
                out, _, _ = numpy_layer_forward(
                    layer_in, p["weight_ih" + sfx], p["weight_hh" + sfx], p["bias_ih" + sfx],
                    p["bias_hh" + sfx], self.h0[k * c.D + d], c.reset_after, d == 1,
                    self.lengths)
                outs.append(out)
            layer_in = outs[0] if c.D == 1 else np.concatenate(outs, axis=2)
        return layer_in

    def supports_train(self):
        c = self.case
        return c.num_layers == 1 and c.D == 1 and not c.varlen

    def train(self):
        p = self.params
        out, _, saved = numpy_layer_forward(
            self.x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"],
            self.h0[0], self.case.reset_after, False, None, keep=True)
        return numpy_layer_backward(self.dout, np.zeros_like(self.h0[0]), saved, self.x,
                                    p["weight_ih_l0"], p["weight_hh_l0"], self.case.reset_after)


# ---------------------------------------------------------------------------
# gru_cy


class GruCyPeer:
    name = "gru_cy"

    def __init__(self, case, params, x, h0, dout, lengths):
        import gru_cy

        self.gru = gru_cy.GRU(case.I, case.H, num_layers=case.num_layers,
                              bidirectional=case.bidirectional, reset_after=case.reset_after,
                              dtype=np.dtype(case.dtype), seed=0)
        self.gru.load_state_dict(params)
        self.x, self.h0, self.dout, self.lengths = x, h0, dout, lengths

    def forward(self):
        return self.gru(self.x, self.h0, lengths=self.lengths)

    def supports_train(self):
        return True

    def train(self):
        out, h_n, tape = self.gru.forward_train(self.x, self.h0, lengths=self.lengths)
        return self.gru.backward(tape, self.dout)


# ---------------------------------------------------------------------------
# PyTorch


class TorchPeer:
    name = "torch"

    def __init__(self, case, params, x, h0, dout, lengths):
        import torch

        if not case.reset_after:
            raise Unsupported("torch.nn.GRU has no reset_after=False variant")
        tdt = torch.float64 if case.dtype == "float64" else torch.float32
        self.torch = torch
        self.m = torch.nn.GRU(case.I, case.H, num_layers=case.num_layers,
                              bidirectional=case.bidirectional).to(tdt)
        self.m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
        self.x = torch.from_numpy(x)
        self.h0 = torch.from_numpy(h0)
        self.dout = torch.from_numpy(dout)
        self.lengths = None if lengths is None else torch.from_numpy(lengths)

    def _run(self, x):
        torch = self.torch
        if self.lengths is None:
            return self.m(x, self.h0)[0]
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, self.lengths, enforce_sorted=False)
        out, _ = self.m(packed, self.h0)
        return torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])[0]

    def forward(self):
        with self.torch.no_grad():
            return self._run(self.x)

    def supports_train(self):
        return True

    def train(self):
        x = self.x.detach().requires_grad_(True)
        out = self._run(x)
        out.backward(self.dout)
        return x.grad


# ---------------------------------------------------------------------------
# ONNX Runtime


class Unsupported(Exception):
    pass


def onnx_gru_model(case, params, T, B, with_lengths):
    """An ONNX graph of the case's GRU built node by node (for what
    torch.onnx.export cannot express: reset_after=False, sequence_lens)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H, D = case.H, case.D
    ttype = TensorProto.DOUBLE if case.dtype == "float64" else TensorProto.FLOAT
    inits, nodes = [], []

    def zrn(w):  # r, z, n -> z, r, n (ONNX gate order)
        return np.concatenate([w[H:2 * H], w[:H], w[2 * H:]])

    inputs = [helper.make_tensor_value_info("x", ttype, [T, B, case.I]),
              helper.make_tensor_value_info("h0", ttype, [case.num_layers * D, B, H])]
    if with_lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, [B]))
    layer_in = "x"
    for k in range(case.num_layers):
        sfx = [f"_l{k}" + ("_reverse" if d else "") for d in range(D)]
        W = np.stack([zrn(params["weight_ih" + s]) for s in sfx])
        R = np.stack([zrn(params["weight_hh" + s]) for s in sfx])
        Bias = np.stack([np.concatenate([zrn(params["bias_ih" + s]), zrn(params["bias_hh" + s])])
                         for s in sfx])
        for name, arr in (("W", W), ("R", R), ("B", Bias)):
            inits.append(numpy_helper.from_array(arr, f"{name}{k}"))
        # h0 of this layer: h0[k * D:(k + 1) * D]
        inits.append(numpy_helper.from_array(np.array([k * D], np.int64), f"st{k}"))
        inits.append(numpy_helper.from_array(np.array([(k + 1) * D], np.int64), f"en{k}"))
        inits.append(numpy_helper.from_array(np.array([0], np.int64), f"ax{k}"))
        nodes.append(helper.make_node("Slice", ["h0", f"st{k}", f"en{k}", f"ax{k}"], [f"h0_{k}"]))
        nodes.append(helper.make_node(
            "GRU", [layer_in, f"W{k}", f"R{k}", f"B{k}", "lengths" if with_lengths else "",
                    f"h0_{k}"], [f"y{k}", f"yh{k}"], hidden_size=H,
            direction="bidirectional" if D == 2 else "forward",
            linear_before_reset=1 if case.reset_after else 0))
        # Y (T, D, B, H) -> (T, B, D * H)
        nodes.append(helper.make_node("Transpose", [f"y{k}"], [f"yt{k}"], perm=[0, 2, 1, 3]))
        inits.append(numpy_helper.from_array(np.array([T, B, D * H], np.int64), f"shape{k}"))
        nodes.append(helper.make_node("Reshape", [f"yt{k}", f"shape{k}"], [f"out{k}"]))
        layer_in = f"out{k}"
    nodes.append(helper.make_node("Identity", [layer_in], ["out"]))
    graph = helper.make_graph(nodes, "gru", inputs,
                              [helper.make_tensor_value_info("out", ttype, [T, B, D * H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def torch_onnx_model(case, params, T, B):
    """The ONNX model torch.onnx.export writes for the equivalent nn.GRU."""
    import torch

    tdt = torch.float64 if case.dtype == "float64" else torch.float32
    m = torch.nn.GRU(case.I, case.H, num_layers=case.num_layers,
                     bidirectional=case.bidirectional).to(tdt)
    m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
    f = io.BytesIO()
    x = torch.zeros(T, B, case.I, dtype=tdt)
    h0 = torch.zeros(case.num_layers * case.D, B, case.H, dtype=tdt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x, h0), f, input_names=["x", "h0"], output_names=["out", "h_n"],
                          dynamo=False)
    return f.getvalue()


def ort_session(model_bytes, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


class OrtPeer:
    name = "onnxruntime"

    def __init__(self, case, params, x, h0, dout, lengths, threads):
        self.note = ""
        use_torch = case.reset_after and lengths is None and "torch" in available_peers()
        if use_torch:
            model = torch_onnx_model(case, params, case.T, case.B)
        else:
            model = onnx_gru_model(case, params, case.T, case.B, lengths is not None)
            self.note = "model built with onnx.helper (torch.onnx.export cannot express it)"
        self.sess = ort_session(model, threads)
        self.feed = {"x": x, "h0": h0}
        if lengths is not None:
            self.feed["lengths"] = lengths.astype(np.int32)
        self.sess.run(None, self.feed)       # fails here if ORT lacks the kernel

    def forward(self):
        return self.sess.run(None, self.feed)

    def supports_train(self):
        return False


def available_peers():
    if not hasattr(available_peers, "cache"):
        found = set()
        for mod in ("torch", "onnxruntime", "onnx"):
            try:
                __import__(mod)
                found.add(mod)
            except Exception:  # noqa: BLE001  (a broken install counts as missing)
                pass
        available_peers.cache = found
    return available_peers.cache
