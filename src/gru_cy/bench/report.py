"""What the benchmarks report: the environment (versions, CPU, BLAS, gru_cy's
instruction set, backend and threads, OpenBLAS's kernel choice), the yardstick
of every GF/s figure (one core's multiply-add peak, ``core_peak``) and the
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

__all__ = ["environment", "scipy_blas", "cpu_name", "core_peak", "peak_share", "describe_run",
           "fmt_seconds", "fmt_share", "format_table", "format_markdown", "print_report",
           "write_results"]


def core_peak():
    """One core's float32 multiply-add rate in GF/s (2 flops per multiply-add)
    with the instruction set gru_cy's kernels run with
    (``gru_cy.kernels._core.fma_peak``): no product runs faster on one core.
    Measure it once per run, before the timings, and record it."""
    from gru_cy.kernels import _core

    return float(_core.fma_peak())


def peak_share(gflops, peak, threads, dtype="float32"):
    """The share of the machine's peak that gflops is: gflops / (peak *
    threads), peak being core_peak() (float32; a float64 multiply-add
    vector holds half as many lanes, so float64 rows are measured against
    half of it). None when either is unknown."""
    if not gflops or not peak or not threads:
        return None
    scale = 0.5 if str(dtype) == "float64" else 1.0
    return gflops / (peak * scale * threads)


def environment(peak=None):
    """Versions, CPU and BLAS, and how gru_cy runs in this process: its
    instruction set (and the CPU's best), backend and default thread count;
    OPENBLAS_CORETYPE (None when unset: OpenBLAS picks its kernels for the
    CPU; the BLAS entry names the kernels it runs); peak (core_peak()'s
    GF/s) when given."""
    import scipy

    import gru_cy
    from gru_cy.kernels import _core

    env = dict(date=datetime.date.today().isoformat(), python=platform.python_version(),
               machine=platform.machine(), numpy=np.__version__, scipy=scipy.__version__,
               gru_cy=gru_cy.__version__, cpu=cpu_name(), cores=os.cpu_count())
    env["blas"] = scipy_blas()
    env["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE") or None
    env["gru_cy_isa"] = _core.isa()
    env["gru_cy_cpu_isa"] = _core.cpu_isa()
    env["gru_cy_backend"] = gru_cy.get_backend()
    env["gru_cy_threads"] = gru_cy.get_num_threads()
    if peak is not None:
        env["fma_peak_gflops"] = peak
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


def _keys(rows):
    keys = []
    for r in rows:
        if (r["case"], r["mode"]) not in keys:
            keys.append((r["case"], r["mode"]))
    return keys


def fmt_share(share):
    """A peak share as a percentage, or "" when unknown."""
    return "" if share is None else f"{100 * share:.0f}%"


def format_table(rows, threads):
    """A plain-text table of the rows for one thread count."""
    sel_rows = [r for r in rows if r["threads"] == threads]
    peers = [p for p in PEERS if any(r["peer"] == p for r in sel_rows)]
    others = [p for p in peers if p != "gru_cy"]
    head = (f"{'case':<40} {'mode':<7} {'gru_cy':>10} {'GF/s':>6} {'peak':>5} "
            + " ".join(f"{p + ' x':>13}" for p in others))
    lines = [f"threads = {threads}   (peer x = peer time / gru_cy time: > 1 means gru_cy "
             f"is faster; peak = gru_cy's GF/s / (one core's FMA peak x threads))", head,
             "-" * len(head)]
    for case, mode in _keys(sel_rows):
        sel = {r["peer"]: r for r in sel_rows if r["case"] == case and r["mode"] == mode}
        ours = sel["gru_cy"]
        if mode == "step":
            t = f"{ours['calls_per_second'] / 1e3:8.0f}k/s"
            gf = pk = ""
        else:
            t = fmt_seconds(ours["seconds"])
            gf = f"{ours['gflops']:.1f}"
            pk = fmt_share(ours.get("peak_share"))
        cells = []
        for p in others:
            cells.append(f"{sel[p]['ratio']:12.2f}x" if p in sel else f"{'-':>13}")
        lines.append(f"{case:<40} {mode:<7} {t:>10} {gf:>6} {pk:>5} " + " ".join(cells))
    return "\n".join(lines)


NAMES = {"numpy": "NumPy", "torch": "PyTorch", "onnxruntime": "ONNX Runtime"}


def format_markdown(doc):
    """The result as Markdown tables (one per thread count), for README.md."""
    rows = doc["results"]
    out = []
    peak = doc["environment"].get("fma_peak_gflops")
    for threads in doc["threads"]:
        sel = [r for r in rows if r["threads"] == threads]
        peers = [p for p in PEERS[1:] if any(r["peer"] == p for r in sel)]
        out.append(f"**{threads} thread{'s' if threads > 1 else ''}** (peer time / gru_cy time:"
                   f" above 1 means gru_cy is faster; % of peak: gru_cy's GF/s / "
                   f"({'%.1f' % peak if peak else '?'} GF/s x {threads}))\n")
        out.append("| case | mode | gru_cy | GF/s | % of peak | "
                   + " | ".join(f"{NAMES.get(p, p)}" for p in peers) + " |")
        out.append("|---|---|---:|---:|---:|" + "---:|" * len(peers))
        for case, mode in _keys(sel):
            cell = {r["peer"]: r for r in sel if r["case"] == case and r["mode"] == mode}
            ours = cell["gru_cy"]
            if mode == "step":
                t, gf, pk = f"{ours['calls_per_second'] / 1e3:.0f}k calls/s", "", ""
            else:
                t = fmt_seconds(ours["seconds"]).strip()
                gf = f"{ours['gflops']:.1f}"
                pk = fmt_share(ours.get("peak_share"))
            ratios = [f"{cell[p]['ratio']:.2f}x" if p in cell else "-" for p in peers]
            out.append(f"| {case} | {mode} | {t} | {gf} | {pk} | " + " | ".join(ratios) + " |")
        out.append("")
    if doc["notes"]:
        out.append("Notes: " + "; ".join(doc["notes"]) + ".")
    return "\n".join(out) + "\n"


def describe_run(env):
    """One line: how gru_cy ran (instruction set, backend, peak) and OpenBLAS's kernels."""
    peak = env.get("fma_peak_gflops")
    core = env.get("openblas_coretype")
    return (f"gru_cy: {env.get('gru_cy_isa')} (CPU best {env.get('gru_cy_cpu_isa')}), backend "
            f"{env.get('gru_cy_backend')}; one core's float32 FMA peak "
            f"{'?' if peak is None else f'{peak:.1f}'} GF/s; OPENBLAS_CORETYPE "
            f"{core if core else 'unset'} ({env.get('blas')})")


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
    print(f"numpy {env['numpy']}, scipy {env['scipy']}, torch {env['torch']}, "
          f"onnxruntime {env['onnxruntime']}", file=out)
    print(describe_run(env), file=out)
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
