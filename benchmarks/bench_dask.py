"""gru_cy.dask on one machine: inference throughput and the cost of fit.

    python benchmarks/bench_dask.py [--repeats 3] [--out benchmarks/results/dask-final]

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

Each timing is the best of ``--repeats``. The machine is shared: the load
average is recorded with the results, and ratios measured in one run are
what to read, not absolute times. Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import gru_cy  # noqa: E402

T, I, H = 100, 32, 128


def best_of(repeats, func):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def inference(client, n, chunk, repeats):
    import dask.array as da
    from distributed import wait

    import gru_cy.dask as gd

    model = gru_cy.GRU(I, H, seed=0)
    X = da.random.default_rng(0).random((T, n, I), chunks=(T, chunk, I), dtype=np.float32)
    X = X.persist()
    wait(X)
    x = X.compute()
    rows = {}
    rows["1 process, 1 thread"] = best_of(repeats, lambda: model(x))

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

    rows["2 workers x 1 thread, results kept on the workers"] = best_of(repeats, kept)
    rows["2 workers x 1 thread, results gathered"] = best_of(
        repeats, lambda: gd.predict(fresh_model(), X).compute())
    return {name: {"seconds": t, "sequences_per_s": n / t} for name, t in rows.items()}


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=4096, help="sequences for inference")
    parser.add_argument("--out", default="benchmarks/results/dask-final")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    load_before = os.getloadavg()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        infer = inference(client, args.n, args.n // 8, args.repeats)
        fits = [training(client, 1024, bs, 2, args.repeats) for bs in (32, 256)]
    result = {
        "gru_cy": gru_cy.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "inference": {"T": T, "I": I, "H": H, "n": args.n, "rows": infer},
        "fit": fits,
    }
    base = infer["1 process, 1 thread"]["sequences_per_s"]
    lines = [
        "# gru_cy.dask on one machine",
        "",
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and "
        f"{result['load_average_after'][0]:.1f} after (other jobs share the machine).",
        "",
        f"## Inference: GRU({I} -> {H}), T = {T}, {args.n} sequences, float32",
        "",
        "| run | seconds | sequences/s | vs 1 process |",
        "|---|---:|---:|---:|",
    ]
    for name, row in infer.items():
        lines.append(f"| {name} | {row['seconds']:.3f} | {row['sequences_per_s']:.0f} | "
                     f"{row['sequences_per_s'] / base:.2f}x |")
    lines += [
        "",
        "## Training: RNNClassifier(hidden_size=64), 1024 samples x 50 steps x 8 features",
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
              "(cluster fit - set-up - local fit) / steps."]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
