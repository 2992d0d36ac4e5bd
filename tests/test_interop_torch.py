"""PyTorch: GRU.from_torch and gru.to_torch.

Without torch: a state dict (plain arrays) from the torch golden files converts through
from_torch's config inference, and the module reproduces torch's recorded outputs.
With torch: outputs within 1e-5 (float32) / 1e-12 (float64) of torch.nn.GRU on random inputs,
including packed variable lengths, bidirectional, several layers, batch_first, unbatched,
no bias; round trips gru_cy -> torch -> gru_cy exact; reset_after=False and go_backwards
refused with a clear ValueError.
"""

import glob
import json
import os

import numpy as np
import pytest

import gru_cy
from helpers import assert_same_modules

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ---------------------------------------------------------------------------
# without torch: state dicts of plain arrays


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(GOLDEN_DIR, "torch_gru_*.npz"))),
                         ids=os.path.basename)
def test_state_dict_from_golden_files(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["config"]))
    state = {k: v for k, v in arrays.items()
             if k.startswith(("weight_", "bias_")) and not k.startswith("grad_")}
    gru = gru_cy.GRU.from_torch(state, batch_first=config["batch_first"])
    assert (gru.num_layers, gru.bidirectional, gru.bias, gru.hidden_size, gru.input_size) == \
        (config["num_layers"], config["bidirectional"], config["bias"], config["hidden_size"],
         config["input_size"])
    assert gru.dtype == arrays["x"].dtype
    out, h_n = gru(arrays["x"], arrays["h0"], arrays.get("lengths"))
    tol = TOL[arrays["x"].dtype.type]
    np.testing.assert_allclose(out, arrays["out"], **tol)
    np.testing.assert_allclose(h_n, arrays["h_n"], **tol)


def test_state_dict_with_prefix_and_other_modules():
    gru = gru_cy.GRU(3, 4, num_layers=2, bidirectional=True, seed=0)
    model = {f"encoder.rnn.{k}": v for k, v in gru.state_dict().items()}
    checkpoint = {"epoch": 3, "model": model}
    checkpoint["model"]["head.weight"] = np.zeros((2, 8), np.float32)
    assert_same_modules(gru, gru_cy.GRU.from_torch(checkpoint))


@pytest.mark.parametrize("state, match", [
    ({"fc.weight": np.zeros((2, 2))}, "no GRU parameters"),
    ({"weight_ih_l0": np.zeros((16, 3)), "weight_hh_l0": np.zeros((16, 4))}, "LSTM"),
    ({"weight_ih_l0": np.zeros((12, 3)), "weight_hh_l0": np.zeros((12, 4)),
      "bias_ih_l0": np.zeros(12)}, "missing bias_hh_l0"),
    ({"weight_ih_l0": np.zeros((12, 3)), "weight_hh_l0": np.zeros((12, 4)),
      "weight_ih_l1": np.zeros((12, 5)), "weight_hh_l1": np.zeros((12, 4))}, "shape"),
    ({"a.weight_ih_l0": np.zeros((12, 3)), "a.weight_hh_l0": np.zeros((12, 4)),
      "b.weight_ih_l0": np.zeros((12, 3)), "b.weight_hh_l0": np.zeros((12, 4))}, "several"),
    ({"weight_ih_l0": np.zeros((12, 3), int), "weight_hh_l0": np.zeros((12, 4))}, "floats"),
])
def test_state_dict_errors(state, match):
    with pytest.raises(ValueError, match=match):
        gru_cy.GRU.from_torch(state)


# ---------------------------------------------------------------------------
# live: torch installed


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


CONFIGS = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, batch_first=True),
    dict(num_layers=2, bias=False, bidirectional=True, batch_first=True),
]


def _torch_outputs(torch, module, x, h0, lengths):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    xt, h0t = torch.from_numpy(x), torch.from_numpy(h0)
    with torch.no_grad():
        if lengths is None:
            out, h_n = module(xt, h0t)
        else:
            packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False,
                                          batch_first=module.batch_first)
            out, h_n = module(packed, h0t)
            out, _ = pad_packed_sequence(out, batch_first=module.batch_first,
                                         total_length=x.shape[1 if module.batch_first else 0])
    return out.numpy(), h_n.numpy()


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_from_torch_matches_torch(torch, config, dtype, with_lengths):
    torch.manual_seed(0)
    module = torch.nn.GRU(3, 5, **config).to(torch.float64 if dtype == np.float64 else
                                             torch.float32)
    gru = gru_cy.GRU.from_torch(module)
    assert gru.dtype == dtype and gru.batch_first == module.batch_first
    rng = np.random.default_rng(1)
    T, B = 7, 4
    x = rng.standard_normal((B, T, 3) if module.batch_first else (T, B, 3)).astype(dtype)
    h0 = rng.standard_normal((module.num_layers * (2 if module.bidirectional else 1), B, 5))
    h0 = h0.astype(dtype)
    lengths = [7, 2, 5, 1] if with_lengths else None
    ref_out, ref_h = _torch_outputs(torch, module, x, h0, lengths)
    out, h_n = gru(x, h0, lengths)
    np.testing.assert_allclose(out, ref_out, **TOL[dtype])
    np.testing.assert_allclose(h_n, ref_h, **TOL[dtype])


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_to_torch_matches_and_round_trips(torch, config):
    gru = gru_cy.GRU(3, 5, seed=2, dropout=0.5 if config.get("num_layers", 1) > 1 else 0.0,
                     **config)
    module = gru.to_torch()
    assert not module.training  # dropout off, like gru_cy's inference
    assert module.dropout == gru.dropout
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 3) if gru.batch_first else (6, 2, 3)).astype(np.float32)
    with torch.no_grad():
        ref_out, ref_h = module(torch.from_numpy(x))
    out, h_n = gru(x)
    np.testing.assert_allclose(out, ref_out.numpy(), **TOL[np.float32])
    np.testing.assert_allclose(h_n, ref_h.numpy(), **TOL[np.float32])
    back = gru_cy.GRU.from_torch(module)
    assert_same_modules(gru, back)
    assert back.dropout == gru.dropout


def test_to_torch_float64_and_unbatched(torch):
    gru = gru_cy.GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    module = gru.to_torch()
    assert module.weight_ih_l0.dtype == torch.float64
    x = np.random.default_rng(0).standard_normal((6, 3))
    with torch.no_grad():
        ref_out, ref_h = module(torch.from_numpy(x))
    out, h_n = gru(x)
    np.testing.assert_allclose(out, ref_out.numpy(), **TOL[np.float64])
    np.testing.assert_allclose(h_n, ref_h.numpy(), **TOL[np.float64])
    assert_same_modules(gru, gru_cy.GRU.from_torch(module))


def test_from_torch_state_dict_of_tensors(torch):
    module = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    assert_same_modules(gru_cy.GRU.from_torch(module), gru_cy.GRU.from_torch(module.state_dict()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(reset_after=False), "reset_after=False"),
    (dict(go_backwards=True), "go_backwards=True"),
])
def test_to_torch_refuses_what_torch_cannot_compute(torch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gru_cy.GRU(3, 4, **kwargs).to_torch()


def test_from_torch_wants_a_gru(torch):
    with pytest.raises(TypeError, match="torch.nn.GRU"):
        gru_cy.GRU.from_torch(torch.nn.LSTM(3, 4))
