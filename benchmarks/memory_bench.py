"""Peak memory of inference against sequence length.

    python benchmarks/memory_bench.py [--cell GRU|LSTM|RNN] [--threads N] [--quick]
                                      [--out benchmarks/results/memory.json]

Each run is a fresh subprocess (so that peaks do not carry over) that
imports gru_cy, builds the cell (GRU by default; H=256) and x (T, B=1,
I=256) in float32, runs one warm-up call
with T=10 and then the measured call, and reports the process's peak
resident set size (getrusage ru_maxrss) and what the call itself added to
the resident set before it (the input projection is computed in chunks of
time steps, so only the output should grow with T). The target:
peak(T=10,000) within 10% of peak(T=100) plus the growth of the output; the
caller's own input grows too and is allowed for. --threads N runs gru_cy's
kernels on N threads in the child (GRU_CY_NUM_THREADS; default: gru_cy's
own default, every core), which records the threads and instruction set it
ran with. --quick: T = 100 and 2,000.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
import gru_cy
T, B, I, H, dtype = int(sys.argv[1]), 1, 256, 256, np.float32
module = getattr(gru_cy, sys.argv[2])(I, H, seed=0, dtype=dtype)
module(np.zeros((10, B, I), dtype))                   # warm-up (BLAS buffers, caches)
x = np.random.default_rng(0).standard_normal((T, B, I), dtype=dtype)
def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
def reset_peak():
    # Linux: writing 5 to clear_refs resets the peak resident set (VmHWM).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
before = status_kib("VmRSS")
exact = reset_peak()
out, h_n = module(x)
peak = status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from gru_cy.kernels import _core
print(json.dumps(dict(T=T, peak_kib=peak, rss_before_call_kib=before, peak_of_call_only=exact,
                      out_bytes=out.nbytes, x_bytes=x.nbytes, threads=gru_cy.get_num_threads(),
                      isa=_core.isa(), backend=gru_cy.get_backend())))
"""


def measure(T, cell="GRU", threads=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    if threads is not None:
        env["GRU_CY_NUM_THREADS"] = str(threads)
    res = subprocess.run([sys.executable, "-c", CHILD, str(T), cell], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--lengths", type=int, nargs="*", default=None,
                        help="sequence lengths (default 100 10000, --quick 100 2000)")
    parser.add_argument("--cell", default="GRU", choices=["GRU", "LSTM", "RNN"])
    parser.add_argument("--threads", type=int, default=None,
                        help="gru_cy's threads in the child (default: gru_cy's default)")
    parser.add_argument("--quick", action="store_true", help="T = 100 and 2000")
    args = parser.parse_args(argv)
    lengths = args.lengths or ([100, 2000] if args.quick else [100, 10_000])
    runs = [measure(T, args.cell, args.threads) for T in lengths]
    print(f"{args.cell}, B=1, I=H=256, float32; gru_cy threads {runs[0]['threads']}, "
          f"{runs[0]['isa']}, backend {runs[0]['backend']}")
    short, long_ = runs[0], runs[-1]
    allowed_kib = (1.10 * short["peak_kib"]
                   + (long_["out_bytes"] - short["out_bytes"]) / 1024
                   + (long_["x_bytes"] - short["x_bytes"]) / 1024)
    print(f"{'T':>8} {'peak RSS':>12} {'call added':>12} {'output':>10} {'input':>10}")
    for r in runs:
        added = max(0, r["peak_kib"] - r["rss_before_call_kib"])
        print(f"{r['T']:>8} {r['peak_kib'] / 1024:8.1f} MiB {added / 1024:8.1f} MiB "
              f"{r['out_bytes'] / 2**20:6.1f} MiB {r['x_bytes'] / 2**20:6.1f} MiB")
    ok = long_["peak_kib"] <= allowed_kib
    print(f"\npeak(T={long_['T']}) = {long_['peak_kib'] / 1024:.1f} MiB; allowed "
          f"1.1 * peak(T={short['T']}) + growth of output and input = {allowed_kib / 1024:.1f} MiB"
          f" -> {'within target' if ok else 'OVER target'}")
    added = [max(0, r["peak_kib"] - r["rss_before_call_kib"]) for r in (short, long_)]
    grow = (added[1] - added[0]) / 1024
    out_grow = (long_["out_bytes"] - short["out_bytes"]) / 2**20
    print(f"what the call itself adds grows by {grow:.1f} MiB from T={short['T']} to "
          f"T={long_['T']}; the output by {out_grow:.1f} MiB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(cell=args.cell, threads=runs[0]["threads"], isa=runs[0]["isa"],
                           backend=runs[0]["backend"], runs=runs, allowed_kib=allowed_kib,
                           within_target=ok,
                           call_added_growth_mib=grow, output_growth_mib=out_grow), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
