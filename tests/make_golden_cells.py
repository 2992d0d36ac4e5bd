"""Generate the golden files tests/golden/torch_cell_<kind>_<case>_<dtype>.npz with
torch.nn.GRUCell, torch.nn.LSTMCell and torch.nn.RNNCell.

Run from anywhere:  python tests/make_golden_cells.py
Needs torch; the tests that read the files (tests/test_cells.py) do not.

Each file holds (plain arrays, loadable with allow_pickle=False):
  config        0-d str array: JSON with kind ("gru", "lstm", "rnn_tanh", "rnn_relu"),
                input_size, hidden_size, bias, unbatched, dtype, torch_version, seed
  <param name>  weight_ih, weight_hh (bias_ih, bias_hh), torch's initialisation
  x (B, I) or (I,); h0 (and c0 for the LSTM) of the state's shape
  dh (and dc): the gradient of the new state, drawn at random
  h (and c): torch's new state; dx, dh0 (and dc0), grad_<param name> for
                loss = sum(h * dh) (+ sum(c * dc))
"""

import json
import os

import numpy as np
import torch

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")

CASES = {
    "batched": dict(input_size=5, hidden_size=4, bias=True, B=3),
    "nobias": dict(input_size=3, hidden_size=6, bias=False, B=2),
    "unbatched": dict(input_size=4, hidden_size=5, bias=True, B=None),
}
KINDS = {
    "gru": lambda I, H, bias: torch.nn.GRUCell(I, H, bias=bias),
    "lstm": lambda I, H, bias: torch.nn.LSTMCell(I, H, bias=bias),
    "rnn_tanh": lambda I, H, bias: torch.nn.RNNCell(I, H, bias=bias, nonlinearity="tanh"),
    "rnn_relu": lambda I, H, bias: torch.nn.RNNCell(I, H, bias=bias, nonlinearity="relu"),
}
DTYPES = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}


def make(kind, case, np_dtype, torch_dtype, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    I, H, B = case["input_size"], case["hidden_size"], case["B"]
    cell = KINDS[kind](I, H, case["bias"]).to(torch_dtype)
    lead = () if B is None else (B,)

    def draw(*shape):
        return rng.standard_normal(lead + shape).astype(np_dtype)

    arrays = {name: p.detach().numpy().copy() for name, p in cell.named_parameters()}
    x, h0, dh = draw(I), draw(H), draw(H)
    tx = torch.from_numpy(x).requires_grad_(True)
    th0 = torch.from_numpy(h0).requires_grad_(True)
    arrays.update(x=x, h0=h0, dh=dh)
    if kind == "lstm":
        c0, dc = draw(H), draw(H)
        tc0 = torch.from_numpy(c0).requires_grad_(True)
        h, c = cell(tx, (th0, tc0))
        loss = (h * torch.from_numpy(dh)).sum() + (c * torch.from_numpy(dc)).sum()
        arrays.update(c0=c0, dc=dc)
    else:
        h = cell(tx, th0)
        loss = (h * torch.from_numpy(dh)).sum()
    loss.backward()
    arrays.update(h=h.detach().numpy(), dx=tx.grad.numpy(), dh0=th0.grad.numpy())
    if kind == "lstm":
        arrays.update(c=c.detach().numpy(), dc0=tc0.grad.numpy())
    for name, p in cell.named_parameters():
        arrays[f"grad_{name}"] = p.grad.numpy()
    config = dict(kind=kind, input_size=I, hidden_size=H, bias=case["bias"],
                  unbatched=B is None, dtype=np.dtype(np_dtype).name,
                  torch_version=torch.__version__, seed=seed)
    arrays["config"] = np.array(json.dumps(config))
    return arrays


def main():
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    seed = 0
    for kind in KINDS:
        for case_name, case in CASES.items():
            for dtype_name, (np_dtype, torch_dtype) in DTYPES.items():
                seed += 1
                arrays = make(kind, case, np_dtype, torch_dtype, seed)
                path = os.path.join(GOLDEN_DIR,
                                    f"torch_cell_{kind}_{case_name}_{dtype_name}.npz")
                np.savez(path, **arrays)
                print("wrote", path)


if __name__ == "__main__":
    main()
