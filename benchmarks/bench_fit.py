"""Training speed of RNNClassifier.fit against the same network in PyTorch.

    python benchmarks/bench_fit.py [--epochs 3] [--repeats 3] [--out benchmarks/results/fit]

One thread for both (the BLAS of NumPy/SciPy and torch's intra-op pool).
The network is GRU(F -> H=64) -> last state -> Linear(64 -> 4 classes),
trained with Adam (lr 1e-3) on softmax cross-entropy, mini-batches reshuffled
every epoch; the same data, epochs and batch size on both sides. The torch
loop is what a PyTorch user writes: the data as one tensor, ``x[idx]`` per
batch, ``pack_padded_sequence`` when lengths differ. Each timing is the
best of ``--repeats`` fits. A profile of one gru_cy fit then says which
share of the time the kernels take and which share the Python around them.

Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import gru_cy  # noqa: E402

H, F, N_CLASSES, N_SAMPLES = 64, 8, 4, 512

# (T, batch, ragged): ragged draws each length from [T/2, T].
CASES = [(50, 16, False), (50, 32, False), (100, 32, False), (150, 16, False),
         (150, 32, False), (150, 32, True)]


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
        if func in ("_kernel_forward", "_kernel_backward"):
            kernels += tt
        rows.append((tt, f"{os.path.basename(file)}:{func}", nc))
    rows.sort(reverse=True)
    return kernels, total, rows[:12]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="path prefix for .json and .md")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = None
    results = []
    print(f"fit: GRU(F={F}, H={H}) -> Linear({N_CLASSES}), {N_SAMPLES} samples, "
          f"{args.epochs} epochs, 1 thread, best of {args.repeats}")
    print(f"{'T':>5} {'batch':>5} {'lengths':>8} {'gru_cy s':>9} {'torch s':>9} {'ratio':>7}")
    for T, batch, ragged in CASES:
        X, y, lengths = make_data(T, ragged)
        ours = min(fit_gru_cy(X, y, batch, args.epochs)[0] for _ in range(args.repeats))
        theirs = (min(fit_torch(X, y, lengths, batch, args.epochs) for _ in range(args.repeats))
                  if torch is not None else float("nan"))
        ratio = theirs / ours
        results.append(dict(T=T, batch=batch, ragged=ragged, gru_cy_s=ours, torch_s=theirs,
                            ratio=ratio))
        print(f"{T:>5} {batch:>5} {'T/2..T' if ragged else 'equal':>8} {ours:9.3f} "
              f"{theirs:9.3f} {ratio:6.2f}x")
    T, batch, ragged = 100, 32, False
    X, y, lengths = make_data(T, ragged)
    kernels, total, rows = profile_share(X, y, batch, args.epochs)
    print(f"\nprofile of one gru_cy fit (T={T}, batch={batch}): {total:.3f} s, kernels "
          f"{kernels / total:.1%}, everything else {1 - kernels / total:.1%}")
    for tt, name, nc in rows:
        print(f"  {tt:8.4f} s {tt / total:6.1%}  {nc:6d} calls  {name}")
    ratios = [r["ratio"] for r in results]
    print(f"\nratio torch / gru_cy: min {min(ratios):.2f}x, median {np.median(ratios):.2f}x")
    if args.out:
        meta = dict(platform=platform.platform(), processor=platform.processor(),
                    numpy=np.__version__, torch=torch_version, gru_cy=gru_cy.__version__,
                    epochs=args.epochs, repeats=args.repeats, H=H, F=F, n_samples=N_SAMPLES)
        profile = dict(T=T, batch=batch, total_s=total, kernel_share=kernels / total,
                       top=[dict(seconds=tt, name=name, calls=nc) for tt, name, nc in rows])
        with open(args.out + ".json", "w") as f:
            json.dump(dict(meta=meta, results=results, profile=profile), f, indent=1)
        with open(args.out + ".md", "w") as f:
            f.write(f"# fit: gru_cy RNNClassifier vs a PyTorch loop (1 thread)\n\n"
                    f"GRU(F={F}, H={H}) -> last state -> Linear({N_CLASSES}), Adam, "
                    f"{N_SAMPLES} samples, {args.epochs} epochs, best of {args.repeats}; "
                    f"torch {torch_version}, numpy {np.__version__}.\n\n"
                    "| T | batch | lengths | gru_cy (s) | torch (s) | torch / gru_cy |\n"
                    "|---|---|---|---|---|---|\n")
            for r in results:
                f.write(f"| {r['T']} | {r['batch']} | {'T/2..T' if r['ragged'] else 'equal'} | "
                        f"{r['gru_cy_s']:.3f} | {r['torch_s']:.3f} | {r['ratio']:.2f}x |\n")
            f.write(f"\nProfile of one fit (T={T}, batch={batch}): kernels "
                    f"{kernels / total:.1%} of {total:.3f} s, the Python around them "
                    f"{1 - kernels / total:.1%}.\n")
    return results


if __name__ == "__main__":
    main()
