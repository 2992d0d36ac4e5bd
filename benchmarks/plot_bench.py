"""Draw a benchmark result (JSON from run_bench.py or `python -m gru_cy bench --out`).

    python benchmarks/plot_bench.py benchmarks/results/bench.json [--out bench.png]

One panel per thread count and mode (forward, training step): for every case
the speed-up of gru_cy over each peer (peer time / gru_cy time, log scale,
above 1 means gru_cy is faster), and gru_cy's share of the machine's peak
(its GF/s over one core's float32 multiply-add peak times the threads) as a
dot on the right-hand axis. Needs matplotlib (benchmarks only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

PEER_COLORS = {"numpy": "#8c8c8c", "torch": "#ee4c2c", "onnxruntime": "#2b6cb0"}


def plot(doc, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = doc["results"]
    threads = doc["threads"]
    modes = ["forward", "train"]
    fig, axes = plt.subplots(len(threads), len(modes), figsize=(15, 4.8 * len(threads)),
                             squeeze=False)
    for i, n in enumerate(threads):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            sel = [r for r in rows if r["threads"] == n and r["mode"] == mode]
            cases = []
            for r in sel:
                if r["case"] not in cases:
                    cases.append(r["case"])
            peers = [p for p in PEER_COLORS if any(r["peer"] == p for r in sel)]
            width = 0.8 / max(1, len(peers))
            xs = np.arange(len(cases))
            for k, p in enumerate(peers):
                ratios = [next((r["ratio"] for r in sel if r["case"] == c and r["peer"] == p),
                               np.nan) for c in cases]
                ax.bar(xs + (k - (len(peers) - 1) / 2) * width, ratios, width, label=p,
                       color=PEER_COLORS[p])
            ax.axhline(1.0, color="black", lw=0.8)
            ax.set_yscale("log")
            ax.set_ylabel("peer time / gru_cy time")
            ax.set_xticks(xs)
            ax.set_xticklabels([c.replace(" I=", "\nI=") for c in cases], rotation=60,
                               ha="right", fontsize=7)
            ax.set_title(f"{'forward (inference)' if mode == 'forward' else 'training step'}, "
                         f"{n} thread{'s' if n > 1 else ''}")
            share = [next((r.get("peak_share") for r in sel if r["case"] == c
                           and r["peer"] == "gru_cy"), np.nan) for c in cases]
            ax2 = ax.twinx()
            ax2.plot(xs, [100 * f if f is not None else np.nan for f in share], "ko",
                     ms=4, label="gru_cy % of peak")
            ax2.set_ylim(0, 110)
            ax2.set_ylabel("% of peak (one core's FMA rate x threads)")
            if i == 0 and j == 0:
                h1, l1 = ax.get_legend_handles_labels()
                h2, l2 = ax2.get_legend_handles_labels()
                ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    env = doc["environment"]
    fig.suptitle(f"gru_cy {env['gru_cy']} vs peers - {env['cpu']}, {env['date']} "
                 f"(numpy {env['numpy']}, scipy {env['scipy']}, torch {env['torch']}, "
                 f"onnxruntime {env['onnxruntime']}; gru_cy {env.get('gru_cy_isa', '?')}, "
                 f"OPENBLAS_CORETYPE {env.get('openblas_coretype') or 'unset'})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json")
    parser.add_argument("--out", default=None, help="PNG path (default: next to the JSON)")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        doc = json.load(f)
    out = args.out or os.path.splitext(args.json)[0] + ".png"
    plot(doc, out)
    print(f"plot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
