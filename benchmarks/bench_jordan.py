"""gru_cy.Jordan against the same equations written as a PyTorch loop.

    python benchmarks/bench_jordan.py [--budget 1.0] [--name jordan-DATE]

No library ships a Jordan network, so the peer is the obvious PyTorch
program: a Python loop over time of torch.nn.functional.linear calls and
activations, autograd for training. Both run float32 on one thread (BLAS and
torch's intra-op pool). Forward is inference (torch under no_grad); training
is forward_train + backward against forward + loss.backward() with the same
upstream gradient. gru_cy and torch are timed in alternation, each sample
the best of a few calls, so that load from other processes hits both alike;
the table reports the median sample in process CPU time and the ratio
torch / gru_cy (> 1 means gru_cy is faster) in CPU and in wall-clock time.
On a loaded machine CPU time is the fairer measure: calls longer than a
scheduler time slice are preempted more often, which inflates their wall
time. Results go to benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import gru_cy

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = [(100, B, H) for H in (64, 128) for B in (1, 8, 32)]
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


def run(budget):
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(1):
        for T, B, H in SHAPES:
            I = O = H // 2
            jordan = gru_cy.Jordan(I, H, O, ACT, OUT_ACT, seed=0)
            rng = np.random.default_rng(0)
            x = rng.standard_normal((T, B, I)).astype(np.float32)
            dout = rng.standard_normal((T, B, O)).astype(np.float32)
            tp = {k: torch.tensor(v, requires_grad=True) for k, v in jordan.params.items()}
            tx = torch.tensor(x)
            ty0 = torch.zeros(B, O)
            tdout = torch.tensor(dout)

            # the two agree before anything is timed
            with torch.no_grad():
                t_out, _ = _torch_loop(torch, tp, tx, ty0)
            np.testing.assert_allclose(jordan(x)[0], t_out.numpy(), rtol=1e-3, atol=1e-4)

            def ours_forward():
                jordan(x)

            def torch_forward():
                with torch.no_grad():
                    _torch_loop(torch, tp, tx, ty0)

            def ours_train():
                _, _, tape = jordan.forward_train(x)
                jordan.backward(tape, dout)

            def torch_train():
                out, _ = _torch_loop(torch, tp, tx, ty0)
                (out * tdout).sum().backward()

            f_ours, f_torch, f_ours_cpu, f_torch_cpu = _compare(ours_forward, torch_forward,
                                                                budget)
            t_ours, t_torch, t_ours_cpu, t_torch_cpu = _compare(ours_train, torch_train, budget)
            row = dict(T=T, B=B, I=I, H=H, O=O, forward_gru_cy=f_ours, forward_torch=f_torch,
                       train_gru_cy=t_ours, train_torch=t_torch,
                       forward_gru_cy_cpu=f_ours_cpu, forward_torch_cpu=f_torch_cpu,
                       train_gru_cy_cpu=t_ours_cpu, train_torch_cpu=t_torch_cpu)
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


HEADER = ("| T | B | I | H | O | forward gru_cy | forward torch loop | ratio | wall ratio "
          "| training gru_cy | training torch loop | ratio | wall ratio |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _ms(s):
    return f"{s * 1e3:.3f} ms"


def _format_row(r):
    cells = [str(r[k]) for k in ("T", "B", "I", "H", "O")]
    for mode in ("forward", "train"):
        ours, peer = r[f"{mode}_gru_cy_cpu"], r[f"{mode}_torch_cpu"]
        cells += [_ms(ours), _ms(peer), f"{peer / ours:.1f}x",
                  f"{r[f'{mode}_torch'] / r[f'{mode}_gru_cy']:.1f}x"]
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timing per shape and mode")
    parser.add_argument("--name", default=None, help="file name stem under results/")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("torch is not installed: nothing to compare against")
        return 1
    load = os.getloadavg()
    print(f"gru_cy {gru_cy.__version__}, torch {torch.__version__}, numpy {np.__version__}; "
          f"float32, 1 thread; load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(HEADER)
    rows = run(args.budget)
    load_after = os.getloadavg()
    doc = dict(
        what="Jordan network (tanh hidden, identity output), gru_cy vs a PyTorch loop",
        environment=dict(python=platform.python_version(), machine=platform.machine(),
                         cpus=os.cpu_count(), gru_cy=gru_cy.__version__,
                         torch=torch.__version__, numpy=np.__version__,
                         load_average_before=load[0], load_average_after=load_after[0],
                         date=datetime.datetime.now().isoformat(timespec="seconds")),
        dtype="float32", threads=1, results=rows)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stem = args.name or f"jordan-{datetime.date.today().isoformat()}"
    base = os.path.join(HERE, "results", stem)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(f"Jordan network (tanh, identity output), float32, 1 thread; times are "
                f"medians of alternating samples in process CPU time, ratio = torch / gru_cy "
                f"(> 1: gru_cy faster); wall ratio the same in wall-clock time. Load average "
                f"{load[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs: a shared "
                f"machine busy with other builds and tests, where calls longer than a "
                f"scheduler time slice are often preempted, so wall times of the longer "
                f"calls (torch's training above all) are inflated; CPU time is the fairer "
                f"measure here.\n\n")
        f.write(HEADER + "\n" + "\n".join(_format_row(r) for r in rows) + "\n")
    print(f"\nwrote {base}.json and {base}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
