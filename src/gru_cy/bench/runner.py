"""The GRU benchmark: every case against every installed peer, at each thread
count, into one JSON-ready document; ``python -m gru_cy bench`` (run_cli).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

import numpy as np

from gru_cy._reference import numpy_layer_forward
from gru_cy.bench.cases import GRID, PEERS, QUICK_GRID, STEP_SHAPE, Case, extra_cases, grid_cases
from gru_cy.bench.peers import (
    GruCyPeer, NumpyPeer, OrtPeer, TorchPeer, Unsupported, available_peers, onnx_gru_model,
    ort_session, torch_onnx_model,
)
from gru_cy.bench.report import core_peak, environment, peak_share, print_report
from gru_cy.bench.timing import (
    Threads, blas_threads_controllable, busy_fraction, time_peers, wait_until_quiet,
)

__all__ = ["make_inputs", "run_case", "run_step", "run", "run_cli"]


def make_inputs(case):
    """Weights (PyTorch names, NumPy arrays), x, h0, dout, lengths."""
    import gru_cy

    dt = np.dtype(case.dtype)
    ref = gru_cy.GRU(case.I, case.H, num_layers=case.num_layers,
                     bidirectional=case.bidirectional, reset_after=case.reset_after, dtype=dt,
                     seed=0)
    params = ref.state_dict()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.T, case.B, case.I)).astype(dt)
    h0 = (0.1 * rng.standard_normal((case.num_layers * case.D, case.B, case.H))).astype(dt)
    dout = rng.standard_normal((case.T, case.B, case.D * case.H)).astype(dt)
    return params, x, h0, dout, case.lengths()


def run_case(case, threads, budget, peers, notes, peak=None):
    """Rows (dicts) for one case at one thread count; peak: core_peak()'s
    GF/s, for each row's share of it (peak_share)."""
    import gru_cy

    params, x, h0, dout, lengths = make_inputs(case)
    objs = {}
    for name in peers:
        try:
            if name == "gru_cy":
                objs[name] = GruCyPeer(case, params, x, h0, dout, lengths)
            elif name == "numpy":
                objs[name] = NumpyPeer(case, params, x, h0, dout, lengths)
            elif name == "torch":
                objs[name] = TorchPeer(case, params, x, h0, dout, lengths)
            elif name == "onnxruntime":
                objs[name] = OrtPeer(case, params, x, h0, dout, lengths, threads)
                if objs[name].note:
                    notes.add(f"onnxruntime, {case.label}: {objs[name].note}")
        except Unsupported as exc:
            notes.add(f"{name}, {case.label}: {exc}")
        except Exception as exc:  # noqa: BLE001  (a peer that cannot run this case is skipped)
            notes.add(f"{name}, {case.label}: skipped ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:120]})")
    rows = []
    for mode in case.modes:
        fns = {}
        for name, obj in objs.items():
            if mode == "forward":
                fns[name] = obj.forward
            elif obj.supports_train():
                fns[name] = obj.train
        if "gru_cy" not in fns:
            continue
        medians = time_peers(fns, budget, threads)
        rows.append(dict(mode=mode, medians=medians))
    out = []
    for row in rows:
        mode, medians = row["mode"], row["medians"]
        ours = medians["gru_cy"]
        for name, sec in medians.items():
            gflops = case.flops(mode) / sec / 1e9
            out.append(dict(case=case.label, config=asdict(case), threads=threads, mode=mode,
                            peer=name, seconds=sec, gflops=gflops, ratio=sec / ours,
                            peak_share=peak_share(gflops, peak, threads, case.dtype),
                            gru_cy_threads=gru_cy.get_num_threads()))
    return out


# ---------------------------------------------------------------------------
# step() latency


def run_step(threads, budget, peers, notes, B=STEP_SHAPE[0], I=STEP_SHAPE[1], H=STEP_SHAPE[2]):
    """Calls per second of one GRU step: gru_cy.step, ORT session.run of a
    one-step model, torch GRUCell, a NumPy cell."""
    import gru_cy

    gru = gru_cy.GRU(I, H, seed=0)
    params = gru.state_dict()
    rng = np.random.default_rng(0)
    x_t = rng.standard_normal((B, I)).astype(np.float32)
    state = {"h": np.zeros((1, B, H), np.float32)}

    def ours():
        y, state["h"] = gru.step(x_t, state["h"])

    fns = {"gru_cy": ours}
    if "numpy" in peers:
        p = params
        nh = {"h": np.zeros((B, H), np.float32)}

        def numpy_cell():
            out, nh["h"], _ = numpy_layer_forward(x_t[None], p["weight_ih_l0"], p["weight_hh_l0"],
                                                  p["bias_ih_l0"], p["bias_hh_l0"], nh["h"], True,
                                                  False, None)
        fns["numpy"] = numpy_cell
    if "torch" in peers:
        try:
            import torch

            cell = torch.nn.GRUCell(I, H)
            cell.load_state_dict({k[:-3]: torch.from_numpy(v) for k, v in params.items()})
            tx = torch.from_numpy(x_t)
            th = {"h": torch.zeros(B, H)}

            def torch_cell():
                with torch.no_grad():
                    th["h"] = cell(tx, th["h"])
            fns["torch"] = torch_cell
        except Exception as exc:  # noqa: BLE001
            notes.add(f"torch, step: skipped ({type(exc).__name__}: {exc})")
    if "onnxruntime" in peers:
        try:
            case = Case("step", 1, B, I, H)
            if "torch" in available_peers():
                model = torch_onnx_model(case, params, 1, B)
            else:
                model = onnx_gru_model(case, params, 1, B, False)
            sess = ort_session(model, threads)
            oh = {"h": np.zeros((1, B, H), np.float32)}
            xin = x_t[None]

            def ort_step():
                out, oh["h"] = sess.run(None, {"x": xin, "h0": oh["h"]})
            fns["onnxruntime"] = ort_step
        except Exception as exc:  # noqa: BLE001
            notes.add(f"onnxruntime, step: skipped ({type(exc).__name__}: {exc})")
    medians = time_peers(fns, budget, threads)
    label = f"step() B={B} I={I} H={H}"
    ours = medians["gru_cy"]
    return [dict(case=label, config=dict(B=B, I=I, H=H), threads=threads, mode="step", peer=name,
                 seconds=sec, calls_per_second=1.0 / sec, ratio=sec / ours, gflops=None,
                 peak_share=None, gru_cy_threads=gru_cy.get_num_threads())
            for name, sec in medians.items()]


def run(grid, extras, step, threads_list, budget, peers=PEERS, log=sys.stdout, wait_quiet=0.0):
    """Run the benchmark; returns the result document (JSON-ready).

    wait_quiet > 0: before each case, wait up to that many seconds for the
    machine to be idle; every row records how busy the machine was then.
    One core's multiply-add peak (core_peak) is measured once, first, and
    recorded in the environment (fma_peak_gflops); every timed row carries
    its share of peak x threads (peak_share)."""
    avail = available_peers()
    notes = set()
    active = []
    for p in peers:
        if p == "torch" and "torch" not in avail:
            notes.add("torch: not installed, skipped")
        elif p == "onnxruntime" and not {"onnxruntime", "onnx"} <= avail:
            notes.add("onnxruntime: onnxruntime and onnx are needed, skipped")
        else:
            active.append(p)
    if not blas_threads_controllable():
        notes.add("threadpoolctl is not installed: only SciPy's OpenBLAS (gru_cy's) is pinned, "
                  "NumPy's BLAS is not")
    cases = grid_cases(grid) + (extra_cases() if extras else [])
    rows = []
    busy_before = busy_fraction()
    peak = core_peak()
    for threads in threads_list:
        with Threads(threads):
            for case in cases:
                print(f"  [{threads} thread{'s' if threads > 1 else ''}] {case.label} ...",
                      file=log, flush=True)
                busy = wait_until_quiet(wait_quiet, log) if wait_quiet else None
                new = run_case(case, threads, budget, active, notes, peak)
                for r in new:
                    r["machine_busy"] = busy
                rows += new
            if step:
                busy = wait_until_quiet(wait_quiet, log) if wait_quiet else None
                new = run_step(threads, budget, active, notes)
                for r in new:
                    r["machine_busy"] = busy
                rows += new
    env = environment(peak)
    env["machine_busy_before"] = busy_before
    env["machine_busy_after"] = busy_fraction()
    return dict(environment=env, threads=threads_list, budget_seconds=budget,
                notes=sorted(notes), results=rows)


def run_cli(args, rest):
    """Entry point of ``python -m gru_cy bench``; returns an exit code."""
    parser = argparse.ArgumentParser(prog="python -m gru_cy bench")
    parser.add_argument("--no-extras", action="store_true",
                        help="only the shape grid (no float64, bidirectional, ... rows)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timing per case and mode (default 2, quick 0.3)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS)
    extra = parser.parse_args(rest)
    quick = bool(getattr(args, "quick", False))
    threads = args.threads or ([1] if quick else [1, 2])
    budget = extra.budget if extra.budget is not None else (0.3 if quick else 2.0)
    if "gru_cy" not in extra.peers:
        extra.peers.insert(0, "gru_cy")
    print(f"benchmarking ({'quick' if quick else 'full'}; threads {threads}) ...", flush=True)
    doc = run(QUICK_GRID if quick else GRID, extras=not quick and not extra.no_extras,
              step=True, threads_list=threads, budget=budget, peers=extra.peers)
    print_report(doc)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nresults written to {args.out}")
    return 0
