"""Training speed of RNNClassifier.fit against the same network in PyTorch.

    python benchmarks/bench_fit.py [--quick] [--threads N ...] [--epochs 3] [--repeats 3]
                                   [--out benchmarks/results/fit]

The same number of threads for both, one by default (gru_cy.bench's Threads:
gru_cy's kernels, the BLAS of NumPy/SciPy and torch's intra-op pool).
The network is GRU(F -> H=64) -> last state -> Linear(64 -> 4 classes),
trained with Adam (lr 1e-3) on softmax cross-entropy, mini-batches reshuffled
every epoch; the same data, epochs and batch size on both sides. The torch
loop is what a PyTorch user writes: the data as one tensor, ``x[idx]`` per
batch, ``pack_padded_sequence`` when lengths differ. Each timing is the
best of ``--repeats`` fits; "peak" is the GRU's matrix-product flops of a
gru_cy fit (forward and backward, 3 x 2 x 3H (F + H) per step of every
sample and epoch; the head's are negligible) per second, over one core's
float32 multiply-add peak (gru_cy.bench.core_peak) times the threads. A
profile of one gru_cy fit then says which share of the time the kernels
take and which share the Python around them. --quick: two cases, one epoch,
one repeat. Without torch, gru_cy is timed alone (with a note).

Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import time
import warnings

import numpy as np

import gru_cy
from gru_cy.bench import Threads, core_peak, describe_run, environment, peak_share

H, F, N_CLASSES, N_SAMPLES = 64, 8, 4, 512

# (T, batch, ragged): ragged draws each length from [T/2, T].
CASES = [(50, 16, False), (50, 32, False), (100, 32, False), (150, 16, False),
         (150, 32, False), (150, 32, True)]
QUICK_CASES = [(50, 32, False), (50, 32, True)]
# The functions of gru_cy.nn whose own time (the compiled calls they make
# are not profiled separately) is the kernels' time.
KERNEL_CALLS = ("_kernel_layer", "_kernel_layer_backward", "_kernel_forward",
                "_kernel_backward")


def make_data(T, ragged, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(T // 2, T + 1, size=N_SAMPLES) if ragged else np.full(N_SAMPLES, T)
    X = [rng.standard_normal((int(t), F)).astype(np.float32) for t in lengths]
    y = np.array([int(np.sign(x[:, 0].sum()) > 0) + 2 * int(x[-1, 1] > 0) for x in X])
    return (X if ragged else np.stack(X)), y, lengths


def fit_gru_cy(X, y, batch, epochs):
    clf = gru_cy.RNNClassifier(hidden_size=H, batch_size=batch, max_iter=epochs, tol=0.0,
                               n_iter_no_change=epochs + 1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        clf.fit(X, y)
        return time.perf_counter() - t0, clf


def fit_torch(X, y, lengths, batch, epochs):
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    T = int(lengths.max())
    padded = np.zeros((len(lengths), T, F), dtype=np.float32)
    for i, x in enumerate(X):
        padded[i, :len(x)] = x
    x_all = torch.from_numpy(padded)
    y_all = torch.from_numpy(np.asarray(y, dtype=np.int64))
    len_all = torch.from_numpy(np.asarray(lengths, dtype=np.int64))
    ragged = bool((lengths != T).any())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(F, H, batch_first=True)
            self.out = nn.Linear(H, N_CLASSES)

        def forward(self, x, lens):
            if ragged:
                x = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            _, h_n = self.gru(x)
            return self.out(h_n[-1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    n = len(lengths)
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            lens = len_all[idx]
            xb = x_all[idx, :int(lens.max())]
            opt.zero_grad()
            loss = loss_fn(net(xb, lens), y_all[idx])
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def profile_share(X, y, batch, epochs):
    """(kernel seconds, total seconds, top entries) of one profiled fit."""
    prof = cProfile.Profile()
    prof.enable()
    fit_gru_cy(X, y, batch, epochs)
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    kernels = 0.0
    rows = []
    for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        if func in KERNEL_CALLS:
            kernels += tt
        rows.append((tt, f"{os.path.basename(file)}:{func}", nc))
    rows.sort(reverse=True)
    return kernels, total, rows[:12]


def fit_flops(lengths, epochs):
    """The GRU's matrix-product flops of a fit: forward and backward (three
    times the forward's 2 * 3H * (F + H) per step) of every sample, every epoch."""
    return 3 * 2.0 * 3 * H * (F + H) * float(np.sum(lengths)) * epochs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two cases, one epoch, one repeat")
    ap.add_argument("--threads", type=int, nargs="*", default=[1],
                    help="thread counts for both (default 1)")
    ap.add_argument("--epochs", type=int, default=None, help="default 3, --quick 1")
    ap.add_argument("--repeats", type=int, default=None, help="default 3, --quick 1")
    ap.add_argument("--out", default=None, help="path prefix for .json and .md")
    args = ap.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 3)
    cases = QUICK_CASES if args.quick else CASES
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = None
        print("note: torch is not installed: gru_cy timed alone, no ratios")
    peak = core_peak()
    results = []
    print(f"fit: GRU(F={F}, H={H}) -> Linear({N_CLASSES}), {N_SAMPLES} samples, "
          f"{args.epochs} epochs, threads {args.threads}, best of {args.repeats}")
    print(f"{'thr':>3} {'T':>5} {'batch':>5} {'lengths':>8} {'gru_cy s':>9} {'peak':>5} "
          f"{'torch s':>9} {'ratio':>7}")
    for threads in args.threads:
        with Threads(threads):
            for T, batch, ragged in cases:
                X, y, lengths = make_data(T, ragged)
                ours = min(fit_gru_cy(X, y, batch, args.epochs)[0]
                           for _ in range(args.repeats))
                theirs = (min(fit_torch(X, y, lengths, batch, args.epochs)
                              for _ in range(args.repeats))
                          if torch is not None else float("nan"))
                ratio = theirs / ours
                gf = fit_flops(lengths, args.epochs) / ours / 1e9
                share = peak_share(gf, peak, threads)
                results.append(dict(threads=threads, T=T, batch=batch, ragged=ragged,
                                    gru_cy_s=ours, torch_s=theirs, ratio=ratio, gflops=gf,
                                    peak_share=share, gru_cy_threads=gru_cy.get_num_threads()))
                print(f"{threads:>3} {T:>5} {batch:>5} {'T/2..T' if ragged else 'equal':>8} "
                      f"{ours:9.3f} {100 * share:4.0f}% {theirs:9.3f} {ratio:6.2f}x",
                      flush=True)
    T, batch, ragged = (50, 32, False) if args.quick else (100, 32, False)
    X, y, lengths = make_data(T, ragged)
    with Threads(args.threads[0]):
        kernels, total, rows = profile_share(X, y, batch, args.epochs)
    print(f"\nprofile of one gru_cy fit (T={T}, batch={batch}, {args.threads[0]} thread(s)): "
          f"{total:.3f} s, kernels {kernels / total:.1%}, everything else "
          f"{1 - kernels / total:.1%}")
    for tt, name, nc in rows:
        print(f"  {tt:8.4f} s {tt / total:6.1%}  {nc:6d} calls  {name}")
    ratios = [r["ratio"] for r in results]
    print(f"\nratio torch / gru_cy: min {min(ratios):.2f}x, median {np.median(ratios):.2f}x")
    env = environment(peak)
    print(describe_run(env))
    if args.out:
        meta = dict(platform=platform.platform(), processor=platform.processor(),
                    numpy=np.__version__, torch=torch_version, gru_cy=gru_cy.__version__,
                    epochs=args.epochs, repeats=args.repeats, threads=args.threads, H=H, F=F,
                    n_samples=N_SAMPLES)
        profile = dict(T=T, batch=batch, threads=args.threads[0], total_s=total,
                       kernel_share=kernels / total,
                       top=[dict(seconds=tt, name=name, calls=nc) for tt, name, nc in rows])
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".json", "w") as f:
            json.dump(dict(meta=meta, environment=env, results=results, profile=profile), f,
                      indent=1)
        with open(args.out + ".md", "w") as f:
            f.write(f"# fit: gru_cy RNNClassifier vs a PyTorch loop (threads {args.threads})\n\n"
                    f"GRU(F={F}, H={H}) -> last state -> Linear({N_CLASSES}), Adam, "
                    f"{N_SAMPLES} samples, {args.epochs} epochs, best of {args.repeats}; "
                    f"torch {torch_version}, numpy {np.__version__}. peak = the GRU's "
                    f"product flops per second of a gru_cy fit / (one core's float32 "
                    f"multiply-add peak x threads).\n{describe_run(env)}\n\n"
                    "| threads | T | batch | lengths | gru_cy (s) | peak | torch (s) | "
                    "torch / gru_cy |\n|---|---|---|---|---|---|---|---|\n")
            for r in results:
                f.write(f"| {r['threads']} | {r['T']} | {r['batch']} | "
                        f"{'T/2..T' if r['ragged'] else 'equal'} | {r['gru_cy_s']:.3f} | "
                        f"{100 * r['peak_share']:.0f}% | {r['torch_s']:.3f} | "
                        f"{r['ratio']:.2f}x |\n")
            f.write(f"\nProfile of one fit (T={T}, batch={batch}): kernels "
                    f"{kernels / total:.1%} of {total:.3f} s, the Python around them "
                    f"{1 - kernels / total:.1%}.\n")
    return results


if __name__ == "__main__":
    main()
