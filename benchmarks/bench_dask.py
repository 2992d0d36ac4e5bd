"""gru_cy.dask on one machine: inference throughput and the cost of fit.

    python benchmarks/bench_dask.py [--quick] [--threads N] [--repeats 3] [--out PREFIX]

1. Inference: a GRU(32 -> 128) over N sequences of T = 100 steps (float32),
   in sequences per second: one process with one thread against
   ``gru_cy.dask.predict`` on a LocalCluster of 2 worker processes x 1
   thread, with the data already on the workers (``da.random``, persisted),
   the predictions either kept there (persist) or gathered to the client
   (compute).
2. Training: ``gru_cy.dask.fit`` on the same cluster against a local
   ``RNNClassifier.fit`` with the same hyper-parameters (same global
   batches, same model): the wall time of each, and the cluster's overhead
   per optimiser step.

Each timing is the best of ``--repeats``. gru_cy's kernels run on --threads
threads (default 1) in every process, the local one and each worker (set
through GRU_CY_NUM_THREADS before anything starts, so the workers inherit
it); the BLAS and OpenMP libraries on one. Inference rows also give the
share of the machine's peak: the GRU's product flops per second over one
core's float32 multiply-add peak (gru_cy.bench.core_peak) times the
threads the row runs on (workers x --threads for the cluster). The machine
is shared: the load average is recorded with the results, and ratios
measured in one run are what to read, not absolute times. --quick: 1024
sequences, 512 training samples, best of one. Without dask.distributed the
script says so and exits. Writes <out>.json and <out>.md (default
benchmarks/results/dask-<date>).
"""

from __future__ import annotations

import os
import sys


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# Before gru_cy, NumPy or dask start: the worker processes inherit these.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["GRU_CY_NUM_THREADS"] = _threads_from_argv(sys.argv[1:])

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import gru_cy  # noqa: E402
from gru_cy.bench import core_peak, describe_run, environment, peak_share  # noqa: E402

T, I, H = 100, 32, 128
WORKERS = 2
HERE = os.path.dirname(os.path.abspath(__file__))


def best_of(repeats, func):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def inference(client, n, chunk, repeats, threads, peak):
    import dask.array as da
    from distributed import wait

    import gru_cy.dask as gd

    model = gru_cy.GRU(I, H, seed=0)
    X = da.random.default_rng(0).random((T, n, I), chunks=(T, chunk, I), dtype=np.float32)
    X = X.persist()
    wait(X)
    x = X.compute()
    rows = {}
    th = f"{threads} thread{'s' if threads > 1 else ''}"
    model(x)        # warm-up: the workspaces of this batch
    rows[f"1 process, {th}"] = best_of(repeats, lambda: model(x))

    seeds = iter(range(1, 2 * repeats + 1))

    def fresh_model():
        # Another seed each time: the graph's keys follow the model's
        # contents, and results still held from the previous repeat would
        # otherwise be reused instead of computed.
        return gru_cy.GRU(I, H, seed=next(seeds))

    def kept():
        pred = gd.predict(fresh_model(), X).persist()
        wait(pred)
        client.cancel(pred)

    rows[f"{WORKERS} workers x {th}, results kept on the workers"] = best_of(repeats, kept)
    rows[f"{WORKERS} workers x {th}, results gathered"] = best_of(
        repeats, lambda: gd.predict(fresh_model(), X).compute())
    flops = 2.0 * T * n * 3 * H * (I + H)
    out = {}
    for name, t in rows.items():
        used = threads if name.startswith("1 process") else WORKERS * threads
        out[name] = {"seconds": t, "sequences_per_s": n / t, "gflops": flops / t / 1e9,
                     "threads": used, "peak_share": peak_share(flops / t / 1e9, peak, used)}
    return out


def training(client, n, batch_size, epochs, repeats):
    import dask.array as da

    import gru_cy.dask as gd

    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 50, 8)).astype(np.float32)
    y = rng.integers(0, 4, n)
    kw = dict(hidden_size=64, batch_size=batch_size, max_iter=epochs, random_state=0,
              n_iter_no_change=epochs + 1)  # every epoch runs
    X = da.from_array(x, chunks=(n // 2, 50, 8)).persist()

    def local():
        gru_cy.RNNClassifier(**kw).fit(x, y)

    def cluster():
        gd.fit(gru_cy.RNNClassifier(**kw), X, y, client=client)

    def setup():
        # what fit does before its first step: describe, initialise, encode
        gd._Cluster(gru_cy.RNNClassifier(**kw), X, y, client, None).close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_local = best_of(repeats, local)
        t_cluster = best_of(repeats, cluster)
        t_setup = best_of(repeats, setup)
    steps = epochs * -(-n // batch_size)
    return {"n_samples": n, "batch_size": batch_size, "epochs": epochs, "steps": steps,
            "local_s": t_local, "cluster_s": t_cluster, "ratio": t_cluster / t_local,
            "setup_s": t_setup,
            "overhead_per_step_ms": 1e3 * max(t_cluster - t_setup - t_local, 0.0) / steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1024 sequences, 512 training samples, best of one")
    parser.add_argument("--threads", type=int, default=1,
                        help="gru_cy's threads in each process (read at start-up)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3, --quick 1")
    parser.add_argument("--n", type=int, default=None,
                        help="sequences for inference (default 4096, --quick 1024)")
    parser.add_argument("--out", default=None,
                        help="prefix of the .json/.md (default benchmarks/results/dask-<date>)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    n = args.n or (1024 if args.quick else 4096)
    n_train = 512 if args.quick else 1024
    out = args.out or os.path.join(HERE, "results", f"dask-{datetime.date.today().isoformat()}")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed is not installed: skipped (pip install 'dask[distributed]')")
        return 0
    assert gru_cy.get_num_threads() == args.threads, "GRU_CY_NUM_THREADS was not honoured"

    peak = core_peak()
    # Warm-up: the first fit in a process imports scikit-learn (most of a
    # second), which a best of one would otherwise count.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gru_cy.RNNClassifier(hidden_size=8, max_iter=1).fit(
            np.zeros((8, 5, 8), np.float32), np.arange(8) % 4)
    load_before = os.getloadavg()
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(WORKERS, timeout=120)
        worker_threads = client.run(gru_cy.get_num_threads)
        infer = inference(client, n, n // 8, repeats, args.threads, peak)
        fits = [training(client, n_train, bs, 2, repeats) for bs in (32, 256)]
    env = environment(peak)
    result = {
        "gru_cy": gru_cy.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "environment": env, "gru_cy_threads": args.threads,
        "worker_gru_cy_threads": sorted(worker_threads.values()),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "inference": {"T": T, "I": I, "H": H, "n": n, "rows": infer},
        "fit": fits,
    }
    base = next(iter(infer.values()))["sequences_per_s"]      # the one process
    lines = [
        "# gru_cy.dask on one machine",
        "",
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and "
        f"{result['load_average_after'][0]:.1f} after (other jobs share the machine). "
        f"gru_cy's threads per process: {args.threads} (workers: "
        f"{result['worker_gru_cy_threads']}). {describe_run(env)}",
        "",
        f"## Inference: GRU({I} -> {H}), T = {T}, {n} sequences, float32",
        "",
        "| run | seconds | sequences/s | vs 1 process | % of peak |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in infer.items():
        lines.append(f"| {name} | {row['seconds']:.3f} | {row['sequences_per_s']:.0f} | "
                     f"{row['sequences_per_s'] / base:.2f}x | "
                     f"{100 * row['peak_share']:.0f}% |")
    lines += [
        "",
        f"## Training: RNNClassifier(hidden_size=64), {n_train} samples x 50 steps x 8 "
        "features",
        "",
        "| batch size | steps | local fit s | cluster fit s | ratio | cluster set-up s | "
        "overhead per step |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in fits:
        lines.append(f"| {row['batch_size']} | {row['steps']} | {row['local_s']:.2f} | "
                     f"{row['cluster_s']:.2f} | {row['ratio']:.2f}x | {row['setup_s']:.2f} | "
                     f"{row['overhead_per_step_ms']:.1f} ms |")
    lines += ["", "Cluster set-up: the pieces of X described, the model initialised and the "
              "pieces encoded on the workers, before the first step. Overhead per step: "
              "(cluster fit - set-up - local fit) / steps. % of peak: the GRU's product "
              "flops per second / (one core's float32 multiply-add peak x the threads the "
              "row runs on)."]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nresults written to {out}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
