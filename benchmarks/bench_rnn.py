"""Elman RNN benchmark: gru_cy.RNN against ONNX Runtime (forward) and torch.nn.RNN (forward and
training), at the GRU benchmark's shapes.

    python benchmarks/bench_rnn.py [--quick] [--threads N ...] [--budget SECONDS] [--tag NAME]

Every peer gets the same weights and inputs and runs in this process, pinned to the same
number of threads (gru_cy.bench's Threads: gru_cy's kernels, the BLAS libraries, torch; ONNX
Runtime's intra-op threads); the peers take turns call by call (gru_cy.bench's interleaved
timer), so a noisy machine slows all of them alike, and each one's median time is reported.
Ratios are peer time / gru_cy time: > 1 means gru_cy is faster. ONNX Runtime runs the graph
torch.onnx.export(dynamo=False) writes for the same nn.RNN (ONNX RNN nodes). "train" is
forward with a tape plus backward through input and parameters (torch: autograd with
x.requires_grad). step() at B=1, I=H=64 against torch.nn.RNNCell. "peak" is gru_cy's GF/s
(2 T B H (I + H) flops forward, three times that in training) over one core's float32
multiply-add peak (gru_cy.bench.core_peak, measured once before the run) times the threads.
--quick: the quick grid and 0.3 s per measurement. Peers that are not installed are skipped
with a note. Results go to benchmarks/results/rnn-<tag>.json and .md, the JSON in the GRU
benchmark's layout (environment, threads, notes, results).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings

import numpy as np

import gru_cy
from gru_cy.bench import (GRID, QUICK_GRID, STEP_SHAPE, Threads, available_peers, busy_fraction,
                          core_peak, describe_run, environment, format_markdown, format_table,
                          ort_session, peak_share, time_peers)

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


def run_case(T, B, I, H, threads, budget, notes, peak):
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
    have = available_peers()
    if "torch" in have:
        import torch

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
        if "onnxruntime" in have:
            try:
                sess = ort_session(_torch_onnx(t, T, B, I, H, torch), threads)
                feed = {"x": x, "h0": h0}
                ours = m(x, h0)[0]
                theirs = sess.run(None, feed)[0]
                assert np.abs(ours - theirs).max() < 1e-4, "ONNX Runtime disagrees with gru_cy"
                fwd["onnxruntime"] = lambda: sess.run(None, feed)
            except Exception as exc:  # noqa: BLE001
                notes.add(f"onnxruntime skipped ({type(exc).__name__}: {exc})")
        else:
            notes.add("onnxruntime: not installed, skipped")
    else:
        notes.add("torch: not installed, skipped (and ONNX Runtime, whose model is torch's "
                  "export)")
    label = f"T={T} B={B} I={I} H={H}"
    rows = []
    for mode, fns in (("forward", fwd), ("train", train)):
        med = time_peers(fns, budget, threads)
        for name, sec in med.items():
            gf = _flops(T, B, I, H, mode) / sec / 1e9
            rows.append(dict(case=label, T=T, B=B, I=I, H=H, mode=mode, threads=threads,
                             peer=name, seconds=sec, ratio=sec / med["gru_cy"], gflops=gf,
                             peak_share=peak_share(gf, peak, threads),
                             gru_cy_threads=gru_cy.get_num_threads()))
    return rows


def run_step(threads, budget):
    B, I, H = STEP_SHAPE
    m = gru_cy.RNN(I, H, nonlinearity=ACTIVATION, seed=0)
    x = np.random.default_rng(0).standard_normal((B, I)).astype(np.float32)
    st = {"h": np.zeros((1, B, H), np.float32)}

    def ours():
        _, st["h"] = m.step(x, st["h"])

    fns = {"gru_cy": ours}
    if "torch" in available_peers():
        import torch

        cell = torch.nn.RNNCell(I, H, nonlinearity=ACTIVATION)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(torch.from_numpy(m.params[name + "_l0"]))
        xt = torch.from_numpy(x)
        ts = {"h": torch.zeros(B, H)}

        def torch_step():
            with torch.no_grad():
                ts["h"] = cell(xt, ts["h"])

        fns["torch"] = torch_step
    med = time_peers(fns, budget, threads)
    return [dict(case=f"step() B={B} I={I} H={H}", B=B, I=I, H=H, mode="step", threads=threads,
                 peer=name, seconds=sec, calls_per_second=1.0 / sec, ratio=sec / med["gru_cy"],
                 gflops=None, peak_share=None, gru_cy_threads=gru_cy.get_num_threads())
            for name, sec in med.items()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="the GRU benchmark's quick grid, 0.3 s per measurement")
    ap.add_argument("--threads", type=int, nargs="*", default=[1])
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per mode and case (default 1.5, with --quick 0.3)")
    ap.add_argument("--tag", default="latest", help="results/rnn-<tag>.json|md")
    ap.add_argument("--out", default=None, help="prefix of the .json/.md results (overrides --tag)")
    args = ap.parse_args(argv)
    grid = QUICK_GRID if args.quick else GRID
    budget = args.budget if args.budget is not None else (0.3 if args.quick else 1.5)
    busy = busy_fraction()
    peak = core_peak()
    notes, rows = set(), []
    print(f"RNN benchmark, threads {args.threads}, nonlinearity={ACTIVATION}; peers: "
          f"{', '.join(sorted(available_peers())) or 'none'}")
    if busy is not None:
        print(f"machine busy {100 * busy:.0f}% before the run: other processes share it, so "
              "absolute times are noisy; the ratios compare peers measured turn by turn.")
    for threads in args.threads:
        with Threads(threads):
            for T, B, I, H in grid:
                print(f"  [{threads} thread(s)] T={T} B={B} I={I} H={H} ...", flush=True)
                rows += run_case(T, B, I, H, threads, budget, notes, peak)
            rows += run_step(threads, budget)
    env = environment(peak)
    env["machine_busy_before"] = busy
    env["machine_busy_after"] = busy_fraction()
    doc = dict(what="RNN", activation=ACTIVATION, environment=env, threads=args.threads,
               budget_seconds=budget, notes=sorted(notes), results=rows)
    print("\n" + describe_run(env))
    for n in args.threads:
        print("\n" + format_table(rows, n))
    for n in doc["notes"]:
        print(f"note: {n}")
    base = args.out or os.path.join(RESULTS, f"rnn-{args.tag}")
    os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(f"# gru_cy.RNN (nonlinearity={ACTIVATION}) against its peers\n\n"
                f"float32; {env.get('cpu')}; numpy {env.get('numpy')}, torch "
                f"{env.get('torch')}, onnxruntime {env.get('onnxruntime')}; machine busy "
                f"{'?' if busy is None else f'{100 * busy:.0f}%'} before the run (shared "
                f"with other jobs: absolute times are noisy, ratios are measured turn by "
                f"turn).\n{describe_run(env)}\n\n" + format_markdown(doc))
    print(f"\nresults written to {base}.json and {base}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
