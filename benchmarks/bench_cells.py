"""The one-step cells: gru_cy.GRUCell, LSTMCell and RNNCell against torch.nn's cells.

    python benchmarks/bench_cells.py [--quick] [--budget SECONDS] [--threads N ...] [--tag NAME]

Per cell and shape: one step of inference (``cell(x_t, hx)``; torch under no_grad) and one
step of training (``forward_train`` + ``backward`` with the gradients of x_t, hx and every
parameter; torch: the cell's forward with x_t and hx requiring gradients, then
``backward``), and one step of the cell frozen at fp32 (``cell.freeze()``: the same bits,
the weights packed once instead of at every call). Every peer gets the same weights and inputs, runs in this process pinned to the
same number of threads, and the peers take turns call by call (gru_cy.bench's interleaved
timer), so a noisy machine slows them alike; medians are reported. Ratios are torch's time
divided by gru_cy's (> 1: gru_cy is faster). The targets of the cells (10x at B=1, H=64 and
1.2x at B=64, H=256, inference) are printed beside the measured ratios. "peak" is gru_cy's
GF/s (2 B G H (I + H) flops per step, G = 3 gates for the GRU, 4 for the LSTM, 1 for the
RNN; training three times that) over one core's float32 multiply-add peak
(gru_cy.bench.core_peak, measured once before the run) times the threads. --quick: 0.3 s
per measurement. Without torch there is nothing to compare: the script says so and exits.

Results: benchmarks/results/cells-<tag>.json and .md.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import gru_cy
from gru_cy.bench import (Threads, busy_fraction, core_peak, describe_run, environment,
                          fmt_seconds, fmt_share, peak_share, time_peers, write_results)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# (B, I, H) and the inference speed-up over the torch cell asked at that shape.
SHAPES = [((1, 64, 64), 10.0), ((8, 128, 128), None), ((64, 256, 256), 1.2)]
CELLS = ("GRUCell", "LSTMCell", "RNNCell")
GATES = {"GRUCell": 3, "LSTMCell": 4, "RNNCell": 1}


def flops(name, B, I, H, mode):
    fwd = 2.0 * B * GATES[name] * H * (I + H)
    return fwd if mode == "forward" else 3 * fwd


def run_shape(name, B, I, H, budget, threads, peak):
    import torch

    ours = getattr(gru_cy, name)(I, H, seed=0)
    theirs = getattr(torch.nn, name)(I, H)
    with torch.no_grad():
        for pname, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(ours.params[pname]))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, I)).astype(np.float32)
    h = rng.standard_normal((B, H)).astype(np.float32)
    dh = rng.standard_normal((B, H)).astype(np.float32)
    lstm = name == "LSTMCell"
    hx = (h, 0.5 * h) if lstm else h
    dhx = (dh, 0.5 * dh) if lstm else dh
    tx, th, tdh = torch.from_numpy(x), torch.from_numpy(h), torch.from_numpy(dh)
    thx = (th, 0.5 * th) if lstm else th

    # The two sides must agree before they are timed.
    with torch.no_grad():
        expected = theirs(tx, thx)
    got = ours(x, hx)
    for a, b in zip(got if lstm else (got,), expected if lstm else (expected,)):
        assert np.abs(a - b.numpy()).max() < 1e-4, f"{name}: gru_cy and torch disagree"

    def torch_forward():
        with torch.no_grad():
            return theirs(tx, thx)

    def ours_train():
        _, tape = ours.forward_train(x, hx)
        return ours.backward(tape, dhx)

    def torch_train():
        xg = tx.detach().requires_grad_(True)
        hg = tuple(t.detach().requires_grad_(True) for t in thx) if lstm \
            else th.detach().requires_grad_(True)
        theirs.zero_grad()
        out = theirs(xg, hg)
        if lstm:
            torch.autograd.backward(out, (tdh, 0.5 * tdh))
        else:
            out.backward(tdh)
        return xg.grad

    frozen = ours.freeze("fp32")
    for a, b in zip(frozen(x, hx) if lstm else (frozen(x, hx),), got if lstm else (got,)):
        assert np.array_equal(a, b), f"{name}: the frozen cell differs from the cell"

    rows = []
    for mode, fns in (("forward", {"gru_cy": lambda: ours(x, hx), "torch": torch_forward}),
                      ("train", {"gru_cy": ours_train, "torch": torch_train}),
                      ("frozen", {"gru_cy": lambda: frozen(x, hx), "torch": torch_forward})):
        times = time_peers(fns, budget, threads)
        gf = flops(name, B, I, H, "train" if mode == "train" else "forward") / times["gru_cy"] / 1e9
        rows.append(dict(cell=name, B=B, I=I, H=H, mode=mode, threads=threads, seconds=times,
                         ratio=times["torch"] / times["gru_cy"], gflops=gf,
                         peak_share=peak_share(gf, peak, threads),
                         gru_cy_threads=gru_cy.get_num_threads()))
    return rows


def format_table(rows):
    targets = {(B, I, H): t for (B, I, H), t in SHAPES}
    lines = [f"{'cell':<9} {'thr':>3} {'B':>3} {'I':>4} {'H':>4} {'mode':<8} {'gru_cy':>10} "
             f"{'peak':>5} {'torch':>10} {'torch x':>8} {'target':>7}", "-" * 82]
    for r in rows:
        target = targets.get((r["B"], r["I"], r["H"])) if r["mode"] != "train" else None
        lines.append(f"{r['cell']:<9} {r['threads']:>3} {r['B']:>3} {r['I']:>4} {r['H']:>4} "
                     f"{r['mode']:<8} {fmt_seconds(r['seconds']['gru_cy']):>10} "
                     f"{fmt_share(r['peak_share']):>5} "
                     f"{fmt_seconds(r['seconds']['torch']):>10} {r['ratio']:>7.2f}x "
                     f"{'' if target is None else f'{target:.1f}x':>7}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.3 s per measurement")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per cell, shape and mode (default 1.5, --quick 0.3)")
    ap.add_argument("--threads", type=int, nargs="*", default=[1],
                    help="thread counts for every library (default 1)")
    ap.add_argument("--tag", default="latest", help="results/cells-<tag>.json|md")
    ap.add_argument("--out", default=None, help="prefix of the .json/.md (overrides --tag)")
    args = ap.parse_args(argv)
    budget = args.budget if args.budget is not None else (0.3 if args.quick else 1.5)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: nothing to compare with, skipped (pip install torch)")
        return 0
    busy = busy_fraction()
    peak = core_peak()
    rows = []
    for threads in args.threads:
        with Threads(threads):
            for name in CELLS:
                for (B, I, H), _ in SHAPES:
                    print(f"  [{threads} thread(s)] {name} B={B} I={I} H={H} ...", flush=True)
                    rows += run_shape(name, B, I, H, budget, threads, peak)
    table = format_table(rows)
    env = environment(peak)
    print("\n(torch x = torch's time / gru_cy's time: > 1 means gru_cy is faster)")
    print(describe_run(env))
    print(table)
    doc = dict(env=env, threads=args.threads, budget_seconds=budget, busy_before=busy,
               busy_after=busy_fraction(), rows=rows)
    paths = write_results(
        args.out or os.path.join(RESULTS, f"cells-{args.tag}"), doc,
        f"gru_cy cells against torch.nn's cells ({args.tag})",
        f"threads {args.threads}, float32; {env.get('cpu')}; numpy {env.get('numpy')}, "
        f"torch {env.get('torch')}; {describe_run(env)}", table,
        "torch x = torch's time / gru_cy's time (> 1: gru_cy faster); peak = gru_cy's GF/s / "
        "(one core's float32 multiply-add peak x threads)")
    print(f"\nresults written to {' and '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
