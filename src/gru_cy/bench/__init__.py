"""Side-by-side benchmark: gru_cy against NumPy, PyTorch and ONNX Runtime.

``python -m gru_cy bench [--quick] [--threads N ...] [--out results.json]``
calls :func:`run_cli`; ``benchmarks/run_bench.py`` runs the full grid and
draws the plot. Every peer gets the same weights and the same inputs, runs
in this one process, and is pinned to the same number of threads
(threadpoolctl for the BLAS libraries, ``torch.set_num_threads``, ONNX
Runtime ``intra_op_num_threads`` with ``inter_op_num_threads = 1``).
Peers that are not installed are skipped with a note. The peers take
turns call by call, so that a noisy machine slows all of them alike, and
each one's median time is reported.

Per row: median seconds, GF/s (2 flops per multiply-add of the GEMMs a GRU
needs, gate math not counted), each peer's time divided by gru_cy's, and
gru_cy's fraction of the GEMM-only floor: the time SciPy's BLAS takes for
exactly the GEMM/GEMV calls gru_cy makes (``gru_cy.kernels._gru.gemm_floor``),
divided by gru_cy's time.

This module is imported only by the ``bench`` command; NumPy is the only
dependency it needs, the peers are imported when present.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from gru_cy._reference import numpy_layer_backward, numpy_layer_forward

GRID = [(1, 1, 64, 64), (50, 1, 32, 64), (100, 8, 64, 128), (100, 32, 128, 128),
        (100, 64, 256, 256), (50, 128, 512, 512)]
QUICK_GRID = [(1, 1, 64, 64), (50, 1, 32, 64), (100, 8, 64, 128), (100, 32, 128, 128)]
EXTRA_SHAPE = (100, 32, 128, 128)
STEP_SHAPE = (1, 64, 64)          # B, I, H of the step() latency row
PEERS = ("gru_cy", "numpy", "torch", "onnxruntime")


@dataclass
class Case:
    """One benchmark row: a GRU configuration and its input shape."""

    label: str
    T: int
    B: int
    I: int
    H: int
    dtype: str = "float32"
    num_layers: int = 1
    bidirectional: bool = False
    reset_after: bool = True
    varlen: bool = False
    modes: tuple = ("forward", "train")

    @property
    def D(self):
        return 2 if self.bidirectional else 1

    def lengths(self):
        """Variable lengths: spread over [T/2, T], the longest equal to T."""
        if not self.varlen:
            return None
        rng = np.random.default_rng(1)
        lengths = rng.integers(self.T // 2, self.T + 1, size=self.B)
        lengths[0] = self.T
        return lengths.astype(np.int64)

    def flops(self, mode):
        """2 * multiply-adds of the GEMMs (backward costs twice the forward)."""
        total = 0
        for k in range(self.num_layers):
            in_k = self.I if k == 0 else self.D * self.H
            total += self.D * 2 * self.T * self.B * 3 * self.H * (in_k + self.H)
        return total * (3 if mode == "train" else 1)


def grid_cases(grid):
    return [Case(f"T={T} B={B} I={I} H={H}", T, B, I, H) for T, B, I, H in grid]


def extra_cases():
    T, B, I, H = EXTRA_SHAPE
    shape = f"T={T} B={B} I={I} H={H}"
    return [
        Case(f"{shape} float64", T, B, I, H, dtype="float64"),
        Case(f"{shape} bidirectional", T, B, I, H, bidirectional=True),
        Case(f"{shape} 2 layers", T, B, I, H, num_layers=2),
        Case(f"{shape} reset_after=False", T, B, I, H, reset_after=False),
        Case(f"{shape} variable lengths", T, B, I, H, varlen=True),
    ]


# ---------------------------------------------------------------------------
# thread pinning


class _Threads:
    """Pin every library to n threads for the duration of a with block."""

    def __init__(self, n):
        self.n = n
        self._limits = None

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            threadpool_limits = None
        self._scipy_blas = None
        if threadpool_limits is not None:
            import scipy.linalg  # noqa: F401  (load SciPy's BLAS so it is limited too)

            self._limits = threadpool_limits(limits=self.n)
        else:
            # Without threadpoolctl, SciPy's OpenBLAS (gru_cy's BLAS) can still be set.
            from gru_cy._threads import _openblas_threads

            blas = _openblas_threads()
            if blas:
                self._scipy_blas = (blas, blas[0]())
                blas[1](self.n)
        # Import the peers now: a torch imported later inside the block would
        # keep its default thread count (every core).
        _available()
        torch = sys.modules.get("torch")
        if torch is not None:
            self._torch_threads = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self._limits is not None:
            self._limits.restore_original_limits()
        if self._scipy_blas is not None:
            blas, threads = self._scipy_blas
            blas[1](threads)
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(self, "_torch_threads"):
            torch.set_num_threads(self._torch_threads)


def blas_threads_controllable():
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# the NumPy peer: a plain vectorised GRU (forward for every configuration,
# training for one layer and direction over full lengths)
# (gru_cy._reference: also the self-check's reference)


class NumpyPeer:
    name = "numpy"

    def __init__(self, case, params, x, h0, dout, lengths):
        self.case, self.params, self.x, self.h0, self.dout = case, params, x, h0, dout
        self.lengths = lengths

    def forward(self):
        c = self.case
        layer_in = self.x
        for k in range(c.num_layers):
            outs = []
            for d in range(c.D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                p = self.params
                out, _, _ = numpy_layer_forward(
                    layer_in, p["weight_ih" + sfx], p["weight_hh" + sfx], p["bias_ih" + sfx],
                    p["bias_hh" + sfx], self.h0[k * c.D + d], c.reset_after, d == 1,
                    self.lengths)
                outs.append(out)
            layer_in = outs[0] if c.D == 1 else np.concatenate(outs, axis=2)
        return layer_in

    def supports_train(self):
        c = self.case
        return c.num_layers == 1 and c.D == 1 and not c.varlen

    def train(self):
        p = self.params
        out, _, saved = numpy_layer_forward(
            self.x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"],
            self.h0[0], self.case.reset_after, False, None, keep=True)
        return numpy_layer_backward(self.dout, np.zeros_like(self.h0[0]), saved, self.x,
                                    p["weight_ih_l0"], p["weight_hh_l0"], self.case.reset_after)


# ---------------------------------------------------------------------------
# gru_cy


class GruCyPeer:
    name = "gru_cy"

    def __init__(self, case, params, x, h0, dout, lengths):
        import gru_cy

        self.gru = gru_cy.GRU(case.I, case.H, num_layers=case.num_layers,
                              bidirectional=case.bidirectional, reset_after=case.reset_after,
                              dtype=np.dtype(case.dtype), seed=0)
        self.gru.load_state_dict(params)
        self.x, self.h0, self.dout, self.lengths = x, h0, dout, lengths

    def forward(self):
        return self.gru(self.x, self.h0, lengths=self.lengths)

    def supports_train(self):
        return True

    def train(self):
        out, h_n, tape = self.gru.forward_train(self.x, self.h0, lengths=self.lengths)
        return self.gru.backward(tape, self.dout)


def gemm_floor_seconds(case, params, x, repeats):
    """Median seconds of the BLAS calls gru_cy makes for this case (all layers
    and directions, full lengths)."""
    from gru_cy.kernels import _gru
    from gru_cy.nn.gru import _CHUNK_ELEMENTS

    dt = np.dtype(case.dtype)
    result = {}
    for mode in case.modes:
        total = 0.0
        layer_in = x
        for k in range(case.num_layers):
            for d in range(case.D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                _, chunk = _gru.plan(case.T, case.B, case.H, True, d == 1, _CHUNK_ELEMENTS,
                                     mode == "train")
                times = _gru.gemm_floor(layer_in, params["weight_ih" + sfx],
                                        params["weight_hh" + sfx], chunk, case.reset_after,
                                        mode == "train", repeats)
                total += float(np.median(times))
            if k + 1 < case.num_layers:
                layer_in = np.zeros((case.T, case.B, case.D * case.H), dt)
        result[mode] = total
    return result


# ---------------------------------------------------------------------------
# PyTorch


class TorchPeer:
    name = "torch"

    def __init__(self, case, params, x, h0, dout, lengths):
        import torch

        if not case.reset_after:
            raise _Unsupported("torch.nn.GRU has no reset_after=False variant")
        tdt = torch.float64 if case.dtype == "float64" else torch.float32
        self.torch = torch
        self.m = torch.nn.GRU(case.I, case.H, num_layers=case.num_layers,
                              bidirectional=case.bidirectional).to(tdt)
        self.m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
        self.x = torch.from_numpy(x)
        self.h0 = torch.from_numpy(h0)
        self.dout = torch.from_numpy(dout)
        self.lengths = None if lengths is None else torch.from_numpy(lengths)

    def _run(self, x):
        torch = self.torch
        if self.lengths is None:
            return self.m(x, self.h0)[0]
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, self.lengths, enforce_sorted=False)
        out, _ = self.m(packed, self.h0)
        return torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])[0]

    def forward(self):
        with self.torch.no_grad():
            return self._run(self.x)

    def supports_train(self):
        return True

    def train(self):
        x = self.x.detach().requires_grad_(True)
        out = self._run(x)
        out.backward(self.dout)
        return x.grad


# ---------------------------------------------------------------------------
# ONNX Runtime


class _Unsupported(Exception):
    pass


def onnx_gru_model(case, params, T, B, with_lengths):
    """An ONNX graph of the case's GRU built node by node (for what
    torch.onnx.export cannot express: reset_after=False, sequence_lens)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H, D = case.H, case.D
    ttype = TensorProto.DOUBLE if case.dtype == "float64" else TensorProto.FLOAT
    inits, nodes = [], []

    def zrn(w):  # r, z, n -> z, r, n (ONNX gate order)
        return np.concatenate([w[H:2 * H], w[:H], w[2 * H:]])

    inputs = [helper.make_tensor_value_info("x", ttype, [T, B, case.I]),
              helper.make_tensor_value_info("h0", ttype, [case.num_layers * D, B, H])]
    if with_lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, [B]))
    layer_in = "x"
    for k in range(case.num_layers):
        sfx = [f"_l{k}" + ("_reverse" if d else "") for d in range(D)]
        W = np.stack([zrn(params["weight_ih" + s]) for s in sfx])
        R = np.stack([zrn(params["weight_hh" + s]) for s in sfx])
        Bias = np.stack([np.concatenate([zrn(params["bias_ih" + s]), zrn(params["bias_hh" + s])])
                         for s in sfx])
        for name, arr in (("W", W), ("R", R), ("B", Bias)):
            inits.append(numpy_helper.from_array(arr, f"{name}{k}"))
        # h0 of this layer: h0[k * D:(k + 1) * D]
        inits.append(numpy_helper.from_array(np.array([k * D], np.int64), f"st{k}"))
        inits.append(numpy_helper.from_array(np.array([(k + 1) * D], np.int64), f"en{k}"))
        inits.append(numpy_helper.from_array(np.array([0], np.int64), f"ax{k}"))
        nodes.append(helper.make_node("Slice", ["h0", f"st{k}", f"en{k}", f"ax{k}"], [f"h0_{k}"]))
        nodes.append(helper.make_node(
            "GRU", [layer_in, f"W{k}", f"R{k}", f"B{k}", "lengths" if with_lengths else "",
                    f"h0_{k}"], [f"y{k}", f"yh{k}"], hidden_size=H,
            direction="bidirectional" if D == 2 else "forward",
            linear_before_reset=1 if case.reset_after else 0))
        # Y (T, D, B, H) -> (T, B, D * H)
        nodes.append(helper.make_node("Transpose", [f"y{k}"], [f"yt{k}"], perm=[0, 2, 1, 3]))
        inits.append(numpy_helper.from_array(np.array([T, B, D * H], np.int64), f"shape{k}"))
        nodes.append(helper.make_node("Reshape", [f"yt{k}", f"shape{k}"], [f"out{k}"]))
        layer_in = f"out{k}"
    nodes.append(helper.make_node("Identity", [layer_in], ["out"]))
    graph = helper.make_graph(nodes, "gru", inputs,
                              [helper.make_tensor_value_info("out", ttype, [T, B, D * H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def torch_onnx_model(case, params, T, B):
    """The ONNX model torch.onnx.export writes for the equivalent nn.GRU."""
    import torch

    tdt = torch.float64 if case.dtype == "float64" else torch.float32
    m = torch.nn.GRU(case.I, case.H, num_layers=case.num_layers,
                     bidirectional=case.bidirectional).to(tdt)
    m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
    f = io.BytesIO()
    x = torch.zeros(T, B, case.I, dtype=tdt)
    h0 = torch.zeros(case.num_layers * case.D, B, case.H, dtype=tdt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x, h0), f, input_names=["x", "h0"], output_names=["out", "h_n"],
                          dynamo=False)
    return f.getvalue()


def ort_session(model_bytes, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


class OrtPeer:
    name = "onnxruntime"

    def __init__(self, case, params, x, h0, dout, lengths, threads):
        self.note = ""
        use_torch = case.reset_after and lengths is None and "torch" in _available()
        if use_torch:
            model = torch_onnx_model(case, params, case.T, case.B)
        else:
            model = onnx_gru_model(case, params, case.T, case.B, lengths is not None)
            self.note = "model built with onnx.helper (torch.onnx.export cannot express it)"
        self.sess = ort_session(model, threads)
        self.feed = {"x": x, "h0": h0}
        if lengths is not None:
            self.feed["lengths"] = lengths.astype(np.int32)
        self.sess.run(None, self.feed)       # fails here if ORT lacks the kernel

    def forward(self):
        return self.sess.run(None, self.feed)

    def supports_train(self):
        return False


def _available():
    if not hasattr(_available, "cache"):
        found = set()
        for mod in ("torch", "onnxruntime", "onnx"):
            try:
                __import__(mod)
                found.add(mod)
            except Exception:  # noqa: BLE001  (a broken install counts as missing)
                pass
        _available.cache = found
    return _available.cache


# ---------------------------------------------------------------------------
# timing


def _time_interleaved(fns, budget, rounds=15, min_rounds=5, pause=0.0):
    """Median seconds per call of each function.

    The functions take turns, each turn a batch of calls lasting about
    budget / rounds (one call if a call is longer), so that a noisy machine
    slows every peer alike while short calls still run back to back as they
    would in a loop. With pause > 0 each turn starts after that many seconds
    of sleep: with several threads, the worker threads of the peer that ran
    before (OpenBLAS, OpenMP, ONNX Runtime) spin for a while after their
    last task and would take the cores from the next peer's threads.
    """
    batch = {}
    for name, fn in fns.items():          # warm-up, and the size of a batch
        if pause:
            time.sleep(pause)
        fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        batch[name] = max(1, int(budget / rounds / once))
    per_call = {name: [] for name in fns}
    start = time.perf_counter()
    done = 0
    while done < min_rounds or (done < 4 * rounds and time.perf_counter() - start < budget):
        for name, fn in fns.items():
            n = batch[name]
            if pause:
                time.sleep(pause)
            if n == 1 or pause:
                for _ in range(n):
                    t0 = time.perf_counter()
                    fn()
                    per_call[name].append(time.perf_counter() - t0)
            else:
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                per_call[name].append((time.perf_counter() - t0) / n)
        done += 1
    return {name: float(np.median(v)) for name, v in per_call.items()}


def _time_peers(fns, budget, threads):
    """_time_interleaved for peers pinned to threads threads: with more than
    one, each turn starts after a pause, so that the threads of the peer
    before (spinning after their last task) have let go of the cores."""
    if threads > 1:
        return _time_interleaved(fns, budget, rounds=4, min_rounds=3, pause=0.25)
    return _time_interleaved(fns, budget)


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


def run_case(case, threads, budget, peers, notes):
    """Rows (dicts) for one case at one thread count."""
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
        except _Unsupported as exc:
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
        medians = _time_peers(fns, budget, threads)
        rows.append(dict(mode=mode, medians=medians))
    floor = gemm_floor_seconds(case, params, x, repeats=7 if case.T * case.B > 1000 else 31)
    out = []
    for row in rows:
        mode, medians = row["mode"], row["medians"]
        ours = medians["gru_cy"]
        for name, sec in medians.items():
            out.append(dict(case=case.label, config=asdict(case), threads=threads, mode=mode,
                            peer=name, seconds=sec, gflops=case.flops(mode) / sec / 1e9,
                            ratio=sec / ours,
                            floor_seconds=floor[mode] if name == "gru_cy" else None,
                            floor_fraction=floor[mode] / ours if name == "gru_cy" else None))
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
            if "torch" in _available():
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
    medians = _time_peers(fns, budget, threads)
    label = f"step() B={B} I={I} H={H}"
    ours = medians["gru_cy"]
    return [dict(case=label, config=dict(B=B, I=I, H=H), threads=threads, mode="step", peer=name,
                 seconds=sec, calls_per_second=1.0 / sec, ratio=sec / ours, gflops=None,
                 floor_seconds=None, floor_fraction=None)
            for name, sec in medians.items()]


# ---------------------------------------------------------------------------
# environment and output


def environment():
    import scipy

    import gru_cy

    env = dict(date=datetime.date.today().isoformat(), python=platform.python_version(),
               machine=platform.machine(), numpy=np.__version__, scipy=scipy.__version__,
               gru_cy=gru_cy.__version__, cpu=_cpu_name(), cores=os.cpu_count())
    env["blas"] = _scipy_blas()
    for mod in ("torch", "onnxruntime", "onnx", "threadpoolctl"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            env[mod] = None
    return env


def busy_fraction(seconds=0.5):
    """Fraction of the machine's CPU time spent busy over a short interval
    (Linux /proc/stat; None elsewhere): other processes skew timings, and
    with several threads a busy core stalls every per-step hand-over."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    try:
        a = snap()
        time.sleep(seconds)
        b = snap()
    except (OSError, ValueError, IndexError):
        return None
    total = b[0] - a[0]
    return 1.0 - (b[1] - a[1]) / total if total > 0 else None


def _scipy_blas():
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


def _cpu_name():
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
            t = _fmt_seconds(ours["seconds"])
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
                t = _fmt_seconds(ours["seconds"]).strip()
                gf = f"{ours['gflops']:.1f}"
                fl = f"{100 * ours['floor_fraction']:.0f}%" if ours["floor_fraction"] else ""
            ratios = [f"{cell[p]['ratio']:.2f}x" if p in cell else "-" for p in peers]
            out.append(f"| {case} | {mode} | {t} | {gf} | {fl} | " + " | ".join(ratios) + " |")
        out.append("")
    if doc["notes"]:
        out.append("Notes: " + "; ".join(doc["notes"]) + ".")
    return "\n".join(out) + "\n"


def _fmt_seconds(s):
    if s < 1e-3:
        return f"{s * 1e6:8.1f}us"
    if s < 1:
        return f"{s * 1e3:8.2f}ms"
    return f"{s:8.3f}s "


def wait_until_quiet(max_wait, log=sys.stdout, threshold=0.1):
    """Sleep until the machine is idle (busy_fraction < threshold) or max_wait
    seconds have passed; returns the last busy fraction seen."""
    deadline = time.time() + max_wait
    while True:
        busy = busy_fraction(1.0)
        if busy is None or busy < threshold or time.time() > deadline:
            return busy
        print(f"    machine {100 * busy:.0f}% busy, waiting ...", file=log, flush=True)
        time.sleep(5)


def run(grid, extras, step, threads_list, budget, peers=PEERS, log=sys.stdout, wait_quiet=0.0):
    """Run the benchmark; returns the result document (JSON-ready).

    wait_quiet > 0: before each case, wait up to that many seconds for the
    machine to be idle; every row records how busy the machine was then."""
    avail = _available()
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
    for threads in threads_list:
        with _Threads(threads):
            for case in cases:
                print(f"  [{threads} thread{'s' if threads > 1 else ''}] {case.label} ...",
                      file=log, flush=True)
                busy = wait_until_quiet(wait_quiet, log) if wait_quiet else None
                new = run_case(case, threads, budget, active, notes)
                for r in new:
                    r["machine_busy"] = busy
                rows += new
            if step:
                busy = wait_until_quiet(wait_quiet, log) if wait_quiet else None
                new = run_step(threads, budget, active, notes)
                for r in new:
                    r["machine_busy"] = busy
                rows += new
    env = environment()
    env["machine_busy_before"] = busy_before
    env["machine_busy_after"] = busy_fraction()
    return dict(environment=env, threads=threads_list, budget_seconds=budget,
                notes=sorted(notes), results=rows)


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
