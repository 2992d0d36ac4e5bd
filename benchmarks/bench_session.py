"""Whole exported models: gru_cy.InferenceSession against ONNX Runtime, one thread by default.

    python benchmarks/bench_session.py [--quick] [--threads N ...] [--budget SECONDS] [--tag NAME]

Models (PyTorch, exported with torch.onnx.export(dynamo=False), dynamic batch and time;
each takes its recurrent state as inputs and returns it):

- ``text``: Embedding(1000, 64) -> GRU(64, 128, 2 layers) -> Linear(128, 32) -> softmax,
  compute mostly recurrent;
- ``speech``: Conv1d(40, 128, 5, stride 2) -> ReLU -> Conv1d(128, 128, 3) -> ReLU ->
  LSTM(128, 128) -> Linear(128, 32) -> log_softmax, a convolutional front end.

Modes: ``stream``, batch 1 fed chunk after chunk (text: 1 token per call; speech: 16
frames), each call fed the state the previous call returned, as a streaming server does;
``batch32``: 32 sequences of 100 steps in one call. Both runtimes get the same file and
inputs and take turns call by call (gru_cy.bench's interleaved timer), so a noisy machine
slows them alike; the median time per call is reported and the ratio ONNX Runtime time /
gru_cy time (> 1: gru_cy is faster).

The per-node overhead: a chain of N Add nodes on a (1, 8) tensor, timed at N = 10 and
N = 200; (t200 - t10) / 190 is what one more node costs a run. Both runtimes run on
--threads threads (each count in turn; gru_cy.bench's Threads pins gru_cy's kernels, ONNX
Runtime gets intra_op_num_threads). The environment records one core's float32 multiply-add
peak and gru_cy's instruction set; no peak share is given per row, the graphs mixing
recurrent layers with convolutions, lookups and element-wise work. --quick: 0.5 s per
measurement. Without onnxruntime or torch (which exports the models) the script says so and
exits. Results go to benchmarks/results/session-<tag>.json and .md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings

import numpy as np

from gru_cy.bench import (Threads, available_peers, busy_fraction, core_peak, describe_run,
                          environment, ort_session, time_peers)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _models():
    import torch
    from torch import nn

    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 64)
            self.gru = nn.GRU(64, 128, num_layers=2, batch_first=True)
            self.head = nn.Linear(128, 32)

        def forward(self, tokens, h0):
            y, h = self.gru(self.emb(tokens), h0)
            return torch.softmax(self.head(y), dim=-1), h

    class Speech(nn.Module):
        def __init__(self):
            super().__init__()
            self.front = nn.Sequential(nn.Conv1d(40, 128, 5, stride=2, padding=2), nn.ReLU(),
                                       nn.Conv1d(128, 128, 3, padding=1), nn.ReLU())
            self.lstm = nn.LSTM(128, 128, batch_first=True)
            self.head = nn.Linear(128, 32)

        def forward(self, features, h0, c0):
            y, (h, c) = self.lstm(self.front(features).transpose(1, 2), (h0, c0))
            return torch.log_softmax(self.head(y), dim=-1), h, c

    return {"text": Text, "speech": Speech}


SPECS = {
    "text": dict(inputs=["tokens", "h0"], outputs=["probs", "h_n"],
                 axes={"tokens": {0: "batch", 1: "time"}, "h0": {1: "batch"},
                       "probs": {0: "batch", 1: "time"}, "h_n": {1: "batch"}},
                 state={"h0": "h_n"}, chunk=1),
    "speech": dict(inputs=["features", "h0", "c0"], outputs=["log_probs", "h_n", "c_n"],
                   axes={"features": {0: "batch", 2: "time"}, "h0": {1: "batch"},
                         "c0": {1: "batch"}, "log_probs": {0: "batch", 1: "frames"},
                         "h_n": {1: "batch"}, "c_n": {1: "batch"}},
                   state={"h0": "h_n", "c0": "c_n"}, chunk=16),
}


def feeds_for(name, B, T, rng):
    if name == "text":
        return {"tokens": rng.integers(0, 1000, (B, T)).astype(np.int64),
                "h0": np.zeros((2, B, 128), np.float32)}
    return {"features": rng.standard_normal((B, 40, T)).astype(np.float32),
            "h0": np.zeros((1, B, 128), np.float32), "c0": np.zeros((1, B, 128), np.float32)}


def export(name):
    import torch

    torch.manual_seed(0)
    module = _models()[name]().eval()
    spec = SPECS[name]
    example = feeds_for(name, 2, 32, np.random.default_rng(0))
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(torch.from_numpy(example[n]) for n in spec["inputs"]),
                          f, input_names=spec["inputs"], output_names=spec["outputs"],
                          dynamic_axes=spec["axes"], dynamo=False, opset_version=17)
    return f.getvalue()


def streaming_call(session, name, chunk):
    """A function running one streaming call: the next chunk, the state fed back."""
    spec = SPECS[name]
    rng = np.random.default_rng(1)
    stream_feeds = feeds_for(name, 1, chunk, rng)
    state = {k: stream_feeds[k] for k in spec["state"]}
    outputs = spec["outputs"]
    data = {k: v for k, v in stream_feeds.items() if k not in spec["state"]}

    def call():
        result = session.run(None, dict(data, **state))
        named = dict(zip(outputs, result))
        for k, out in spec["state"].items():
            state[k] = named[out]
    return call


def chain_model(n):
    """n Add nodes in a chain on a (1, 8) input."""
    from gru_cy.io.onnx.codec import onnx_node, onnx_tensor_proto, onnx_value_info, pb_bytes, \
        pb_int

    nodes = [onnx_node("Add", ["x" if i == 0 else f"t{i}", "one"],
                       ["y" if i == n - 1 else f"t{i + 1}"], f"add{i}") for i in range(n)]
    graph = (b"".join(pb_bytes(1, node) for node in nodes) + pb_bytes(2, "chain")
             + pb_bytes(5, onnx_tensor_proto("one", np.ones(8, np.float32)))
             + pb_bytes(11, onnx_value_info("x", 1, [1, 8]))
             + pb_bytes(12, onnx_value_info("y", 1, [1, 8])))
    return pb_int(1, 8) + pb_bytes(7, graph) + pb_bytes(8, pb_int(2, 17))


def run(threads, budget):
    """Rows, per-node and per-run costs at one thread count."""
    import gru_cy

    rows = []
    for name in ("text", "speech"):
        data = export(name)
        ours = gru_cy.InferenceSession(data)
        theirs = ort_session(data, threads)
        for mode in ("stream", "batch32"):
            if mode == "stream":
                fns = {"gru_cy": streaming_call(ours, name, SPECS[name]["chunk"]),
                       "onnxruntime": streaming_call(theirs, name, SPECS[name]["chunk"])}
            else:
                feeds = feeds_for(name, 32, 100, np.random.default_rng(2))
                fns = {"gru_cy": lambda f=feeds: ours.run(None, f),
                       "onnxruntime": lambda f=feeds: theirs.run(None, f)}
            times = time_peers(fns, budget, threads)
            rows.append(dict(model=name, mode=mode, threads=threads, gru_cy=times["gru_cy"],
                             onnxruntime=times["onnxruntime"],
                             ratio=times["onnxruntime"] / times["gru_cy"],
                             gru_cy_threads=gru_cy.get_num_threads()))
            print(f"[{threads}] {name:7s} {mode:8s} gru_cy {times['gru_cy'] * 1e6:10.1f} us   "
                  f"onnxruntime {times['onnxruntime'] * 1e6:10.1f} us   "
                  f"ratio {rows[-1]['ratio']:.2f}", flush=True)
    overhead = {}
    feeds = {"x": np.zeros((1, 8), np.float32)}
    for n in (10, 200):
        data = chain_model(n)
        ours, theirs = gru_cy.InferenceSession(data), ort_session(data, threads)
        overhead[n] = time_peers({"gru_cy": lambda s=ours: s.run(None, feeds),
                                  "onnxruntime": lambda s=theirs: s.run(None, feeds)},
                                 budget, threads)
    per_node = {k: (overhead[200][k] - overhead[10][k]) / 190 for k in overhead[10]}
    per_run = {k: overhead[10][k] - 10 * per_node[k] for k in overhead[10]}
    print(f"[{threads}] per node: gru_cy {per_node['gru_cy'] * 1e6:.2f} us, onnxruntime "
          f"{per_node['onnxruntime'] * 1e6:.2f} us; fixed per run: gru_cy "
          f"{per_run['gru_cy'] * 1e6:.2f} us, onnxruntime "
          f"{per_run['onnxruntime'] * 1e6:.2f} us")
    return rows, per_node, per_run, {str(k): v for k, v in overhead.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short timings")
    parser.add_argument("--threads", type=int, nargs="*", default=[1],
                        help="thread counts for both runtimes (default 1)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--out", default=None, help="prefix of the .json/.md (overrides --tag)")
    args = parser.parse_args(argv)
    budget = args.budget or (0.5 if args.quick else 3.0)
    missing = {"torch", "onnxruntime", "onnx"} - available_peers()
    if missing:
        print(f"not installed: {', '.join(sorted(missing))}; skipped (the models are torch "
              "exports, ONNX Runtime the peer)")
        return 0

    peak = core_peak()
    env = environment(peak)
    env["busy_before"] = busy_fraction()
    print(describe_run(env))
    rows, per_node, per_run, chain = [], {}, {}, {}
    for threads in args.threads:
        with Threads(threads):
            r, per_node[threads], per_run[threads], chain[threads] = run(threads, budget)
            rows += r
    env["busy_after"] = busy_fraction()
    # per_node/per_run/chain: by thread count (JSON keys are strings)
    result = dict(environment=env, threads=args.threads, budget_seconds=budget, rows=rows,
                  per_node={str(k): v for k, v in per_node.items()},
                  per_run={str(k): v for k, v in per_run.items()},
                  chain={str(k): v for k, v in chain.items()})
    base = args.out or os.path.join(RESULTS, f"session-{args.tag}")
    os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(markdown(result))
    print(f"saved {base}.json and .md")
    return 0


def markdown(result):
    env = result["environment"]
    lines = [f"InferenceSession vs ONNX Runtime {env.get('onnxruntime')}, threads "
             f"{result['threads']}, {env.get('cpu')}, {env.get('date')} (median time per "
             f"call; ratio = ONNX Runtime / gru_cy, > 1: gru_cy faster). "
             f"{describe_run(env)}", "",
             "| threads | model | mode | gru_cy | ONNX Runtime | ratio |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['threads']} | {r['model']} | {r['mode']} | {r['gru_cy'] * 1e6:.1f} us"
                     f" | {r['onnxruntime'] * 1e6:.1f} us | {r['ratio']:.2f} |")
    lines.append("")
    for threads in result["threads"]:
        pn, pr = result["per_node"][str(threads)], result["per_run"][str(threads)]
        lines.append(f"{threads} thread(s): per node of a run: gru_cy {pn['gru_cy'] * 1e6:.2f} "
                     f"us, ONNX Runtime {pn['onnxruntime'] * 1e6:.2f} us; fixed cost of a run: "
                     f"gru_cy {pr['gru_cy'] * 1e6:.2f} us, ONNX Runtime "
                     f"{pr['onnxruntime'] * 1e6:.2f} us.")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
