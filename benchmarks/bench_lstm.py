"""LSTM benchmark: gru_cy.LSTM against ONNX Runtime's LSTM, torch.nn.LSTM and torch.nn.LSTMCell.

    python benchmarks/bench_lstm.py [--quick] [--threads N ...] [--budget SECONDS] [--out PREFIX]

At the GRU benchmark's shapes (gru_cy.bench.GRID; --quick: QUICK_GRID and 0.3 s per
measurement, well under a minute at one thread): forward (inference) against ONNX Runtime
running the model torch.onnx.export writes for the same torch.nn.LSTM, and against torch
(no_grad); training (forward + backward of loss = sum(out * dout)) against torch.nn.LSTM;
step() latency at B=1, I=H=64 against ONNX Runtime session.run of gru_cy's own one-step ONNX
export and torch.nn.LSTMCell (the "torch" column of the step row). Every peer gets the same
weights and inputs, runs in this process pinned to the same number of threads (gru_cy.bench's
Threads: gru_cy's kernels, the BLAS libraries, torch; ONNX Runtime's intra-op threads), and
the peers take turns call by call (gru_cy.bench's timing), so a noisy machine slows all of
them alike. Ratios are peer time / gru_cy time (> 1: gru_cy is faster). Peers that are not
installed are skipped with a note.

"peak" is the share of the machine's float32 multiply-add rate that a call's matrix-product
flops make per second: one core's peak (gru_cy.bench.core_peak, from
gru_cy.kernels._core.fma_peak with the kernels' instruction set, measured once before the
run) times the threads. Flops: 2 T B 4H (I + H) forward, three times that in training
(backward: dh per step, dx, dW_ih, dW_hh). No implementation can pass 100%. The second table
sets each speed target of the LSTM beside the peak share it asks of gru_cy: a target above
100% cannot be met on this machine.

Results: benchmarks/results/lstm-<date>.json and .md (or --out PREFIX); the JSON has the
same layout as the GRU benchmark's (environment, threads, notes, results).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import sys
import warnings

import numpy as np

import gru_cy
from gru_cy.bench import (GRID, QUICK_GRID, STEP_SHAPE, Threads, available_peers, busy_fraction,
                          core_peak, describe_run, environment, format_markdown, format_table,
                          ort_session, peak_share, time_peers)

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


# Speed targets: (mode, peer, ratio, rows it applies to).
TARGETS = (("forward", "onnxruntime", 1.2, lambda T, B: True),
           ("train", "torch", 10.0, lambda T, B: T == 1 and B == 1),
           ("train", "torch", 2.0, lambda T, B: T > 1 and B == 1),
           ("train", "torch", 1.5, lambda T, B: B > 1))


def flops(T, B, I, H, mode):
    """Flops of the one-layer LSTM's matrix products (2 per multiply-add)."""
    fwd = 2.0 * T * B * 4 * H * (I + H)
    return fwd if mode == "forward" else 3 * fwd


def run_case(T, B, I, H, threads, budget, notes, peak):
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
        else:
            notes.add("onnxruntime: not installed, skipped")
    else:
        notes.add("torch: not installed, skipped (and ONNX Runtime's forward model, which is "
                  "torch's export)")
    label = f"T={T} B={B} I={I} H={H}"
    for mode, fns in (("forward", peers_fwd), ("train", peers_train)):
        med = time_peers(fns, budget, threads)
        for name, sec in med.items():
            gf = flops(T, B, I, H, mode) / sec / 1e9
            rows.append(dict(case=label, T=T, B=B, I=I, H=H, mode=mode, threads=threads,
                             peer=name, seconds=sec, ratio=sec / med["gru_cy"], gflops=gf,
                             peak_share=peak_share(gf, peak, threads),
                             gru_cy_threads=gru_cy.get_num_threads()))
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

        fns["torch"] = torch_cell
    if {"onnxruntime", "onnx"} <= have:
        try:
            f = io.BytesIO()
            m.to_onnx(f, with_h0=True)
            sess = ort_session(f.getvalue(), threads)
            oh = {"h": np.zeros((1, B, H), np.float32), "c": np.zeros((1, B, H), np.float32)}
            xin = x_t[None]

            def ort_step():
                _, oh["h"], oh["c"] = sess.run(None, {"input": xin, "h0": oh["h"],
                                                      "c0": oh["c"]})

            ort_step()
            fns["onnxruntime"] = ort_step
        except Exception as exc:  # noqa: BLE001
            notes.add(f"onnxruntime, step: skipped ({type(exc).__name__}: {exc})")
    med = time_peers(fns, budget, threads)
    return [dict(case=f"step() B={B} I={I} H={H}", B=B, I=I, H=H, mode="step", threads=threads,
                 peer=name, seconds=sec, calls_per_second=1.0 / sec, ratio=sec / med["gru_cy"],
                 gflops=None, peak_share=None, gru_cy_threads=gru_cy.get_num_threads())
            for name, sec in med.items()]


def format_targets(rows):
    """Each speed target beside the share of the peak it asks of gru_cy."""
    head = (f"{'case':28} {'mode':8} {'threads':>7} {'peer':>12} {'peer':>6} {'gru_cy':>7} "
            f"{'target':>7} {'needs':>6} {'met':>4}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["peer"] == "gru_cy" or r["mode"] == "step":
            continue
        for mode, peer, ratio, applies in TARGETS:
            if r["mode"] != mode or r["peer"] != peer or not applies(r["T"], r["B"]):
                continue
            ours = next(o for o in rows if o["peer"] == "gru_cy" and o["case"] == r["case"]
                        and o["mode"] == mode and o["threads"] == r["threads"])
            p_sh, o_sh = r["peak_share"], ours["peak_share"]
            if p_sh is None or o_sh is None:
                continue
            lines.append(f"{r['case']:28} {mode:8} {r['threads']:>7} {peer:>12} "
                         f"{p_sh * 100:>5.0f}% {o_sh * 100:>6.0f}% {ratio:>6.1f}x "
                         f"{p_sh * ratio * 100:>5.0f}% {'yes' if r['ratio'] >= ratio else 'no':>4}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="the quick grid, 0.3 s per measurement (well under a minute)")
    ap.add_argument("--threads", type=int, nargs="*", default=[1])
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per case and mode (default 1.5, with --quick 0.3)")
    ap.add_argument("--out", default=None, help="prefix of the .json/.md results")
    args = ap.parse_args(argv)
    grid = QUICK_GRID if args.quick else GRID
    budget = args.budget if args.budget is not None else (0.3 if args.quick else 1.5)
    notes, rows = set(), []
    busy = busy_fraction()
    peak = core_peak()
    for threads in args.threads:
        with Threads(threads):
            for T, B, I, H in grid:
                print(f"  [{threads} thread(s)] T={T} B={B} I={I} H={H} ...", file=sys.stderr)
                rows += run_case(T, B, I, H, threads, budget, notes, peak)
            rows += run_step(threads, budget, notes)
    env = environment(peak)
    env["machine_busy_before"] = busy
    env["machine_busy_after"] = busy_fraction()
    doc = dict(what="LSTM", environment=env, threads=args.threads, budget_seconds=budget,
               notes=sorted(notes), results=rows)
    header = (f"gru_cy {env['gru_cy']} LSTM | {env['cpu']} ({env['cores']} cores) | "
              f"{env['date']} | torch {env['torch']}, onnxruntime {env['onnxruntime']} | "
              f"machine busy before the run: "
              f"{'?' if busy is None else f'{busy * 100:.0f}%'}\n{describe_run(env)}")
    text = (header + "\n\n" + "\n\n".join(format_table(rows, n) for n in args.threads)
            + "\n\nspeed targets (peer, gru_cy: share of the peak they run at; needs: the share "
            "gru_cy must run at to meet the target)\n\n" + format_targets(rows))
    if notes:
        text += "\n\nnotes:\n" + "\n".join(f"- {n}" for n in sorted(notes))
    print(text)
    prefix = args.out or os.path.join(HERE, "results",
                                      f"lstm-{datetime.date.today().isoformat()}")
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(prefix + ".md", "w") as f:
        f.write(f"# gru_cy.LSTM against its peers\n\n{header}\n\n" + format_markdown(doc)
                + "\nSpeed targets\n\n```\n" + format_targets(rows) + "\n```\n")
    print(f"\nresults written to {prefix}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
