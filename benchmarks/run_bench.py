"""The full side-by-side GRU benchmark, with JSON, plot and README table.

    python benchmarks/run_bench.py [--threads 1 2] [--budget 2] [--quick] [--name STEM]

Runs gru_cy against the NumPy GRU, torch.nn.GRU and ONNX Runtime on the
shape grid, the extra rows (float64, bidirectional, 2 layers,
reset_after=False, variable lengths) and the step() latency row, at each
thread count; prints the tables; writes benchmarks/results/bench-<date>.json,
the plot next to it (when matplotlib is installed) and the Markdown table
used in README.md (bench-<date>.md). Every gru_cy row carries its share of
the machine's peak (its GF/s over one core's float32 multiply-add peak times
the threads); the peak, gru_cy's instruction set, backend and threads and
OPENBLAS_CORETYPE are in the JSON's environment. The measuring code is the
package gru_cy.bench (src/gru_cy/bench/), also behind `python -m gru_cy
bench`. --quick: the quick grid, no extra rows, 0.3 s per measurement
(well under a minute at one thread).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from gru_cy import bench

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timing per case, mode and thread count "
                             "(default 2, with --quick 0.3)")
    parser.add_argument("--quick", action="store_true", help="the quick grid, no extra rows")
    parser.add_argument("--name", default=None, help="file name stem under results/")
    parser.add_argument("--update", action="store_true",
                        help="keep the other thread counts of an existing results/<name>.json "
                             "and replace only those run now (e.g. to re-run 2 threads on a "
                             "quieter machine)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each case, wait up to this long for the machine to be "
                             "idle (other processes skew timings, most of all with 2 threads)")
    args = parser.parse_args(argv)
    grid = bench.QUICK_GRID if args.quick else bench.GRID
    budget = args.budget if args.budget is not None else (0.3 if args.quick else 2.0)
    doc = bench.run(grid, extras=not args.quick, step=True, threads_list=args.threads,
                    budget=budget, wait_quiet=args.wait_quiet)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stem = args.name or f"bench-{datetime.date.today().isoformat()}"
    base = os.path.join(HERE, "results", stem)
    if args.update and os.path.exists(base + ".json"):
        with open(base + ".json") as f:
            old = json.load(f)
        kept = [r for r in old["results"] if r["threads"] not in args.threads]
        doc["results"] = kept + doc["results"]
        doc["threads"] = sorted(set(old["threads"]) | set(args.threads))
        doc["notes"] = sorted(set(old["notes"]) | set(doc["notes"]))
        doc["environment"]["earlier_runs"] = old["environment"]
    bench.print_report(doc)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(bench.format_markdown(doc))
    print(f"\nwrote {base}.json and {base}.md")
    try:
        import plot_bench
    except ImportError:
        sys.path.insert(0, HERE)
        import plot_bench
    try:
        plot_bench.plot(doc, base + ".png")
        print(f"wrote {base}.png")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
