"""Generate the golden files tests/golden/torch_rnn_<case>.npz with torch.nn.RNN.

Run from anywhere:  python tests/make_golden_rnn.py
Needs torch; the tests that read the files (tests/test_rnn.py) do not.

Each file holds (all plain arrays, loadable with allow_pickle=False):
  config        0-d str array: JSON with input_size, hidden_size, num_layers, nonlinearity, bias,
                batch_first, bidirectional, dtype, unbatched, has_lengths, torch_version, seed
  <param name>  every parameter under its PyTorch name
  x, h0, dout, dh_n, lengths (only when has_lengths)
  out, h_n, dx, dh0, grad_<param name>   torch's results for
                loss = sum(out * dout) + sum(h_n * dh_n)
x/out/dout/dx use the module's layout (batch_first or unbatched) exactly as torch does; h0/h_n/dh_n
are (L*D, B, H), or (L*D, H) when unbatched. With lengths, the input is packed with
pack_padded_sequence(enforce_sorted=False), out is padded back to T with zeros and dout is zero at
the padded steps.
"""

import json
import os

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")

CASES = {
    "tanh_uni1": dict(input_size=3, hidden_size=4, num_layers=1, nonlinearity="tanh", bias=True,
                      batch_first=False, bidirectional=False, unbatched=False, T=5, B=3,
                      lengths=None),
    "relu_bi2": dict(input_size=3, hidden_size=4, num_layers=2, nonlinearity="relu", bias=True,
                     batch_first=False, bidirectional=True, unbatched=False, T=5, B=3,
                     lengths=None),
    "tanh_nobias_batch_first": dict(input_size=4, hidden_size=3, num_layers=2,
                                    nonlinearity="tanh", bias=False, batch_first=True,
                                    bidirectional=False, unbatched=False, T=4, B=2, lengths=None),
    "relu_unbatched": dict(input_size=2, hidden_size=4, num_layers=2, nonlinearity="relu",
                           bias=True, batch_first=False, bidirectional=True, unbatched=True, T=5,
                           B=None, lengths=None),
    # torch's packed sequences reject zero lengths; lengths are unsorted on purpose.
    "tanh_packed_bi2": dict(input_size=3, hidden_size=4, num_layers=2, nonlinearity="tanh",
                            bias=True, batch_first=False, bidirectional=True, unbatched=False,
                            T=6, B=4, lengths=[4, 6, 1, 3]),
}

DTYPES = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}


def make_case(case, np_dtype, torch_dtype, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    I, H, L = case["input_size"], case["hidden_size"], case["num_layers"]
    D = 2 if case["bidirectional"] else 1
    T, B = case["T"], case["B"]
    rnn = torch.nn.RNN(I, H, num_layers=L, nonlinearity=case["nonlinearity"], bias=case["bias"],
                       batch_first=case["batch_first"],
                       bidirectional=case["bidirectional"]).to(torch_dtype)
    if case["unbatched"]:
        x_shape, h_shape, out_shape = (T, I), (L * D, H), (T, D * H)
    elif case["batch_first"]:
        x_shape, h_shape, out_shape = (B, T, I), (L * D, B, H), (B, T, D * H)
    else:
        x_shape, h_shape, out_shape = (T, B, I), (L * D, B, H), (T, B, D * H)
    x = rng.standard_normal(x_shape).astype(np_dtype)
    h0 = rng.standard_normal(h_shape).astype(np_dtype)
    dout = rng.standard_normal(out_shape).astype(np_dtype)
    dh_n = rng.standard_normal(h_shape).astype(np_dtype)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    if case["lengths"] is not None:
        valid = np.arange(T)[:, None] < np.asarray(case["lengths"])[None, :]
        dout = dout * (valid.T if case["batch_first"] else valid)[:, :, None].astype(np_dtype)
        packed = pack_padded_sequence(xt, torch.tensor(case["lengths"]),
                                      batch_first=case["batch_first"], enforce_sorted=False)
        out_packed, hn_t = rnn(packed, h0t)
        out_t, _ = pad_packed_sequence(out_packed, batch_first=case["batch_first"], total_length=T)
    else:
        out_t, hn_t = rnn(xt, h0t)
    loss = (out_t * torch.tensor(dout)).sum() + (hn_t * torch.tensor(dh_n)).sum()
    loss.backward()

    config = {key: case[key] for key in ("input_size", "hidden_size", "num_layers",
                                         "nonlinearity", "bias", "batch_first", "bidirectional",
                                         "unbatched")}
    config.update(dtype=np.dtype(np_dtype).name, has_lengths=case["lengths"] is not None,
                  torch_version=torch.__version__, seed=seed)
    arrays = {"config": np.array(json.dumps(config, sort_keys=True))}
    for name, p in rnn.named_parameters():
        arrays[name] = p.detach().numpy().copy()
        arrays[f"grad_{name}"] = p.grad.numpy().copy()
    arrays.update(x=x, h0=h0, dout=dout, dh_n=dh_n,
                  out=out_t.detach().numpy().copy(), h_n=hn_t.detach().numpy().copy(),
                  dx=xt.grad.numpy().copy(), dh0=h0t.grad.numpy().copy())
    if case["lengths"] is not None:
        arrays["lengths"] = np.asarray(case["lengths"], dtype=np.int64)
    return arrays


def main():
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    for seed, (case_name, case) in enumerate(CASES.items()):
        for dtype_name, (np_dtype, torch_dtype) in DTYPES.items():
            arrays = make_case(case, np_dtype, torch_dtype, seed=200 + seed)
            path = os.path.join(GOLDEN_DIR, f"torch_rnn_{case_name}_{dtype_name}.npz")
            np.savez_compressed(path, **arrays)
            with np.load(path, allow_pickle=False) as check:   # must never need pickle
                assert set(check.files) == set(arrays)
            print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
