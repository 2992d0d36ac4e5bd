"""Elman RNN benchmark: gru_cy.RNN against ONNX Runtime (forward) and torch.nn.RNN (forward and
training), at the GRU benchmark's shapes, single-threaded.

    python benchmarks/bench_rnn.py [--quick] [--budget SECONDS] [--tag NAME]

Every peer gets the same weights and inputs and runs in this process, pinned to one thread;
the peers take turns call by call (gru_cy.bench's interleaved timer), so a noisy machine slows
all of them alike, and each one's median time is reported. Ratios are peer time / gru_cy time:
> 1 means gru_cy is faster. ONNX Runtime runs the graph torch.onnx.export(dynamo=False) writes
for the same nn.RNN (ONNX RNN nodes). "train" is forward with a tape plus backward through
input and parameters (torch: autograd with x.requires_grad). Results go to
benchmarks/results/rnn-<tag>.json and .md.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import warnings

import numpy as np

from gru_cy.bench import (GRID, QUICK_GRID, STEP_SHAPE, Threads, busy_fraction, environment,
                          fmt_seconds, ort_session, time_interleaved, write_results)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ACTIVATION = "tanh"


def _flops(T, B, I, H, mode):
    """2 * multiply-adds of the GEMMs (backward costs twice the forward)."""
    return 2 * T * B * H * (I + H) * (3 if mode == "train" else 1)


def _torch_onnx(module, T, B, I, H, torch):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(T, B, I), torch.zeros(1, B, H)), f,
                          input_names=["x", "h0"], output_names=["out", "h_n"], dynamo=False)
    return f.getvalue()


def run_case(T, B, I, H, budget, peers):
    import gru_cy

    rng = np.random.default_rng(0)
    m = gru_cy.RNN(I, H, nonlinearity=ACTIVATION, seed=0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = np.zeros((1, B, H), np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)
    fwd = {"gru_cy": lambda: m(x, h0)}
    train = {}

    def ours_train():
        _, _, tape = m.forward_train(x, h0)
        return m.backward(tape, dout)

    train["gru_cy"] = ours_train
    if "torch" in peers:
        torch = peers["torch"]
        t = torch.nn.RNN(I, H, nonlinearity=ACTIVATION)
        t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.state_dict().items()})
        xt, h0t, dt = torch.from_numpy(x), torch.from_numpy(h0), torch.from_numpy(dout)

        def torch_fwd():
            with torch.no_grad():
                return t(xt, h0t)

        def torch_train():
            xg = xt.detach().requires_grad_(True)
            t.zero_grad()
            out, _ = t(xg, h0t)
            out.backward(dt)
            return xg.grad

        fwd["torch"], train["torch"] = torch_fwd, torch_train
        if "onnxruntime" in peers:
            sess = ort_session(_torch_onnx(t, T, B, I, H, torch), 1)
            feed = {"x": x, "h0": h0}
            ours = m(x, h0)[0]
            theirs = sess.run(None, feed)[0]
            assert np.abs(ours - theirs).max() < 1e-4, "ONNX Runtime disagrees with gru_cy"
            fwd["onnxruntime"] = lambda: sess.run(None, feed)
    rows = []
    for mode, fns in (("forward", fwd), ("train", train)):
        times = time_interleaved(fns, budget)
        rows.append(dict(case=f"T={T} B={B} I={I} H={H}", mode=mode, seconds=times,
                         gflops=_flops(T, B, I, H, mode) / times["gru_cy"] / 1e9,
                         ratios={p: times[p] / times["gru_cy"] for p in times if p != "gru_cy"}))
    return rows


def run_step(budget, peers):
    import gru_cy

    B, I, H = STEP_SHAPE
    m = gru_cy.RNN(I, H, nonlinearity=ACTIVATION, seed=0)
    x = np.random.default_rng(0).standard_normal((B, I)).astype(np.float32)
    h = np.zeros((1, B, H), np.float32)
    fns = {"gru_cy": lambda: m.step(x, h)}
    if "torch" in peers:
        torch = peers["torch"]
        cell = torch.nn.RNNCell(I, H, nonlinearity=ACTIVATION)
        xt, ht = torch.from_numpy(x), torch.from_numpy(h[0])

        def torch_step():
            with torch.no_grad():
                return cell(xt, ht)

        fns["torch"] = torch_step
    times = time_interleaved(fns, budget)
    return dict(case=f"step() B={B} I={I} H={H}", mode="step", seconds=times, gflops=None,
                ratios={p: times[p] / times["gru_cy"] for p in times if p != "gru_cy"})


def _peers():
    peers = {}
    try:
        import torch
        peers["torch"] = torch
        import onnxruntime  # noqa: F401
        peers["onnxruntime"] = onnxruntime
    except ImportError:
        pass
    return peers


def _ratio(row, peer):
    return f"{row['ratios'][peer]:.2f}x" if peer in row["ratios"] else "-"


def format_table(doc):
    names = ["torch", "onnxruntime"]
    lines = [f"{'case':<28} {'mode':<8} {'gru_cy':>10} {'GF/s':>6} "
             + " ".join(f"{n + ' x':>14}" for n in names),
             "-" * (58 + 15 * len(names))]
    for r in doc["rows"]:
        gf = f"{r['gflops']:.1f}" if r["gflops"] else ""
        cells = " ".join(f"{_ratio(r, n):>14}" for n in names)
        lines.append(f"{r['case']:<28} {r['mode']:<8} {fmt_seconds(r['seconds']['gru_cy']):>10} "
                     f"{gf:>6} {cells}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the GRU benchmark's quick grid")
    ap.add_argument("--budget", type=float, default=1.5, help="seconds per mode and case")
    ap.add_argument("--tag", default="latest", help="results/rnn-<tag>.json|md")
    args = ap.parse_args(argv)
    peers = _peers()
    grid = QUICK_GRID if args.quick else GRID
    busy = busy_fraction()
    doc = dict(env=environment(), threads=1, activation=ACTIVATION, busy_before=busy, rows=[])
    print(f"RNN benchmark, 1 thread, nonlinearity={ACTIVATION}; peers: {', '.join(peers) or 'none'}")
    print(f"machine busy {100 * busy:.0f}% before the run: other processes share it, so absolute "
          "times are noisy; the ratios compare peers measured turn by turn in this run."
          if busy is not None else "")
    with Threads(1):
        for T, B, I, H in grid:
            print(f"  T={T} B={B} I={I} H={H} ...", flush=True)
            doc["rows"] += run_case(T, B, I, H, args.budget, peers)
        doc["rows"].append(run_step(args.budget, peers))
    doc["busy_after"] = busy_fraction()
    table = format_table(doc)
    print()
    print("(x = peer time / gru_cy time: > 1 means gru_cy is faster)")
    print(table)
    env = doc["env"]
    paths = write_results(
        os.path.join(RESULTS, f"rnn-{args.tag}"), doc, f"gru_cy.RNN benchmark ({args.tag})",
        f"1 thread, nonlinearity={ACTIVATION}, float32; {env.get('cpu')}; numpy "
        f"{env.get('numpy')}, torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}",
        table, "x = peer time / gru_cy time (> 1: gru_cy faster)")
    print(f"\nresults written to {' and '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
