"""How far frozen bf16 and int8 inference lands from float32: random and trained models.

    python benchmarks/precision_error.py [--quick] [--out PREFIX]

1. Random models (weights as the modules draw them, inputs N(0, 1), T = 50, B = 32): the
   largest and the mean |out - out_fp32| of every cell at a few sizes, and PyTorch's bf16
   autocast and int8 dynamic quantisation on the same GRU and LSTM weights when torch is
   installed.
2. Trained classifiers on data sets scikit-learn ships (no download), as sequences: digits
   (8 steps of 8 pixels), wine (13 steps of 1 feature, standardised), breast cancer (30 steps
   of 1 feature, standardised); GRU, LSTM, RNN and bidirectional GRU, trained in float32, then
   scored under each inference_precision: test accuracy and the share of test predictions
   that differ from float32's.

Results: benchmarks/results/precision-error-<date>.json and .md (or --out PREFIX).
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

HERE = os.path.dirname(os.path.abspath(__file__))
QUANT = ("bf16", "int8")


def random_models(quick):
    sizes = [(64, 64, 1), (256, 256, 1), (512, 512, 2)] if not quick else [(64, 64, 1)]
    makers = {
        "GRU": lambda I, H, L: gru_cy.GRU(I, H, num_layers=L, seed=0),
        "GRU reset_after=False": lambda I, H, L: gru_cy.GRU(I, H, num_layers=L,
                                                            reset_after=False, seed=0),
        "LSTM": lambda I, H, L: gru_cy.LSTM(I, H, num_layers=L, seed=0),
        "LSTM proj_size=H/4": lambda I, H, L: gru_cy.LSTM(I, H, num_layers=L,
                                                          proj_size=H // 4, seed=0),
        "RNN tanh": lambda I, H, L: gru_cy.RNN(I, H, num_layers=L, seed=0),
        "Jordan (O = H/4, tanh)": lambda I, H, L: gru_cy.Jordan(I, H, H // 4,
                                                                output_activation="tanh",
                                                                seed=0),
    }
    rows = []
    rng = np.random.default_rng(0)
    for I, H, L in sizes:
        x = rng.standard_normal((50, 32, I)).astype(np.float32)
        for name, make in makers.items():
            m = make(I, H, L)
            ref = m(x)[0]
            row = dict(model=name, I=I, H=H, L=L if name[:6] != "Jordan" else 1)
            for p in QUANT:
                d = np.abs(m.freeze(p)(x)[0] - ref)
                row[p] = (float(d.max()), float(d.mean()))
            peers = torch_errors(m, x, ref) if name in ("GRU", "LSTM") else {}
            row.update(peers)
            rows.append(row)
            print(row, file=sys.stderr)
    return rows


def torch_errors(m, x, ref):
    try:
        import torch
    except ImportError:
        return {}
    tm = m.to_torch().eval()

    class Wrap(torch.nn.Module):
        def __init__(self, rnn):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = torch.ao.quantization.quantize_dynamic(Wrap(tm), {torch.nn.GRU, torch.nn.LSTM},
                                                    dtype=torch.qint8)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yb = tm(xt)[0].float().numpy()
        yq = qm(xt)[0].numpy()
    db, dq = np.abs(yb - ref), np.abs(yq - ref)
    return {"torch bf16": (float(db.max()), float(db.mean())),
            "torch int8": (float(dq.max()), float(dq.mean()))}


def datasets():
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine
    from sklearn.model_selection import train_test_split

    out = {}
    d = load_digits()
    out["digits (8 x 8)"] = (d.data.reshape(-1, 8, 8) / 16.0, d.target, 30)
    for name, loader, epochs in (("wine (13 x 1)", load_wine, 200),
                                 ("breast cancer (30 x 1)", load_breast_cancer, 60)):
        b = loader()
        X = (b.data - b.data.mean(0)) / b.data.std(0)
        out[name] = (X[:, :, None], b.target, epochs)
    split = {}
    for name, (X, y, epochs) in out.items():
        parts = train_test_split(X.astype(np.float32), y, test_size=0.25, random_state=0,
                                 stratify=y)
        split[name] = parts + [epochs]
    return split


def trained_models(quick):
    from sklearn.exceptions import ConvergenceWarning

    cells = [("gru", False), ("lstm", False), ("rnn", False), ("gru", True)]
    if quick:
        cells = cells[:1]
    rows = []
    for name, (X_train, X_test, y_train, y_test, epochs) in datasets().items():
        for cell, bidirectional in cells:
            clf = gru_cy.RNNClassifier(cell=cell, hidden_size=64, bidirectional=bidirectional,
                                       learning_rate_init=3e-3, max_iter=epochs,
                                       random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X_train, y_train)
            base = clf.predict(X_test)
            row = dict(data=name, cell=cell + (" bidirectional" if bidirectional else ""),
                       n_test=len(y_test), fp32=float(np.mean(base == y_test)))
            for p in QUANT:
                clf.set_params(inference_precision=p)
                pred = clf.predict(X_test)
                row[p] = (float(np.mean(pred == y_test)), int(np.sum(pred != base)))
            rows.append(row)
            print(row, file=sys.stderr)
    return rows


def report(random_rows, trained_rows, out):
    w = out.write
    w("Random models: max / mean |out - out_fp32| (T=50, B=32, x ~ N(0, 1))\n\n")
    w("| model | I, H, layers | gru_cy bf16 | gru_cy int8 | torch bf16 autocast | "
      "torch int8 dynamic |\n|---|---|---|---|---|---|\n")

    def cell(v):
        return f"{v[0]:.4f} / {v[1]:.5f}" if v else "-"

    for r in random_rows:
        w(f"| {r['model']} | {r['I']}, {r['H']}, {r['L']} | {cell(r['bf16'])} | "
          f"{cell(r['int8'])} | {cell(r.get('torch bf16'))} | {cell(r.get('torch int8'))} |\n")
    w("\nTrained classifiers (float32 training, hidden 64): test accuracy, and test predictions "
      "that differ from float32's\n\n")
    w("| data | cell | fp32 accuracy | bf16 accuracy (changed) | int8 accuracy (changed) |\n")
    w("|---|---|---|---|---|\n")
    for r in trained_rows:
        w(f"| {r['data']} | {r['cell']} | {r['fp32']:.4f} | "
          f"{r['bf16'][0]:.4f} ({r['bf16'][1]} of {r['n_test']}) | "
          f"{r['int8'][0]:.4f} ({r['int8'][1]} of {r['n_test']}) |\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    gru_cy.set_num_threads(1)
    random_rows = random_models(args.quick)
    trained_rows = trained_models(args.quick)
    buf = io.StringIO()
    report(random_rows, trained_rows, buf)
    print(buf.getvalue())
    prefix = args.out or os.path.join(
        HERE, "results", f"precision-error-{datetime.date.today().isoformat()}")
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump(dict(random=random_rows, trained=trained_rows), f, indent=1)
    with open(prefix + ".md", "w") as f:
        f.write(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
