"""gru_cy.LSTM against golden results recorded from torch.nn.LSTM (tests/golden/torch_lstm_*,
written by tests/make_golden_lstm.py). Torch is not needed to run these tests.

The module is built from the stored config, the torch parameters are loaded with load_state_dict,
and forward_train + backward must reproduce torch's out, h_n, c_n, dx, dh0, dc0 and every
parameter gradient. The files are also checked against the NumPy reference (float64), so a bad
golden file cannot pass silently.
"""

import glob
import json
import os

import numpy as np
import pytest

import gru_cy
from reference_lstm import lstm_param_names, ref_lstm_backward, ref_lstm_forward

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN_FILES = sorted(glob.glob(os.path.join(GOLDEN_DIR, "torch_lstm_*.npz")))
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-5)}


def _load(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return json.loads(str(arrays.pop("config"))), arrays


def _names(c):
    return lstm_param_names(c["num_layers"], c["bidirectional"], c["bias"], c["proj_size"])


def test_golden_files_exist():
    assert len(GOLDEN_FILES) >= 12, f"expected the LSTM golden files in {GOLDEN_DIR}"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=os.path.basename)
def test_matches_torch_golden(path):
    c, g = _load(path)
    dtype = np.dtype(c["dtype"])
    m = gru_cy.LSTM(c["input_size"], c["hidden_size"], num_layers=c["num_layers"], bias=c["bias"],
                    batch_first=c["batch_first"], bidirectional=c["bidirectional"],
                    proj_size=c["proj_size"], dtype=dtype, seed=0)
    names = _names(c)
    assert list(m.params) == names
    m.load_state_dict({n: g[n] for n in names})
    lengths = g.get("lengths")
    out, (hn, cn), tape = m.forward_train(g["x"], (g["h0"], g["c0"]), lengths=lengths)
    dx, (dh0, dc0) = m.backward(tape, g["dout"], (g["dh_n"], g["dc_n"]))
    for label, actual in (("out", out), ("h_n", hn), ("c_n", cn), ("dx", dx), ("dh0", dh0),
                          ("dc0", dc0)):
        assert actual.dtype == dtype
        np.testing.assert_allclose(actual, g[label], err_msg=label, **TOL[c["dtype"]])
    for n in names:
        np.testing.assert_allclose(m.grads[n], g[f"grad_{n}"], err_msg=n, **TOL[c["dtype"]])


@pytest.mark.parametrize("path", [p for p in GOLDEN_FILES if p.endswith("float64.npz")],
                         ids=os.path.basename)
def test_golden_files_agree_with_the_reference(path):
    c, g = _load(path)
    x, h0, c0, dout, dh_n, dc_n = (g[k] for k in ("x", "h0", "c0", "dout", "dh_n", "dc_n"))
    if c["unbatched"]:
        x, h0, c0, dout = x[:, None], h0[:, None], c0[:, None], dout[:, None]
        dh_n, dc_n = dh_n[:, None], dc_n[:, None]
    elif c["batch_first"]:
        x, dout = x.transpose(1, 0, 2), dout.transpose(1, 0, 2)
    out, hn, cn, cache = ref_lstm_forward(
        x, {n: g[n] for n in _names(c)}, num_layers=c["num_layers"],
        bidirectional=c["bidirectional"], bias=c["bias"], proj_size=c["proj_size"], h0=h0, c0=c0,
        lengths=g.get("lengths"))
    dx, dh0, dc0, grads = ref_lstm_backward(cache, dout, dh_n, dc_n)
    if c["unbatched"]:
        out, hn, cn, dx, dh0, dc0 = (a[:, 0] for a in (out, hn, cn, dx, dh0, dc0))
    elif c["batch_first"]:
        out, dx = out.transpose(1, 0, 2), dx.transpose(1, 0, 2)
    for label, value in (("out", out), ("h_n", hn), ("c_n", cn), ("dx", dx), ("dh0", dh0),
                         ("dc0", dc0)):
        np.testing.assert_allclose(g[label], value, rtol=1e-10, atol=1e-12, err_msg=label)
    for n, value in grads.items():
        np.testing.assert_allclose(g[f"grad_{n}"], value, rtol=1e-10, atol=1e-12, err_msg=n)
