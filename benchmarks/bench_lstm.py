"""LSTM benchmark: gru_cy.LSTM against ONNX Runtime's LSTM, torch.nn.LSTM and torch.nn.LSTMCell.

    python benchmarks/bench_lstm.py [--quick] [--threads N ...] [--budget SECONDS] [--out PREFIX]

At the GRU benchmark's shapes (gru_cy.bench.GRID): forward (inference) against ONNX Runtime
running the model torch.onnx.export writes for the same torch.nn.LSTM, and against torch
(no_grad); training (forward + backward of loss = sum(out * dout)) against torch.nn.LSTM;
step() latency against ONNX Runtime session.run of a one-step model and torch.nn.LSTMCell.
Every peer gets the same weights and inputs, runs in this process pinned to the same number of
threads, and the peers take turns call by call (gru_cy.bench's timing), so a noisy machine slows
all of them alike. Ratios are peer time / gru_cy time (> 1: gru_cy is faster).

"floor" is the time of only the matrix products gru_cy's kernels make for one layer (input
projection, one recurrent product per step; backward: one per step and the weight gradients),
timed as NumPy matmuls into preallocated arrays, divided by gru_cy's time. It is printed only
where a matmul call's Python overhead is negligible (T * B >= 2048 and H >= 256).

"peak" is the share of one core's float32 multiply-add rate (gru_cy.kernels._blas.fma_peak,
measured before the run) that a call's matrix-product flops make per second: 2 T B 4H (I + H)
forward, three times that in training (backward: dh per step, dx, dW_ih, dW_hh). No
implementation can pass 100%. The second table sets each speed target of the LSTM beside the
peak share it asks of gru_cy: a target above 100% cannot be met on this machine, and one near
the share of the GEMMs alone (the floor) cannot be met with gate math and memory traffic around
them.

Results: benchmarks/results/lstm-<date>.json and .md (or --out PREFIX).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import sys
import time
import warnings

import numpy as np

import gru_cy
from gru_cy.bench import (GRID, QUICK_GRID, STEP_SHAPE, Threads, available_peers, busy_fraction,
                          environment, ort_session, time_peers)
from gru_cy.kernels._blas import fma_peak, packed_isa

HERE = os.path.dirname(os.path.abspath(__file__))


def lstm_inputs(T, B, I, H, seed=0):
    m = gru_cy.LSTM(I, H, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)
    return m, x, dout


def torch_lstm(m):
    import torch

    t = torch.nn.LSTM(m.input_size, m.hidden_size).eval()
    with torch.no_grad():
        for name, p in t.named_parameters():
            p.copy_(torch.from_numpy(m.params[name]))
    return t


def onnx_lstm_bytes(t, T, B, I):
    import torch

    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(t, (torch.zeros(T, B, I),), f, input_names=["x"],
                          output_names=["out", "h_n", "c_n"], dynamo=False,
                          dynamic_axes={"x": {0: "T", 1: "B"}})
    return f.getvalue()


def gemm_floor(T, B, I, H, train, repeats=5):
    """Median seconds of the one-layer LSTM's matrix products as NumPy matmuls."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    x = rng.standard_normal((T * B, I)).astype(f32)
    w_ih_t = rng.standard_normal((I, 4 * H)).astype(f32)
    w_hh_t = rng.standard_normal((H, 4 * H)).astype(f32)
    w_hh = np.ascontiguousarray(w_hh_t.T)
    gi = np.empty((T * B, 4 * H), f32)
    gh = np.empty((B, 4 * H), f32)
    h = rng.standard_normal((B, H)).astype(f32)
    dh = np.empty((B, H), f32)
    dgi = rng.standard_normal((T * B, 4 * H)).astype(f32)
    hs = rng.standard_normal((T * B, H)).astype(f32)
    dx = np.empty((T * B, I), f32)
    dw_ih = np.empty((4 * H, I), f32)
    dw_hh = np.empty((4 * H, H), f32)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(x, w_ih_t, out=gi)
        for _ in range(T):
            np.matmul(h, w_hh_t, out=gh)
        if train:
            for s in range(T):
                np.matmul(dgi[s * B:(s + 1) * B], w_hh, out=dh)
            np.matmul(dgi.T, x, out=dw_ih)
            np.matmul(dgi, w_ih_t.T, out=dx)
            np.matmul(dgi.T, hs, out=dw_hh)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# Speed targets: (mode, peer, ratio, rows it applies to).
TARGETS = (("forward", "onnxruntime", 1.2, lambda T, B: True),
           ("train", "torch", 10.0, lambda T, B: T == 1 and B == 1),
           ("train", "torch", 2.0, lambda T, B: T > 1 and B == 1),
           ("train", "torch", 1.5, lambda T, B: B > 1))


def flops(T, B, I, H, mode):
    """Flops of the one-layer LSTM's matrix products (2 per multiply-add)."""
    fwd = 2.0 * T * B * 4 * H * (I + H)
    return fwd if mode == "forward" else 3 * fwd


def run_case(T, B, I, H, threads, budget, notes):
    m, x, dout = lstm_inputs(T, B, I, H)
    rows = []
    peers_fwd = {"gru_cy": lambda: m(x)}
    peers_train = {}

    def ours_train():
        out, _, tape = m.forward_train(x)
        m.backward(tape, dout)

    peers_train["gru_cy"] = ours_train
    have = available_peers()
    if "torch" in have:
        import torch

        t = torch_lstm(m)
        tx = torch.from_numpy(x)
        tdout = torch.from_numpy(dout)

        def torch_fwd():
            with torch.no_grad():
                return t(tx)

        def torch_train():
            xr = tx.clone().requires_grad_(True)
            out, _ = t(xr)
            t.zero_grad(set_to_none=False)
            (out * tdout).sum().backward()

        peers_fwd["torch"] = torch_fwd
        peers_train["torch"] = torch_train
        if "onnxruntime" in have:
            try:
                sess = ort_session(onnx_lstm_bytes(t, T, B, I), threads)
                peers_fwd["onnxruntime"] = lambda: sess.run(None, {"x": x})
            except Exception as exc:  # noqa: BLE001
                notes.add(f"onnxruntime skipped ({type(exc).__name__}: {exc})")
    label = f"T={T} B={B} I={I} H={H}"
    big = T * B >= 2048 and H >= 256
    for mode, fns in (("forward", peers_fwd), ("train", peers_train)):
        med = time_peers(fns, budget, threads)
        floor = gemm_floor(T, B, I, H, mode == "train") if big else None
        for name, sec in med.items():
            rows.append(dict(case=label, T=T, B=B, I=I, H=H, mode=mode, threads=threads, peer=name,
                             seconds=sec, ratio=sec / med["gru_cy"],
                             gflops=flops(T, B, I, H, mode) / sec / 1e9,
                             floor_fraction=(floor / sec) if (floor and name == "gru_cy")
                             else None))
    return rows


def run_step(threads, budget, notes, B=STEP_SHAPE[0], I=STEP_SHAPE[1], H=STEP_SHAPE[2]):
    m = gru_cy.LSTM(I, H, seed=0)
    x_t = np.random.default_rng(0).standard_normal((B, I)).astype(np.float32)
    st = {"hx": (np.zeros((1, B, H), np.float32), np.zeros((1, B, H), np.float32))}

    def ours():
        _, st["hx"] = m.step(x_t, st["hx"])

    fns = {"gru_cy": ours}
    have = available_peers()
    if "torch" in have:
        import torch

        cell = torch.nn.LSTMCell(I, H)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(torch.from_numpy(m.params[name + "_l0"]))
        tx = torch.from_numpy(x_t)
        ts = {"hc": (torch.zeros(B, H), torch.zeros(B, H))}

        def torch_cell():
            with torch.no_grad():
                ts["hc"] = cell(tx, ts["hc"])

        fns["torch.LSTMCell"] = torch_cell
        if "onnxruntime" in have:
            path = os.path.join(HERE, "results", "lstm-step.onnx.tmp")
            m.to_onnx(path, with_h0=True)
            with open(path, "rb") as f:
                sess = ort_session(f.read(), threads)
            os.remove(path)
            oh = {"h": np.zeros((1, B, H), np.float32), "c": np.zeros((1, B, H), np.float32)}
            xin = x_t[None]

            def ort_step():
                _, oh["h"], oh["c"] = sess.run(None, {"input": xin, "h0": oh["h"],
                                                      "c0": oh["c"]})

            fns["onnxruntime"] = ort_step
    med = time_peers(fns, budget, threads)
    return [dict(case=f"step() B={B} I={I} H={H}", B=B, I=I, H=H, mode="step", threads=threads,
                 peer=name, seconds=sec, ratio=sec / med["gru_cy"], floor_fraction=None)
            for name, sec in med.items()]


def _fmt(s):
    return f"{s * 1e6:.1f}us" if s < 1e-3 else f"{s * 1e3:.2f}ms"


def _share(r, peak):
    """A row's share of threads x the one-core peak, or None."""
    if not peak or "gflops" not in r:
        return None
    return r["gflops"] / (peak * r["threads"])


def format_table(rows, peak=None):
    peers = [p for p in ("torch", "onnxruntime", "torch.LSTMCell")
             if any(r["peer"] == p for r in rows)]
    head = (f"{'case':28} {'mode':8} {'threads':>7} {'gru_cy':>10} {'floor':>6} {'peak':>5} "
            + " ".join(f"{p + ' x':>16}" for p in peers))
    lines = [head, "-" * len(head)]
    keys = []
    for r in rows:
        k = (r["case"], r["mode"], r["threads"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        sel = {r["peer"]: r for r in rows if (r["case"], r["mode"], r["threads"]) == k}
        ours = sel["gru_cy"]
        fl = f"{ours['floor_fraction'] * 100:.0f}%" if ours["floor_fraction"] else "-"
        sh = _share(ours, peak)
        pk = f"{sh * 100:.0f}%" if sh is not None else "-"
        cells = " ".join(f"{sel[p]['ratio']:>15.2f}x" if p in sel else f"{'-':>16}"
                         for p in peers)
        lines.append(f"{k[0]:28} {k[1]:8} {k[2]:>7} {_fmt(ours['seconds']):>10} {fl:>6} {pk:>5} "
                     f"{cells}")
    return "\n".join(lines)


def format_targets(rows, peak):
    """Each speed target beside the share of the peak it asks of gru_cy."""
    head = (f"{'case':28} {'mode':8} {'threads':>7} {'peer':>12} {'peer':>6} {'gru_cy':>7} "
            f"{'target':>7} {'needs':>6} {'met':>4}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["peer"] == "gru_cy" or "T" not in r:
            continue
        for mode, peer, ratio, applies in TARGETS:
            if r["mode"] != mode or r["peer"] != peer or not applies(r["T"], r["B"]):
                continue
            ours = next(o for o in rows if o["peer"] == "gru_cy" and o["case"] == r["case"]
                        and o["mode"] == mode and o["threads"] == r["threads"])
            p_sh, o_sh = _share(r, peak), _share(ours, peak)
            lines.append(f"{r['case']:28} {mode:8} {r['threads']:>7} {peer:>12} "
                         f"{p_sh * 100:>5.0f}% {o_sh * 100:>6.0f}% {ratio:>6.1f}x "
                         f"{p_sh * ratio * 100:>5.0f}% {'yes' if r['ratio'] >= ratio else 'no':>4}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the quick grid")
    ap.add_argument("--threads", type=int, nargs="*", default=[1])
    ap.add_argument("--budget", type=float, default=1.5, help="seconds per case and mode")
    ap.add_argument("--out", default=None, help="prefix of the .json/.md results")
    args = ap.parse_args(argv)
    grid = QUICK_GRID if args.quick else GRID
    notes, rows = set(), []
    busy = busy_fraction()
    peak = fma_peak()
    for threads in args.threads:
        with Threads(threads):
            for T, B, I, H in grid:
                print(f"  [{threads} thread(s)] T={T} B={B} I={I} H={H} ...", file=sys.stderr)
                rows += run_case(T, B, I, H, threads, args.budget, notes)
            rows += run_step(threads, args.budget, notes)
    table = format_table(rows, peak)
    env = environment()
    header = (f"gru_cy {env['gru_cy']} LSTM | {env['cpu']} ({env['cores']} cores) | "
              f"{env['date']} | torch {env['torch']}, onnxruntime {env['onnxruntime']} | "
              f"machine busy before the run: "
              f"{'?' if busy is None else f'{busy * 100:.0f}%'}")
    text = (header + f"\none core's float32 multiply-add peak: {peak:.1f} GFLOP/s "
            f"({packed_isa()})\n(peer x = peer time / gru_cy time: > 1 means gru_cy is faster; "
            "peak = share of that peak)\n\n" + table
            + "\n\nspeed targets (peer, gru_cy: share of the peak they run at; needs: the share "
            "gru_cy must run at to meet the target)\n\n" + format_targets(rows, peak))
    if notes:
        text += "\n\nnotes:\n" + "\n".join(f"- {n}" for n in sorted(notes))
    print(text)
    prefix = args.out or os.path.join(HERE, "results",
                                      f"lstm-{datetime.date.today().isoformat()}")
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump(dict(environment=env, busy_before=busy, fma_peak_gflops=peak, rows=rows,
                       notes=sorted(notes)), f,
                  indent=1)
    with open(prefix + ".md", "w") as f:
        f.write("```\n" + text + "\n```\n")
    print(f"\nresults written to {prefix}.json and .md")


if __name__ == "__main__":
    main()
