"""gru_cy against golden results recorded from torch.nn.GRU (tests/golden/, written by
tests/make_golden.py). Torch is not needed to run these tests.

Each file is loaded with allow_pickle=False; the module is built from the stored config, the torch
parameters are loaded with load_state_dict, and forward_train + backward must reproduce torch's
out, h_n, dx, dh0 and every parameter gradient. The golden files are also checked against the
NumPy reference (float64), so a bad golden file cannot pass silently.
"""

import glob
import json
import os

import numpy as np
import pytest

import gru_cy
from reference import ref_gru_backward, ref_gru_forward

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN_FILES = sorted(glob.glob(os.path.join(GOLDEN_DIR, "torch_gru_*.npz")))
TOLERANCES = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-5)}


def _load(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    config = json.loads(str(arrays.pop("config")))
    return config, arrays


def _param_names(config):
    suffixes = ("", "_reverse") if config["bidirectional"] else ("",)
    names = []
    for k in range(config["num_layers"]):
        for s in suffixes:
            names += [f"weight_ih_l{k}{s}", f"weight_hh_l{k}{s}"]
            if config["bias"]:
                names += [f"bias_ih_l{k}{s}", f"bias_hh_l{k}{s}"]
    return names


def _case_id(path):
    return os.path.basename(path)[len("torch_gru_"):-len(".npz")]


def test_golden_files_exist():
    assert len(GOLDEN_FILES) >= 12, f"expected the golden files in {GOLDEN_DIR}"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=_case_id)
def test_gru_cy_matches_torch_golden(path):
    config, g = _load(path)
    dtype = np.dtype(config["dtype"])
    names = _param_names(config)
    gru = gru_cy.GRU(config["input_size"], config["hidden_size"], num_layers=config["num_layers"],
                     bias=config["bias"], batch_first=config["batch_first"], dropout=0.0,
                     bidirectional=config["bidirectional"], reset_after=True, dtype=dtype, seed=0)
    assert set(gru.params) == set(names)
    gru.load_state_dict({name: g[name] for name in names})
    for name in names:
        np.testing.assert_array_equal(gru.params[name], g[name], err_msg=f"loaded {name}")
    gru.zero_grad()

    lengths = g["lengths"] if config["has_lengths"] else None
    out, h_n, tape = gru.forward_train(g["x"], g["h0"], lengths)
    dx, dh0 = gru.backward(tape, g["dout"], g["dh_n"])
    out_inference, h_n_inference = gru(g["x"], g["h0"], lengths)

    tol = TOLERANCES[config["dtype"]]
    results = {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0,
               "out (__call__)": out_inference, "h_n (__call__)": h_n_inference}
    results.update({f"grad_{name}": gru.grads[name] for name in names})
    for label, actual in results.items():
        expected = g[label.split(" ")[0]]
        assert actual.shape == expected.shape, f"{label}: shape {actual.shape} != {expected.shape}"
        assert actual.dtype == dtype, f"{label}: dtype {actual.dtype} != {dtype}"
        np.testing.assert_allclose(actual, expected, err_msg=label, **tol)


@pytest.mark.parametrize("path", [p for p in GOLDEN_FILES if p.endswith("float64.npz")],
                         ids=_case_id)
def test_golden_file_matches_reference(path):
    """The stored torch results agree with the NumPy reference (guards the golden files)."""
    config, g = _load(path)
    x, h0, dout, dh_n = g["x"], g["h0"], g["dout"], g["dh_n"]
    if config["unbatched"]:
        x, dout, h0, dh_n = x[:, None], dout[:, None], h0[:, None], dh_n[:, None]
    elif config["batch_first"]:
        x, dout = x.swapaxes(0, 1), dout.swapaxes(0, 1)
    params = {name: g[name] for name in _param_names(config)}
    out, h_n, cache = ref_gru_forward(
        x, params, num_layers=config["num_layers"], bidirectional=config["bidirectional"],
        reset_after=True, bias=config["bias"], h0=h0,
        lengths=g["lengths"] if config["has_lengths"] else None)
    dx, dh0, grads = ref_gru_backward(cache, dout, dh_n)
    if config["unbatched"]:
        out, h_n, dx, dh0 = out[:, 0], h_n[:, 0], dx[:, 0], dh0[:, 0]
    elif config["batch_first"]:
        out, dx = out.swapaxes(0, 1), dx.swapaxes(0, 1)
    tol = TOLERANCES["float64"]
    for label, actual in {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}.items():
        np.testing.assert_allclose(actual, g[label], err_msg=label, **tol)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, g[f"grad_{name}"], err_msg=f"grad_{name}", **tol)
