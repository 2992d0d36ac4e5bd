"""Do Python threads run gru_cy in parallel? A fixed amount of work, 1 vs N threads.

    python benchmarks/threads_gil.py [--threads 2] [--calls 64] [--repeats 5] [--quick]
                                     [--out FILE.json]

The same list of independent inference calls (and, separately, training
steps on one module per thread) is run by one thread and then split over N
Python threads (--threads), with gru_cy's own kernels pinned to one thread
per call (gru_cy.set_num_threads(1)) and the BLAS too (threadpoolctl, or
OPENBLAS_NUM_THREADS=1 when threadpoolctl is missing), so that the only
parallelism is between the Python threads. Because the kernels release the
GIL for their whole time loop, N threads should approach an N-fold speed-up
on N free cores; the table shows the measured one, and the throughput of
each run in GF/s (the GRU's matrix-product flops, training three times the
forward's) and as a share of the machine's peak: one core's float32
multiply-add peak (gru_cy.bench.core_peak) times the Python threads. This
is a measurement, not a test: the suite checks the structural fact
(tests/test_threads.py). --quick: 16 calls, best of 3.
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--threads", type=int, default=2, help="Python threads")
    parser.add_argument("--calls", type=int, default=None,
                        help="inference calls per measurement (default 64, --quick 16)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5, --quick 3")
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--I", type=int, default=64)
    parser.add_argument("--H", type=int, default=128)
    args = parser.parse_args(argv)
    args.calls = args.calls or (16 if args.quick else 64)
    args.repeats = args.repeats or (3 if args.quick else 5)
    limits = _pin_blas()

    import gru_cy
    from gru_cy.bench import core_peak, describe_run, environment, peak_share

    # One thread per call in gru_cy's own pool: the parallelism measured is
    # the Python threads'.
    threads_before = gru_cy.get_num_threads()
    gru_cy.set_num_threads(1)
    peak = core_peak()

    rng = np.random.default_rng(0)
    T, B, I, H = args.T, args.B, args.I, args.H
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    shared = gru_cy.GRU(I, H, seed=0)
    shared(x)  # warm up

    rows = []
    fwd_flops = 2.0 * T * B * 3 * H * (I + H)
    infer = [lambda: shared(x) for _ in range(args.calls)]
    rows.append(("inference, one shared module", infer, fwd_flops))

    modules = [gru_cy.GRU(I, H, seed=i) for i in range(args.threads)]
    dout = np.ones((T, B, H), np.float32)

    def train_step(gru):
        _, _, tape = gru.forward_train(x)
        gru.backward(tape, dout)

    n_train = max(args.threads, args.calls // 4)
    # Job k trains module k % threads, so each thread owns one module when split.
    train = [(lambda g=modules[k % args.threads]: train_step(g)) for k in range(n_train)]
    rows.append(("training, one module per thread", train, 3 * fwd_flops))

    env = environment(peak)
    load = os.getloadavg()[0]
    print(f"gru_cy {gru_cy.__version__}: T={T} B={B} I={I} H={H} float32, "
          f"gru_cy and BLAS pinned to 1 thread per call, {os.cpu_count()} CPUs, best of "
          f"{args.repeats}, load average {load:.2f} (meaningful only on an idle machine)")
    print(describe_run(env))
    print(f"{'work':<34} {'calls':>6} {'1 thread':>10} {'peak':>5} "
          f"{f'{args.threads} threads':>11} {'peak':>5} {'speed-up':>9}")
    results = []
    for label, jobs, flops in rows:
        one, many = _best_pair(jobs, args.threads, args.repeats)
        gf_one, gf_many = len(jobs) * flops / one / 1e9, len(jobs) * flops / many / 1e9
        sh_one, sh_many = peak_share(gf_one, peak, 1), peak_share(gf_many, peak, args.threads)
        print(f"{label:<34} {len(jobs):>6} {one * 1e3:>8.1f}ms {100 * sh_one:>4.0f}% "
              f"{many * 1e3:>9.1f}ms {100 * sh_many:>4.0f}% {one / many:>8.2f}x")
        results.append(dict(work=label, calls=len(jobs), seconds_1=one, seconds_n=many,
                            gflops_1=gf_one, gflops_n=gf_many, peak_share_1=sh_one,
                            peak_share_n=sh_many, speedup=one / many))
    if limits is not None:
        limits.restore_original_limits()
    gru_cy.set_num_threads(threads_before)
    if args.out:
        env["load_average"] = load
        with open(args.out, "w") as f:
            json.dump(dict(environment=env, python_threads=args.threads, gru_cy_threads=1,
                           shape=dict(T=T, B=B, I=I, H=H), repeats=args.repeats,
                           results=results), f, indent=1)
        print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
