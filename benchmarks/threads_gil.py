"""Do Python threads run gru_cy in parallel? A fixed amount of work, 1 vs N threads.

    python benchmarks/threads_gil.py [--threads 2] [--calls 64] [--repeats 5]

The same list of independent inference calls (and, separately, training
steps on one module per thread) is run by one thread and then split over N
threads, with BLAS pinned to one thread per call (threadpoolctl, or
OPENBLAS_NUM_THREADS=1 when threadpoolctl is missing) so that the only
parallelism is between the Python threads. Because the kernels release the
GIL for their whole time loop, N threads should approach an N-fold speed-up
on N free cores; the table shows the measured one. This is a measurement,
not a test: the suite checks the structural fact (tests/test_threads.py).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np


def _pin_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        return None
    return threadpool_limits(limits=1, user_api="blas")


def _run_split(jobs, n_threads):
    """Run the callables in jobs, split round-robin over n_threads; wall time."""
    parts = [jobs[i::n_threads] for i in range(n_threads)]
    barrier = threading.Barrier(n_threads + 1)

    def worker(part):
        barrier.wait()
        for job in part:
            job()

    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _best_pair(jobs, n_threads, repeats):
    """Best wall times of 1 thread and of n_threads, measured alternately so
    that a change in the machine's load hits both alike."""
    one, many = float("inf"), float("inf")
    for _ in range(repeats):
        one = min(one, _run_split(jobs, 1))
        many = min(many, _run_split(jobs, n_threads))
    return one, many


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=64, help="inference calls per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--I", type=int, default=64)
    parser.add_argument("--H", type=int, default=128)
    args = parser.parse_args(argv)
    limits = _pin_blas()

    import gru_cy

    rng = np.random.default_rng(0)
    T, B, I, H = args.T, args.B, args.I, args.H
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    shared = gru_cy.GRU(I, H, seed=0)
    shared(x)  # warm up

    rows = []
    infer = [lambda: shared(x) for _ in range(args.calls)]
    rows.append(("inference, one shared module", infer))

    modules = [gru_cy.GRU(I, H, seed=i) for i in range(args.threads)]
    dout = np.ones((T, B, H), np.float32)

    def train_step(gru):
        _, _, tape = gru.forward_train(x)
        gru.backward(tape, dout)

    n_train = max(args.threads, args.calls // 4)
    # Job k trains module k % threads, so each thread owns one module when split.
    train = [(lambda g=modules[k % args.threads]: train_step(g)) for k in range(n_train)]
    rows.append(("training, one module per thread", train))

    print(f"gru_cy {gru_cy.__version__}: T={T} B={B} I={I} H={H} float32, "
          f"BLAS pinned to 1 thread, {os.cpu_count()} CPUs, best of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.2f} (meaningful only on an idle machine)")
    print(f"{'work':<34} {'calls':>6} {'1 thread':>10} {f'{args.threads} threads':>11} "
          f"{'speed-up':>9}")
    for label, jobs in rows:
        one, many = _best_pair(jobs, args.threads, args.repeats)
        print(f"{label:<34} {len(jobs):>6} {one * 1e3:>8.1f}ms {many * 1e3:>9.1f}ms "
              f"{one / many:>8.2f}x")
    if limits is not None:
        limits.restore_original_limits()


if __name__ == "__main__":
    main()
