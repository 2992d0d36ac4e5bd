"""Generate tests/golden/session_<model>_<exporter>.{onnx,npz}: whole models exported from PyTorch.

Run from anywhere:  python tests/make_golden_session_models.py
Needs torch, onnx, onnxscript and onnxruntime; tests/test_session_models.py reads the
files without any of them.

For every model of tests/session_models.py and both exporters (``torchscript``:
torch.onnx.export(dynamo=False), ``dynamo``; the models of TORCHSCRIPT_ONLY, which
torch.export refuses, with the first only), the .onnx file is the export (dynamic
batch and time axes where the exporter keeps them) and the .npz holds (plain arrays,
allow_pickle=False), for each (batch, time) of session_models.SHAPES that ONNX Runtime
runs: ``<B>x<T>::in::<name>`` the inputs and ``<B>x<T>::out<k>`` ONNX Runtime's outputs;
``meta`` a 0-d str: JSON {"torch", "onnxruntime", "shapes_failing": [...]}. For the
streaming model (text_gru) it also holds ``stream::tokens`` (B, 100) fed one step per
call, each call fed the previous call's h_n, with ONNX Runtime's per-step
``stream::probs`` and final ``stream::h_n``.
"""

import json
import os
import sys
import warnings

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from session_models import MODELS, SHAPES, TORCHSCRIPT_ONLY, export  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
EXPORTERS = {"torchscript": False, "dynamo": True}
STREAM_STEPS = 100


def stream(session, tokens, h0):
    """ONNX Runtime fed one token per call, and its own state."""
    probs, h = [], h0
    for t in range(tokens.shape[1]):
        p, h = session.run(None, {"tokens": tokens[:, t:t + 1], "h0": h})
        probs.append(p)
    return np.concatenate(probs, axis=1), h


def main():
    warnings.simplefilter("ignore")
    for name in MODELS:
        for exporter, dynamo in EXPORTERS.items():
            if dynamo and name in TORCHSCRIPT_ONLY:
                continue
            base = os.path.join(GOLDEN, f"session_{name}_{exporter}")
            _, _, _, make_inputs = export(name, dynamo, base + ".onnx")
            session = ort.InferenceSession(base + ".onnx", providers=["CPUExecutionProvider"])
            arrays, failing = {}, []
            for B, T in SHAPES:
                feeds = make_inputs(B, T)
                try:
                    outputs = session.run(None, feeds)
                except Exception:  # noqa: BLE001  (the exporter fixed this axis)
                    failing.append([B, T])
                    continue
                for k, v in feeds.items():
                    arrays[f"{B}x{T}::in::{k}"] = v
                for k, v in enumerate(outputs):
                    arrays[f"{B}x{T}::out{k}"] = v
            if name == "text_gru":
                feeds = make_inputs(2, STREAM_STEPS)
                probs, h_n = stream(session, feeds["tokens"], feeds["h0"])
                arrays.update({"stream::tokens": feeds["tokens"], "stream::h0": feeds["h0"],
                               "stream::probs": probs, "stream::h_n": h_n})
            meta = {"torch": torch.__version__, "onnxruntime": ort.__version__,
                    "shapes_failing": failing}
            np.savez_compressed(base + ".npz", meta=np.array(json.dumps(meta)), **arrays)
            print(base, os.path.getsize(base + ".onnx"), "bytes", failing or "")


if __name__ == "__main__":
    main()
