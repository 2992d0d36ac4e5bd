"""The published tables in one command: the GRU, LSTM and RNN grids against their peers, at 1
and 2 threads, under OpenBLAS's default kernels and under OPENBLAS_CORETYPE=Haswell.

    python benchmarks/run_all.py [--quick] [--name STEM] [--threads 1 2]
                                 [--coretypes default Haswell] [--models gru lstm rnn]
                                 [--budget SECONDS] [--wait-quiet SECONDS]

For each OpenBLAS setting (``default``: the variable removed from the environment, so that
OpenBLAS picks the kernels of this CPU; any other value: OPENBLAS_CORETYPE set to it) and each
model, one child process runs the model's benchmark script at every thread count:

- gru: run_bench.py (gru_cy.GRU against NumPy, torch.nn.GRU and ONNX Runtime; the extra rows
  unless --quick; the step() row at B=1, I=H=64 against ONNX Runtime session.run of a
  one-step model and torch.nn.GRUCell);
- lstm: bench_lstm.py (against torch.nn.LSTM and ONNX Runtime; step() against ONNX Runtime
  session.run and torch.nn.LSTMCell);
- rnn: bench_rnn.py (against torch.nn.RNN and ONNX Runtime; step() against torch.nn.RNNCell).

OPENBLAS_CORETYPE is read once, when OpenBLAS loads, hence a process per setting. It changes
the kernels of NumPy's and SciPy's OpenBLAS: the NumPy peer's, and gru_cy's products only
under its BLAS backend (gru_cy.set_backend("blas")); each run's environment records the
kernels OpenBLAS reports, gru_cy's instruction set, backend and threads, and one core's
float32 multiply-add peak. Peers that are not installed are skipped with a note, as the
scripts do.

Writes, under benchmarks/results/: <stem>-<model>-<setting>.json and .md (each script's own
results) and <stem>.md: per model a summary table (per case, mode and thread count, for each
setting: gru_cy's share of the peak and each peer's time / gru_cy's time, > 1: gru_cy is
faster), then every run's full tables. The stem defaults to all-<date>. --quick: the quick
grids, 0.3 s per measurement, to check the pipeline (a few minutes on two cores); the numbers
of a quick run are not for publishing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

MODELS = {
    "gru": ("run_bench.py", "GRU (gru_cy.GRU; step(): torch.nn.GRUCell)"),
    "lstm": ("bench_lstm.py", "LSTM (gru_cy.LSTM; step(): torch.nn.LSTMCell)"),
    "rnn": ("bench_rnn.py", "Elman RNN (gru_cy.RNN, tanh; step(): torch.nn.RNNCell)"),
}
PEER_NAMES = {"numpy": "NumPy", "torch": "PyTorch", "onnxruntime": "ONNX Runtime"}


def child_env(setting):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if setting != "default":
        env["OPENBLAS_CORETYPE"] = setting
    return env


def command(model, base, threads, quick, budget, wait_quiet):
    script = os.path.join(HERE, MODELS[model][0])
    cmd = [sys.executable, script, "--threads", *map(str, threads)]
    if model == "gru":
        cmd += ["--name", os.path.basename(base)]
        if wait_quiet:
            cmd += ["--wait-quiet", str(wait_quiet)]
    else:
        cmd += ["--out", base]
    if quick:
        cmd.append("--quick")
    if budget is not None:
        cmd += ["--budget", str(budget)]
    return cmd


def git_describe():
    try:
        head = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
        src = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../src"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty or src else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _share(r):
    s = r.get("peak_share")
    return "" if s is None else f"{100 * s:.0f}%"


def summary_table(docs, settings):
    """Per case, mode and thread count: each setting's peak share and peer ratios."""
    peers = []
    for s in settings:
        for r in docs[s]["results"]:
            if r["peer"] != "gru_cy" and r["peer"] not in peers:
                peers.append(r["peer"])
    peers.sort(key=lambda p: list(PEER_NAMES).index(p) if p in PEER_NAMES else 99)
    keys = []
    for s in settings:
        for r in docs[s]["results"]:
            k = (r["threads"], r["case"], r["mode"])
            if k not in keys:
                keys.append(k)
    keys.sort(key=lambda k: k[0])
    head = ["threads", "case", "mode"]
    for s in settings:
        head += [f"% of peak ({s})"] + [f"{PEER_NAMES.get(p, p)} ({s})" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 3)]
    for threads, case, mode in keys:
        cells = [str(threads), case, mode]
        for s in settings:
            sel = {r["peer"]: r for r in docs[s]["results"]
                   if (r["threads"], r["case"], r["mode"]) == (threads, case, mode)}
            ours = sel.get("gru_cy")
            if ours is None:
                cells += [""] * (1 + len(peers))
                continue
            cells.append(_share(ours) if mode != "step"
                         else f"{ours['calls_per_second'] / 1e3:.0f}k calls/s")
            cells += [f"{sel[p]['ratio']:.2f}x" if p in sel else "-" for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(env):
    from gru_cy.bench import describe_run

    busy = env.get("machine_busy_before")
    return (f"{describe_run(env)}; machine busy "
            f"{'?' if busy is None else f'{100 * busy:.0f}%'} before the run")


def write_summary(path, docs, args, elapsed):
    from gru_cy.bench import format_markdown

    first = next(iter(next(iter(docs.values())).values()))["environment"]
    out = [f"# gru_cy against its peers: GRU, LSTM, RNN{' (quick run)' if args.quick else ''}",
           "",
           f"gru_cy {first.get('gru_cy')} (tree {git_describe()}); {first.get('cpu')}, "
           f"{first.get('cores')} cores; python {first.get('python')}, numpy "
           f"{first.get('numpy')}, scipy {first.get('scipy')}, torch {first.get('torch')}, "
           f"onnxruntime {first.get('onnxruntime')}; {first.get('date')}; "
           f"threads {args.threads}; {elapsed / 60:.0f} minutes.",
           "",
           "Ratios: peer time / gru_cy time (> 1: gru_cy is faster). % of peak: gru_cy's GF/s "
           "(matrix-product flops only) / (one core's float32 multiply-add peak x threads); "
           "no implementation reaches 100%. step() rows: gru_cy's calls per second instead. "
           "OpenBLAS settings: " + ", ".join(
               f"{s} ({'OPENBLAS_CORETYPE unset' if s == 'default' else f'OPENBLAS_CORETYPE={s}'})"
               for s in args.coretypes) + ".",
           ""]
    if args.quick:
        out += ["A quick run (small grids, short timings): it checks the pipeline; its numbers "
                "are not for publishing.", ""]
    for model in args.models:
        if model not in docs:
            continue
        runs = docs[model]
        out += [f"## {MODELS[model][1]}", ""]
        for s in args.coretypes:
            if s in runs:
                out.append(f"- {s}: {describe(runs[s]['environment'])}")
        out += ["", summary_table(runs, [s for s in args.coretypes if s in runs]), ""]
        notes = sorted({n for d in runs.values() for n in d.get("notes", [])})
        if notes:
            out += ["Notes: " + "; ".join(notes) + ".", ""]
    out += ["## Every run's tables", ""]
    for model in args.models:
        for s in args.coretypes:
            if s in docs.get(model, {}):
                out += [f"### {MODELS[model][1]}, {s}", "", format_markdown(docs[model][s])]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="the quick grids and 0.3 s per measurement (checks the pipeline)")
    ap.add_argument("--name", default=None, help="file name stem under results/ (all-<date>)")
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--coretypes", nargs="*", default=["default", "Haswell"],
                    help="OpenBLAS settings: 'default' (OPENBLAS_CORETYPE unset) or a "
                         "value of OPENBLAS_CORETYPE")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per measurement, passed to every script (default: theirs)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="GRU grid: before each case wait up to this long for an idle machine")
    args = ap.parse_args(argv)
    stem = args.name or f"all-{datetime.date.today().isoformat()}"
    os.makedirs(RESULTS, exist_ok=True)
    start = time.time()
    docs, failed = {}, []
    for setting in args.coretypes:
        for model in args.models:
            base = os.path.join(RESULTS, f"{stem}-{model}-{setting.lower()}")
            cmd = command(model, base, args.threads, args.quick, args.budget, args.wait_quiet)
            print(f"== {model}, OpenBLAS {setting}: {' '.join(os.path.basename(c) for c in cmd)}",
                  flush=True)
            t0 = time.time()
            rc = subprocess.run(cmd, env=child_env(setting), cwd=HERE).returncode
            print(f"== {model}, {setting}: exit {rc}, {time.time() - t0:.0f} s", flush=True)
            if rc != 0 or not os.path.exists(base + ".json"):
                failed.append(f"{model} ({setting})")
                continue
            with open(base + ".json") as f:
                docs.setdefault(model, {})[setting] = json.load(f)
            want = None if setting == "default" else setting
            got = docs[model][setting]["environment"].get("openblas_coretype")
            if got != want:
                failed.append(f"{model} ({setting}): the child saw OPENBLAS_CORETYPE={got}")
    if docs:
        path = os.path.join(RESULTS, stem + ".md")
        write_summary(path, docs, args, time.time() - start)
        print(f"\nwrote {path}")
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
