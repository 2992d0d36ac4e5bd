"""Generate tests/golden/session_ops.npz: single-node models, their inputs and expected outputs.

Run from anywhere:  python tests/make_golden_session.py
Needs onnx and onnxruntime; tests/test_session_ops.py reads the file without either.

For every case of tests/session_cases.py, twice (inputs fed at run time, then every
input stored in the file), and every recurrent case, the file holds, under the key
prefix ``<case>::``:
  model        uint8, the serialized ModelProto
  in::<name>   each input fed to the run
  out<k>       output k from the reference: onnx.reference.ReferenceEvaluator, or ONNX
               Runtime where the case says so (and for recurrent nodes)
Thousands of small arrays are stored as two (allow_pickle=False): ``blob``, every array's
bytes one after the other (uint8), and ``meta``, a 0-d str: JSON {"onnx": version,
"onnxruntime": version, "arrays": {key: [offset, dtype, shape]}}.
"""

import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from session_cases import build, build_recurrent, cases, recurrent_cases  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "session_ops.npz")


def expected(model, feeds, reference):
    if reference == "onnx":
        return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feeds)]
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def main():
    arrays = {}

    def store(key, model, feeds, outputs):
        arrays[f"{key}::model"] = np.frombuffer(model.SerializeToString(), np.uint8)
        for name, value in feeds.items():
            arrays[f"{key}::in::{name}"] = value
        for k, value in enumerate(outputs):
            arrays[f"{key}::out{k}"] = value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in cases():
            for stored in (False, True):
                model, feeds = build(case, stored, onnx)
                store(case.name + ("@stored" if stored else ""), model, feeds,
                      expected(model, feeds, case.reference))
        for name, op, attrs, inputs, n_out in recurrent_cases():
            model, feeds = build_recurrent(name, op, attrs, inputs, n_out, onnx)
            store(name, model, feeds, expected(model, feeds, "ort"))
    index, chunks, offset = {}, [], 0
    for key, value in arrays.items():
        value = np.asarray(value)
        index[key] = [offset, value.dtype.str, list(value.shape)]
        chunks.append(value.tobytes())
        offset += value.nbytes
    meta = {"onnx": onnx.__version__, "onnxruntime": ort.__version__, "arrays": index}
    blob = np.frombuffer(b"".join(chunks), np.uint8)
    np.savez_compressed(GOLDEN, meta=np.array(json.dumps(meta)), blob=blob)
    print(f"{GOLDEN}: {len(arrays)} arrays, {os.path.getsize(GOLDEN)} bytes")


if __name__ == "__main__":
    main()
