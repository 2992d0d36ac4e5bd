"""Generate the golden files tests/golden/torch_lstm_<case>_<dtype>.npz with torch.nn.LSTM.

Run from anywhere:  python tests/make_golden_lstm.py
Needs torch; the test that reads the files (tests/test_golden_lstm.py) does not.

Each file holds (plain arrays, loadable with allow_pickle=False):
  config        0-d str array: JSON with input_size, hidden_size, num_layers, bias, batch_first,
                bidirectional, proj_size, dtype, unbatched, has_lengths, torch_version, seed
  <param name>  every parameter under its PyTorch name
  x, h0, c0, dout, dh_n, dc_n, lengths (only when has_lengths)
  out, h_n, c_n, dx, dh0, dc0, grad_<param name>   torch's results for
                loss = sum(out * dout) + sum(h_n * dh_n) + sum(c_n * dc_n)
x/out/dout/dx use the module's layout (batch_first or unbatched) as torch does. With lengths, the
input is packed with pack_padded_sequence(enforce_sorted=False) and out padded back to T.
"""

import json
import os

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")

_BASE = dict(input_size=3, hidden_size=4, num_layers=1, bias=True, batch_first=False,
             bidirectional=False, proj_size=0, unbatched=False, T=5, B=3, lengths=None)
CASES = {
    "uni1": dict(_BASE),
    "bi2_proj": dict(_BASE, num_layers=2, bidirectional=True, proj_size=2),
    "nobias_proj": dict(_BASE, input_size=4, hidden_size=5, num_layers=2, bias=False,
                        proj_size=3, T=4, B=2),
    "batch_first": dict(_BASE, hidden_size=5, batch_first=True, bidirectional=True, T=6, B=2),
    "unbatched": dict(_BASE, input_size=2, num_layers=2, bidirectional=True, unbatched=True),
    # torch's packed sequences reject zero lengths; unsorted on purpose.
    "packed_bi2_proj": dict(_BASE, num_layers=2, bidirectional=True, proj_size=3, T=6, B=4,
                            lengths=[4, 6, 1, 3]),
}
DTYPES = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}


def make_case(case, np_dtype, torch_dtype, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    I, H, L, P = case["input_size"], case["hidden_size"], case["num_layers"], case["proj_size"]
    D, R = (2 if case["bidirectional"] else 1), (P or H)
    T, B = case["T"], case["B"]
    lstm = torch.nn.LSTM(I, H, num_layers=L, bias=case["bias"], batch_first=case["batch_first"],
                         bidirectional=case["bidirectional"], proj_size=P).to(torch_dtype)
    if case["unbatched"]:
        x_shape, out_shape, h_shape, c_shape = (T, I), (T, D * R), (L * D, R), (L * D, H)
    elif case["batch_first"]:
        x_shape, out_shape = (B, T, I), (B, T, D * R)
        h_shape, c_shape = (L * D, B, R), (L * D, B, H)
    else:
        x_shape, out_shape = (T, B, I), (T, B, D * R)
        h_shape, c_shape = (L * D, B, R), (L * D, B, H)
    draw = lambda shape: rng.standard_normal(shape).astype(np_dtype)  # noqa: E731
    x, h0, c0 = draw(x_shape), draw(h_shape), draw(c_shape)
    dout, dh_n, dc_n = draw(out_shape), draw(h_shape), draw(c_shape)
    if case["lengths"] is not None:
        for b, n in enumerate(case["lengths"]):
            dout[n:, b] = 0  # padded outputs are constants
    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    if case["lengths"] is not None:
        packed = pack_padded_sequence(xt, torch.tensor(case["lengths"]),
                                      batch_first=case["batch_first"], enforce_sorted=False)
        out_p, (hn_t, cn_t) = lstm(packed, (h0t, c0t))
        out_t, _ = pad_packed_sequence(out_p, batch_first=case["batch_first"], total_length=T)
    else:
        out_t, (hn_t, cn_t) = lstm(xt, (h0t, c0t))
    loss = ((out_t * torch.tensor(dout)).sum() + (hn_t * torch.tensor(dh_n)).sum()
            + (cn_t * torch.tensor(dc_n)).sum())
    loss.backward()
    config = {key: case[key] for key in ("input_size", "hidden_size", "num_layers", "bias",
                                         "batch_first", "bidirectional", "proj_size",
                                         "unbatched")}
    config.update(dtype=np.dtype(np_dtype).name, has_lengths=case["lengths"] is not None,
                  torch_version=torch.__version__, seed=seed)
    arrays = {"config": np.array(json.dumps(config, sort_keys=True))}
    for name, p in lstm.named_parameters():
        arrays[name] = p.detach().numpy().copy()
        arrays[f"grad_{name}"] = p.grad.numpy().copy()
    value = lambda t: t.detach().numpy().copy()  # noqa: E731
    arrays.update(x=x, h0=h0, c0=c0, dout=dout, dh_n=dh_n, dc_n=dc_n, out=value(out_t),
                  h_n=value(hn_t), c_n=value(cn_t), dx=value(xt.grad), dh0=value(h0t.grad),
                  dc0=value(c0t.grad))
    if case["lengths"] is not None:
        arrays["lengths"] = np.asarray(case["lengths"], dtype=np.int64)
    return arrays


def main():
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    for seed, (case_name, case) in enumerate(CASES.items()):
        for dtype_name, (np_dtype, torch_dtype) in DTYPES.items():
            arrays = make_case(case, np_dtype, torch_dtype, seed=200 + seed)
            path = os.path.join(GOLDEN_DIR, f"torch_lstm_{case_name}_{dtype_name}.npz")
            np.savez_compressed(path, **arrays)
            with np.load(path, allow_pickle=False) as check:
                assert set(check.files) == set(arrays)
            print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
