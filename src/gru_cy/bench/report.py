"""What the benchmarks report: the environment (versions, CPU, BLAS) and the
GRU benchmark's tables, as plain text and as Markdown (for README.md).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys

import numpy as np

from gru_cy.bench.cases import PEERS

__all__ = ["environment", "scipy_blas", "cpu_name", "fmt_seconds", "format_table",
           "format_markdown", "print_report", "write_results"]


def environment():
    import scipy

    import gru_cy

    env = dict(date=datetime.date.today().isoformat(), python=platform.python_version(),
               machine=platform.machine(), numpy=np.__version__, scipy=scipy.__version__,
               gru_cy=gru_cy.__version__, cpu=cpu_name(), cores=os.cpu_count())
    env["blas"] = scipy_blas()
    for mod in ("torch", "onnxruntime", "onnx", "threadpoolctl"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            env[mod] = None
    return env


def scipy_blas():
    """The BLAS behind scipy.linalg.cython_blas, as threadpoolctl reports it."""
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    from gru_cy._threads import scipy_blas_entry

    i = scipy_blas_entry(threadpool_info())
    if i is None:
        return "unknown"
    return f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_table(rows, threads):
    """A plain-text table of the rows for one thread count."""
    peers = [p for p in PEERS if any(r["peer"] == p for r in rows)]
    others = [p for p in peers if p != "gru_cy"]
    head = (f"{'case':<40} {'mode':<7} {'gru_cy':>10} {'GF/s':>6} {'floor':>6} "
            + " ".join(f"{p + ' x':>13}" for p in others))
    lines = [f"threads = {threads}   (peer x = peer time / gru_cy time: > 1 means gru_cy "
             f"is faster; floor = GEMM-only time / gru_cy time)", head, "-" * len(head)]
    keys = []
    for r in rows:
        if r["threads"] == threads and (r["case"], r["mode"]) not in keys:
            keys.append((r["case"], r["mode"]))
    for case, mode in keys:
        sel = {r["peer"]: r for r in rows if r["threads"] == threads and r["case"] == case
               and r["mode"] == mode}
        ours = sel["gru_cy"]
        if mode == "step":
            t = f"{ours['calls_per_second'] / 1e3:8.0f}k/s"
            gf = fl = ""
        else:
            t = fmt_seconds(ours["seconds"])
            gf = f"{ours['gflops']:.1f}"
            fl = f"{100 * ours['floor_fraction']:.0f}%" if ours["floor_fraction"] else ""
        cells = []
        for p in others:
            cells.append(f"{sel[p]['ratio']:12.2f}x" if p in sel else f"{'-':>13}")
        lines.append(f"{case:<40} {mode:<7} {t:>10} {gf:>6} {fl:>6} " + " ".join(cells))
    return "\n".join(lines)


def format_markdown(doc):
    """The result as Markdown tables (one per thread count), for README.md."""
    rows = doc["results"]
    names = {"numpy": "NumPy", "torch": "PyTorch", "onnxruntime": "ONNX Runtime"}
    out = []
    for threads in doc["threads"]:
        sel = [r for r in rows if r["threads"] == threads]
        peers = [p for p in PEERS[1:] if any(r["peer"] == p for r in sel)]
        out.append(f"**{threads} thread{'s' if threads > 1 else ''}** (peer time / gru_cy time:"
                   f" above 1 means gru_cy is faster)\n")
        out.append("| case | mode | gru_cy | GF/s | % of GEMM floor | "
                   + " | ".join(f"{names[p]}" for p in peers) + " |")
        out.append("|---|---|---:|---:|---:|" + "---:|" * len(peers))
        keys = []
        for r in sel:
            if (r["case"], r["mode"]) not in keys:
                keys.append((r["case"], r["mode"]))
        for case, mode in keys:
            cell = {r["peer"]: r for r in sel if r["case"] == case and r["mode"] == mode}
            ours = cell["gru_cy"]
            if mode == "step":
                t, gf, fl = f"{ours['calls_per_second'] / 1e3:.0f}k calls/s", "", ""
            else:
                t = fmt_seconds(ours["seconds"]).strip()
                gf = f"{ours['gflops']:.1f}"
                fl = f"{100 * ours['floor_fraction']:.0f}%" if ours["floor_fraction"] else ""
            ratios = [f"{cell[p]['ratio']:.2f}x" if p in cell else "-" for p in peers]
            out.append(f"| {case} | {mode} | {t} | {gf} | {fl} | " + " | ".join(ratios) + " |")
        out.append("")
    if doc["notes"]:
        out.append("Notes: " + "; ".join(doc["notes"]) + ".")
    return "\n".join(out) + "\n"


def fmt_seconds(s):
    if s < 1e-3:
        return f"{s * 1e6:8.1f}us"
    if s < 1:
        return f"{s * 1e3:8.2f}ms"
    return f"{s:8.3f}s "


def print_report(doc, out=sys.stdout):
    env = doc["environment"]
    print(f"\ngru_cy {env['gru_cy']} | {env['cpu']} ({env['cores']} cores) | {env['date']}",
          file=out)
    print(f"numpy {env['numpy']}, scipy {env['scipy']} ({env['blas']}), torch {env['torch']}, "
          f"onnxruntime {env['onnxruntime']}", file=out)
    for threads in doc["threads"]:
        print("\n" + format_table(doc["results"], threads), file=out)
    if doc["notes"]:
        print("\nnotes:", file=out)
        for n in doc["notes"]:
            print(f"  - {n}", file=out)


def write_results(base, doc, title, setup, table, legend):
    """A benchmark script's results: base.json (the document, JSON) and base.md
    (the title, the setup, how busy the machine was before the run, the
    legend and the plain-text table); returns the two paths."""
    os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1, default=str)
    busy = doc.get("busy_before")
    with open(base + ".md", "w") as f:
        f.write(f"# {title}\n\n{setup}. Machine busy "
                f"{'?' if busy is None else f'{100 * busy:.0f}%'} before the run (shared with "
                "other jobs): absolute times are noisy, ratios are measured turn by turn.\n\n"
                f"{legend}\n\n```\n{table}\n```\n")
    return base + ".json", base + ".md"
