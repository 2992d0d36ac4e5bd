"""gru_cy.Jordan against the same equations written as a PyTorch loop.

    python benchmarks/bench_jordan.py [--quick] [--threads N ...] [--budget 1.0] [--name STEM]

No library ships a Jordan network, so the peer is the obvious PyTorch
program: a Python loop over time of torch.nn.functional.linear calls and
activations, autograd for training. Both run float32 on the same number of
threads (gru_cy.bench's Threads: gru_cy's kernels, the BLAS libraries and
torch's intra-op pool; default one). Forward is inference (torch under no_grad); training
is forward_train + backward against forward + loss.backward() with the same
upstream gradient. gru_cy and torch are timed in alternation, each sample
the best of a few calls, so that load from other processes hits both alike;
the table reports the median sample in process CPU time and the ratio
torch / gru_cy (> 1 means gru_cy is faster) in CPU and in wall-clock time.
On a loaded machine CPU time is the fairer measure: calls longer than a
scheduler time slice are preempted more often, which inflates their wall
time. "peak" is gru_cy's share of the machine's peak: its flops (2 T B (I H
+ O H + H O) forward, three times that in training) per wall second over
one core's float32 multiply-add peak (gru_cy.bench.core_peak, measured once
before the run) times the threads. --quick: T = 50, B = 1 and 8, H = 64,
0.3 s per measurement. Without torch, gru_cy is timed alone (with a note).
Results go to benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import numpy as np

import gru_cy
from gru_cy.bench import Threads, core_peak, describe_run, environment, peak_share

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = [(100, B, H) for H in (64, 128) for B in (1, 8, 32)]
QUICK_SHAPES = [(50, B, 64) for B in (1, 8)]
ACT, OUT_ACT = "tanh", "identity"


def _torch_loop(torch, params, x, y0):
    F = torch.nn.functional
    y = y0
    outs = []
    for t in range(x.shape[0]):
        h = torch.tanh(F.linear(x[t], params["weight_ih"], params["bias_ih"])
                       + F.linear(y, params["weight_yh"]))
        y = F.linear(h, params["weight_hy"], params["bias_hy"])
        outs.append(y)
    return torch.stack(outs), y


def _best_of(fn, repeats):
    """(wall, CPU) seconds of the call that took the least wall time."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def _compare(a, b, budget):
    """Medians over alternating samples: (a wall, b wall, a CPU, b CPU) seconds."""
    a()
    b()   # warm up
    one = max(_best_of(a, 1)[0], _best_of(b, 1)[0])
    repeats = 3
    samples = max(5, min(200, int(budget / (2 * repeats * one))))
    ta, tb = [], []
    for _ in range(samples):
        ta.append(_best_of(a, repeats))
        tb.append(_best_of(b, repeats))
    return (statistics.median(t[0] for t in ta), statistics.median(t[0] for t in tb),
            statistics.median(t[1] for t in ta), statistics.median(t[1] for t in tb))


def flops(T, B, I, H, O, mode):
    """Flops of the Jordan network's matrix products (2 per multiply-add)."""
    fwd = 2.0 * T * B * (I * H + O * H + H * O)
    return fwd if mode == "forward" else 3 * fwd


def run(budget, shapes, threads, peak, torch=None):
    rows = []
    if torch is not None:
        torch.set_num_threads(threads)
    for T, B, H in shapes:
        I = O = H // 2
        jordan = gru_cy.Jordan(I, H, O, ACT, OUT_ACT, seed=0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        dout = rng.standard_normal((T, B, O)).astype(np.float32)

        def ours_forward():
            jordan(x)

        def ours_train():
            _, _, tape = jordan.forward_train(x)
            jordan.backward(tape, dout)

        if torch is not None:
            tp = {k: torch.tensor(v, requires_grad=True) for k, v in jordan.params.items()}
            tx = torch.tensor(x)
            ty0 = torch.zeros(B, O)
            tdout = torch.tensor(dout)

            # the two agree before anything is timed
            with torch.no_grad():
                t_out, _ = _torch_loop(torch, tp, tx, ty0)
            np.testing.assert_allclose(jordan(x)[0], t_out.numpy(), rtol=1e-3, atol=1e-4)

            def torch_forward():
                with torch.no_grad():
                    _torch_loop(torch, tp, tx, ty0)

            def torch_train():
                out, _ = _torch_loop(torch, tp, tx, ty0)
                (out * tdout).sum().backward()
        else:
            torch_forward = torch_train = None

        row = dict(T=T, B=B, I=I, H=H, O=O, threads=threads,
                   gru_cy_threads=gru_cy.get_num_threads())
        for mode, ours, theirs in (("forward", ours_forward, torch_forward),
                                   ("train", ours_train, torch_train)):
            if theirs is not None:
                w_ours, w_torch, c_ours, c_torch = _compare(ours, theirs, budget)
            else:
                w_ours, _, c_ours, _ = _compare(ours, ours, budget)
                w_torch = c_torch = None
            row.update({f"{mode}_gru_cy": w_ours, f"{mode}_torch": w_torch,
                        f"{mode}_gru_cy_cpu": c_ours, f"{mode}_torch_cpu": c_torch})
            gf = flops(T, B, I, H, O, mode) / w_ours / 1e9
            row[f"{mode}_gflops"] = gf
            row[f"{mode}_peak_share"] = peak_share(gf, peak, threads)
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


HEADER = ("| threads | T | B | I | H | O | forward gru_cy | peak | forward torch loop | ratio "
          "| wall ratio | training gru_cy | peak | training torch loop | ratio | wall ratio |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _ms(s):
    return "-" if s is None else f"{s * 1e3:.3f} ms"


def _format_row(r):
    cells = [str(r[k]) for k in ("threads", "T", "B", "I", "H", "O")]
    for mode in ("forward", "train"):
        ours, peer = r[f"{mode}_gru_cy_cpu"], r[f"{mode}_torch_cpu"]
        share = r[f"{mode}_peak_share"]
        cells += [_ms(ours), "-" if share is None else f"{100 * share:.0f}%", _ms(peer)]
        if peer is None:
            cells += ["-", "-"]
        else:
            cells += [f"{peer / ours:.1f}x", f"{r[f'{mode}_torch'] / r[f'{mode}_gru_cy']:.1f}x"]
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="two small shapes, 0.3 s per measurement")
    parser.add_argument("--threads", type=int, nargs="*", default=[1],
                        help="thread counts for every library (default 1)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timing per shape and mode (default 1, --quick 0.3)")
    parser.add_argument("--name", default=None, help="file name stem under results/")
    parser.add_argument("--out", default=None, help="prefix of the .json/.md (overrides --name)")
    args = parser.parse_args(argv)
    budget = args.budget if args.budget is not None else (0.3 if args.quick else 1.0)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    try:
        import torch
    except ImportError:
        torch = None
    note = None if torch is not None else \
        "torch is not installed: gru_cy timed alone, no ratios (pip install torch)"
    peak = core_peak()
    load = os.getloadavg()
    print(f"gru_cy {gru_cy.__version__}, torch {torch.__version__ if torch else None}, numpy "
          f"{np.__version__}; float32, threads {args.threads}; load average {load[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    if note:
        print(note)
    print(HEADER)
    rows = []
    for threads in args.threads:
        with Threads(threads):
            rows += run(budget, shapes, threads, peak, torch)
    load_after = os.getloadavg()
    env = environment(peak)
    env.update(load_average_before=load[0], load_average_after=load_after[0],
               time=datetime.datetime.now().isoformat(timespec="seconds"))
    doc = dict(
        what="Jordan network (tanh hidden, identity output), gru_cy vs a PyTorch loop",
        environment=env, dtype="float32", threads=args.threads, budget_seconds=budget,
        notes=[note] if note else [], results=rows)
    stem = args.name or f"jordan-{datetime.date.today().isoformat()}"
    base = args.out or os.path.join(HERE, "results", stem)
    os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(f"Jordan network (tanh, identity output), float32, threads {args.threads}; "
                f"times are medians of alternating samples in process CPU time, ratio = torch "
                f"/ gru_cy (> 1: gru_cy faster); wall ratio the same in wall-clock time (with "
                f"more than one thread, CPU time adds up every thread's, so the wall ratio is "
                f"the one to read). peak = gru_cy's flops per wall second / (one core's "
                f"float32 multiply-add peak x threads). Load average "
                f"{load[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs: a shared "
                f"machine busy with other builds and tests, where calls longer than a "
                f"scheduler time slice are often preempted, so wall times of the longer "
                f"calls (torch's training above all) are inflated; CPU time is the fairer "
                f"measure here.\n{describe_run(env)}\n\n")
        if note:
            f.write(f"Note: {note}.\n\n")
        f.write(HEADER + "\n" + "\n".join(_format_row(r) for r in rows) + "\n")
    print(f"\nwrote {base}.json and {base}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
