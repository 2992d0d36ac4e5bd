"""Frozen inference at fp32, bf16 and int8 (module.freeze) against PyTorch's float32, bf16
autocast and int8 dynamic quantisation, one thread, in one run.

    python benchmarks/bench_precision.py [--quick] [--budget SECONDS] [--out PREFIX]

Per cell (GRU, LSTM) and shape (T, B, I, H), the same weights and inputs everywhere:

- gru_cy float32 (the module, m(x)), frozen fp32 (bit for bit m(x)), frozen bf16, frozen int8;
- torch.nn.GRU / LSTM in float32 (no_grad), under torch.autocast("cpu", dtype=torch.bfloat16),
  and after torch.ao.quantization.quantize_dynamic(..., dtype=torch.qint8) (its deprecation
  warning suppressed).

The peers take turns call by call (gru_cy.bench's interleaved timer), so a busy machine slows
all of them alike; each one's median is reported. Ratios: "vs fp32" is gru_cy float32's time
over the row's, "vs torch" the matching PyTorch precision's time over gru_cy's (> 1: gru_cy is
faster). Errors: the largest |out - out_fp32| over the whole output, against gru_cy's float32
output of the same model (PyTorch's float32 agrees with it to ~1e-6).

Then step() latency at B = 1, I = H = 64 for each precision (the module's step() and the frozen
ones'), and torch.nn.GRUCell / LSTMCell in float32 for scale.

Results: benchmarks/results/precision-<date>.json and .md (or --out PREFIX).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import sys
import warnings

import numpy as np

import gru_cy
from gru_cy.bench import Threads, environment, time_peers, wait_until_quiet
from gru_cy.kernels import _core

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = [(100, 32, 128, 128), (100, 64, 256, 256), (50, 128, 512, 512)]
QUICK = [(100, 32, 128, 128)]
STEP = (1, 64, 64)         # B, I, H
PRECISIONS = ("fp32", "bf16", "int8")


def torch_peers(module, x):
    """PyTorch's float32, bf16-autocast and int8-dynamic calls on the module's weights, or {}."""
    try:
        import torch
    except ImportError:
        return {}
    tm = module.to_torch().eval()

    class Wrap(torch.nn.Module):         # quantize_dynamic swaps children, not the root
        def __init__(self, rnn):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = torch.ao.quantization.quantize_dynamic(
            Wrap(tm), {torch.nn.GRU, torch.nn.LSTM}, dtype=torch.qint8)
    xt = torch.from_numpy(x)

    def fp32():
        with torch.no_grad():
            return tm(xt)[0]

    def bf16():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return tm(xt)[0]

    def int8():
        with torch.no_grad():
            return qm(xt)[0]

    return {"fp32": fp32, "bf16": bf16, "int8": int8}


def run_shape(cls, shape, budget):
    T, B, I, H = shape
    rng = np.random.default_rng(0)
    m = cls(I, H, seed=0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    frozen = {p: m.freeze(p) for p in PRECISIONS}
    fns = {"gru_cy float32": lambda: m(x)}
    for p in PRECISIONS:
        fns[f"gru_cy {p}"] = (lambda f: lambda: f(x))(frozen[p])
    peers = torch_peers(m, x)
    for p, fn in peers.items():
        fns[f"torch {p}"] = fn
    times = time_peers(fns, budget, 1)
    ref = m(x)[0]
    errors = {}
    for p in PRECISIONS:
        errors[f"gru_cy {p}"] = float(np.abs(frozen[p](x)[0] - ref).max())
    for p, fn in peers.items():
        errors[f"torch {p}"] = float(np.abs(fn().float().numpy() - ref).max())
    return dict(cell=cls.__name__, shape=list(shape), times=times, errors=errors,
                bit_for_bit=bool(np.array_equal(frozen["fp32"](x)[0], ref)))


def run_step(cls, budget):
    B, I, H = STEP
    rng = np.random.default_rng(0)
    m = cls(I, H, seed=0)
    x = rng.standard_normal((B, I)).astype(np.float32)
    _, state = m.step(x)
    fns = {"gru_cy float32 step()": lambda: m.step(x, state)}
    for p in PRECISIONS:
        f = m.freeze(p)
        fns[f"gru_cy {p} step()"] = (lambda f: lambda: f.step(x, state))(f)
    try:
        import torch

        tc = (torch.nn.GRUCell if cls is gru_cy.GRU else torch.nn.LSTMCell)(I, H).eval()
        xt = torch.from_numpy(x)
        st = (torch.zeros(B, H) if cls is gru_cy.GRU else (torch.zeros(B, H), torch.zeros(B, H)))

        def cell():
            with torch.no_grad():
                return tc(xt, st)
        fns["torch float32 cell"] = cell
    except ImportError:
        pass
    return dict(cell=cls.__name__, shape=list(STEP), times=time_peers(fns, budget, 1))


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def report(rows, steps, env, out):
    w = out.write
    w(f"gru_cy {env['gru_cy']} frozen inference, 1 thread, {env['date']}\n")
    w(f"CPU: {env['cpu']}; bf16: {'native' if _core.native('bf16') else 'emulated'}, int8: "
      f"{'native (VNNI)' if _core.native('int8') else 'without VNNI'}; torch "
      f"{env.get('torch')}, numpy {env['numpy']}\n\n")
    w("| cell | T, B, I, H | gru_cy float32 | frozen fp32 | bf16 (vs fp32, vs autocast) | "
      "int8 (vs fp32, vs torch int8) | torch float32 | torch bf16 autocast | "
      "torch int8 dynamic |\n")
    w("|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        t, e = r["times"], r["errors"]
        base = t["gru_cy float32"]
        ms = lambda k: f"{t[k] * 1e3:.1f} ms" if k in t else "-"      # noqa: E731
        err = lambda k: f"err {e[k]:.4f}" if k in e else ""           # noqa: E731
        w(f"| {r['cell']} | {', '.join(map(str, r['shape']))} | {ms('gru_cy float32')} | "
          f"{ms('gru_cy fp32')}{' (same bits)' if r['bit_for_bit'] else ' (DIFFERS)'} | "
          f"{ms('gru_cy bf16')} ({ratio(base, t['gru_cy bf16'])}, "
          f"{ratio(t.get('torch bf16'), t['gru_cy bf16'])}) {err('gru_cy bf16')} | "
          f"{ms('gru_cy int8')} ({ratio(base, t['gru_cy int8'])}, "
          f"{ratio(t.get('torch int8'), t['gru_cy int8'])}) {err('gru_cy int8')} | "
          f"{ms('torch fp32')} | {ms('torch bf16')} {err('torch bf16')} | "
          f"{ms('torch int8')} {err('torch int8')} |\n")
    w("\nstep() at B=1, I=H=64 (microseconds per call)\n\n")
    names = ["gru_cy float32 step()"] + [f"gru_cy {p} step()" for p in PRECISIONS] + \
        ["torch float32 cell"]
    w("| cell | " + " | ".join(names) + " |\n")
    w("|---|" + "---|" * len(names) + "\n")
    for s in steps:
        w(f"| {s['cell']} | " + " | ".join(
            f"{s['times'][n] * 1e6:.2f}" if n in s["times"] else "-" for n in names) + " |\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small shape")
    parser.add_argument("--budget", type=float, default=6.0,
                        help="seconds of timing per shape (default 6)")
    parser.add_argument("--out", default=None, help="results prefix (default "
                        "benchmarks/results/precision-<date>)")
    args = parser.parse_args(argv)
    env = environment()
    rows, steps = [], []
    with Threads(1):
        gru_cy.set_num_threads(1)
        for cls in (gru_cy.GRU, gru_cy.LSTM):
            for shape in (QUICK if args.quick else SHAPES):
                wait_until_quiet(30, log=sys.stderr)
                rows.append(run_shape(cls, shape, args.budget))
                print(rows[-1]["cell"], rows[-1]["shape"], {k: f"{v * 1e3:.2f} ms" for k, v in
                                                            rows[-1]["times"].items()},
                      file=sys.stderr)
            steps.append(run_step(cls, min(args.budget, 3.0)))
    buf = io.StringIO()
    report(rows, steps, env, buf)
    print(buf.getvalue())
    prefix = args.out or os.path.join(HERE, "results",
                                      f"precision-{datetime.date.today().isoformat()}")
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump(dict(environment=env, rows=rows, steps=steps), f, indent=1)
    with open(prefix + ".md", "w") as f:
        f.write(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
