"""Fuzz target for gru_cy's file loaders: gru_cy.load (.npz), gru_cy.load_onnx and
gru_cy.InferenceSession (whole ONNX models, loaded and run).

    pip install atheris                      # the coverage-guided fuzzer (libFuzzer)
    python fuzz/fuzz_loaders.py -max_total_time=60 [-jobs=N] [CORPUS_DIR ...]

or, with no atheris, a plain random-mutation loop over the same seeds:

    python fuzz/fuzz_loaders.py --plain --seconds 60

fuzz/run.sh wraps both with a time limit. Each input is one byte choosing the
loader (its value modulo 3: 0 .npz, 1 load_onnx, 2 InferenceSession) followed
by the file's bytes, which are written to a file and handed to the loader by
path, as a user would. The seed corpus is made at start-up from modules saved
by gru_cy itself (and the ONNX files in tests/golden/, when present: the
recurrent stacks for both ONNX loaders, the whole exported models and the
single-operator models of the session's tests for InferenceSession), so
mutations start from valid files and reach deep into the parsers.

The contract checked: whatever the bytes, a loader either returns a module
that runs, or raises ValueError (NotImplementedError for an ONNX feature
gru_cy cannot honour). A session that loads is run once on inputs of its
declared types (symbolic dimensions 2, unknown ones 1): it returns, or raises
ValueError. Any other exception is a finding, and so is a crash or a hang,
which libFuzzer reports with the input that caused it.

Memory is part of the contract. Loading an ONNX file may allocate at most
what its size allows (constant folding: gru_cy.io.onnx.graph's FOLD_FACTOR
bytes per byte of the model plus FOLD_SLACK; decoding adds a bounded
factor), so each ONNX input runs under tracemalloc and a peak above
``_onnx_memory_bound(size)`` is a finding, as is a MemoryError from any
loader (each checks sizes against the file before allocating). A session's run
may add what gru_cy.runtime allows a run (``_run_memory_bound``: a few
tensors of its per-tensor limit for these small inputs). The seeds
include hand-made graphs that fold big constants (ConstantOfShape, Expand,
Concat, Gather, Cast, deep chains) so that mutations probe those limits.
The process also caps its own address space (GRU_CY_FUZZ_MEMORY_MB,
default 4096) as a backstop, so that a missed limit is a MemoryError
finding instead of an exhausted machine. A loader gru_cy does not have yet
is skipped.
"""

from __future__ import annotations

import atexit
import builtins
import glob
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "tests", "golden")

try:
    import atheris
except ImportError:
    atheris = None


def _import_gru_cy():
    if atheris is not None:
        # Coverage feedback from gru_cy's own Python (the parsers live there).
        with atheris.instrument_imports(include=["gru_cy"]):
            import gru_cy
            try:
                import gru_cy.io.onnx  # noqa: F401
            except ImportError:
                pass
    else:
        import gru_cy
    return gru_cy


gru_cy = _import_gru_cy()
LOADERS = {}
if callable(getattr(gru_cy, "load", None)):
    LOADERS["npz"] = gru_cy.load
if callable(getattr(gru_cy, "load_onnx", None)):
    LOADERS["onnx"] = gru_cy.load_onnx
if callable(getattr(gru_cy, "InferenceSession", None)):
    LOADERS["session"] = gru_cy.InferenceSession
KINDS = ("npz", "onnx", "session")
ALLOWED = {"npz": (ValueError,), "onnx": (ValueError, NotImplementedError),
           "session": (ValueError, NotImplementedError)}
# GRU_CY_FUZZ_ALLOW=NotImplementedError,KeyError lets the hunt go past findings
# already reported (names of built-in exceptions, comma-separated).
_EXTRA = tuple(getattr(builtins, name.strip())
               for name in os.environ.get("GRU_CY_FUZZ_ALLOW", "").split(",") if name.strip())
if _EXTRA:
    ALLOWED = {kind: allowed + _EXTRA for kind, allowed in ALLOWED.items()}

_WORKDIR = tempfile.mkdtemp(prefix="gru_cy_fuzz_")
atexit.register(shutil.rmtree, _WORKDIR, ignore_errors=True)
stats = {"inputs": 0, "loaded": 0, "rejected": 0, "memory": 0, "peak_of_bound": 0.0}


def _onnx_memory_bound(size):
    """The most loading a size-byte ONNX file may allocate: the folding limit, plus
    decoding (the bytes themselves, lists of integers at ~44 bytes per encoded byte, the
    module's parameters and gradients) and a fixed allowance for the interpreter."""
    try:
        from gru_cy.io.onnx.graph import FOLD_FACTOR, FOLD_SLACK
    except ImportError:  # an older gru_cy without the limits
        FOLD_FACTOR, FOLD_SLACK = 8, 16 << 20
    return FOLD_SLACK + (FOLD_FACTOR + 56) * size + (8 << 20)


def _run_memory_bound(size):
    """What running a loaded session on small inputs may add: its tensors stay below the
    runtime's per-tensor limit, and a run holds a few of them at once."""
    try:
        from gru_cy.runtime._compile import TENSOR_FACTOR, TENSOR_SLACK
    except ImportError:
        TENSOR_FACTOR, TENSOR_SLACK = 64, 64 << 20
    return 4 * (TENSOR_SLACK + TENSOR_FACTOR * (size + (1 << 16)))


_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
          "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def _feeds(session):
    """Inputs of the declared types and ranks: small values, symbolic dimensions 2."""
    feeds = {}
    for arg in session.get_inputs():
        dims = [d if isinstance(d, int) and 0 <= d <= 64 else (2 if isinstance(d, str) else 1)
                for d in (arg.shape or [])]
        dtype = _TYPES.get(arg.type, np.float32)
        feeds[arg.name] = (np.arange(int(np.prod(dims)), dtype=np.int64) % 3).astype(
            dtype).reshape(dims)
    return feeds


def _check_session(session):
    """A loaded session runs on inputs of its declared types, or says why not."""
    try:
        with np.errstate(all="ignore"):
            outputs = session.run(None, _feeds(session))
    except ValueError:
        return
    assert isinstance(outputs, list) and all(isinstance(o, np.ndarray) for o in outputs)


def _cap_memory():
    try:
        import resource
    except ImportError:
        return
    limit_mb = int(os.environ.get("GRU_CY_FUZZ_MEMORY_MB", "4096"))
    try:
        with open("/proc/self/status") as f:
            used = [int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize")][0]
    except (OSError, IndexError):
        used = 0
    resource.setrlimit(resource.RLIMIT_AS, (used + (limit_mb << 20), resource.RLIM_INFINITY))


def check_one(data: bytes):
    """Run one input through its loader and enforce the contract."""
    stats["inputs"] += 1
    if not data or not LOADERS:
        return
    kind = KINDS[data[0] % 3]
    if kind not in LOADERS:
        kind = next(iter(LOADERS))
    path = os.path.join(_WORKDIR, "input." + ("npz" if kind == "npz" else "onnx"))
    with open(path, "wb") as f:
        f.write(data[1:])
    trace = kind != "npz" and not tracemalloc.is_tracing()
    if trace:
        tracemalloc.start()
    bound = _onnx_memory_bound(len(data) - 1)
    try:
        gru = LOADERS[kind](path)
        if kind == "session":
            bound += _run_memory_bound(len(data) - 1)
            _check_session(gru)
    except ALLOWED[kind]:
        stats["rejected"] += 1
        return
    except MemoryError:
        stats["memory"] += 1
        if MemoryError not in _EXTRA:
            raise
        return
    finally:
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            stats["peak_of_bound"] = max(stats["peak_of_bound"], round(peak / bound, 3))
            if peak > bound:
                raise AssertionError(f"loading (and running) a {len(data) - 1}-byte ONNX file "
                                     f"allocated {peak} bytes, above {bound}")
    stats["loaded"] += 1
    if kind == "session":
        return
    try:
        from gru_cy.nn.base import MODULES
        modules = tuple(MODULES.values())
    except ImportError:  # an older gru_cy without the registry
        modules = (gru_cy.GRU,)
    if not isinstance(gru, modules):
        raise AssertionError(f"{kind} loader returned {type(gru).__name__}, not a module")
    # A loaded recurrent module must run (its values may be anything, NaN included).
    size = getattr(gru, "input_size", 0) * getattr(gru, "hidden_size", 0)
    if 0 < size <= 1 << 20:
        # A sequence (T, B, I) for the recurrent modules, one step (B, I) for the cells.
        cells = tuple(getattr(gru_cy, name) for name in ("GRUCell", "LSTMCell", "RNNCell")
                      if hasattr(gru_cy, name))
        shape = (2, gru.input_size) if isinstance(gru, cells) else (2, 1, gru.input_size)
        with np.errstate(all="ignore"):
            result = gru(np.ones(shape, gru.dtype))
        out = result[0] if isinstance(result, tuple) else result
        assert out.shape[0] == 2


def seeds():
    """Valid files to start from, as fuzzer inputs (selector byte + file bytes)."""
    made = []
    configs = [dict(input_size=3, hidden_size=4),
               dict(input_size=2, hidden_size=3, num_layers=2, bidirectional=True),
               dict(input_size=3, hidden_size=2, bias=False, reset_after=False,
                    dtype=np.float64)]
    made_by = [(gru_cy.GRU, cfg) for cfg in configs]
    for name, cfg in (("RNN", dict(input_size=3, hidden_size=2, nonlinearity="relu")),
                      ("LSTM", dict(input_size=2, hidden_size=3, num_layers=2)),
                      ("Jordan", dict(input_size=3, hidden_size=4, output_size=2))):
        if hasattr(gru_cy, name):
            made_by.append((getattr(gru_cy, name), cfg))
    for i, (cls, cfg) in enumerate(made_by):
        try:
            gru = cls(seed=i, **cfg)
        except TypeError:  # a version of the class with other arguments
            continue
        for kind, write in (("npz", getattr(gru, "save", None)),
                            ("onnx", getattr(gru, "to_onnx", None))):
            if kind not in LOADERS or write is None:
                continue
            path = os.path.join(_WORKDIR, f"seed{i}.{kind}")
            try:
                write(path)
            except Exception:  # noqa: BLE001  (a writer that cannot express this config)
                continue
            with open(path, "rb") as f:
                made.append(bytes([0 if kind == "npz" else 1]) + f.read())
    if "onnx" in LOADERS:
        for path in sorted(glob.glob(os.path.join(GOLDEN, "*.onnx"))):
            with open(path, "rb") as f:
                made.append(b"\x01" + f.read())
        made += [b"\x01" + model for model in folding_seeds()]
    if "session" in LOADERS:
        made += [b"\x02" + model for model in session_seeds()]
    return made


def session_seeds():
    """Whole models for InferenceSession: the recurrent files, the exported models and a
    sample of the single-operator models of the session's tests, and the folding seeds."""
    models = []
    for path in sorted(glob.glob(os.path.join(GOLDEN, "*.onnx"))):
        with open(path, "rb") as f:
            models.append(f.read())
    ops = os.path.join(GOLDEN, "session_ops.npz")
    if os.path.exists(ops):   # every array in one blob, indexed by meta (make_golden_session)
        import json

        with np.load(ops, allow_pickle=False) as data:
            index = json.loads(str(data["meta"]))["arrays"]
            blob = data["blob"].tobytes()
        keys = sorted(k for k in index if k.endswith("::model"))
        for k in keys[::4]:
            offset, _, shape = index[k]
            models.append(blob[offset:offset + int(np.prod(shape))])
    return models + folding_seeds()


def folding_seeds():
    """Small ONNX models whose GRU weights are folded from big constants: inputs that sit
    at the folding limits (and whose mutations go past them)."""
    try:
        from gru_cy.io.onnx.codec import onnx_node, onnx_tensor_proto, pb_bytes, pb_int
    except ImportError:
        return []

    def model(nodes, inits):
        graph = (b"".join(pb_bytes(1, n) for n in nodes)
                 + b"".join(pb_bytes(5, onnx_tensor_proto(k, v)) for k, v in inits.items())
                 + pb_bytes(11, pb_bytes(1, "X")) + pb_bytes(12, pb_bytes(1, "Y")))
        return pb_int(1, 8) + pb_bytes(7, graph) + pb_bytes(8, pb_int(2, 17))

    H, I = 2, 3
    R = np.ones((1, 3 * H, H), np.float32)
    gru = onnx_node("GRU", ["X", "W", "R"], ["Y"], "gru", hidden_size=H)
    big = np.array([1, 3 * H, 1 << 22], np.int64)
    out = [
        model([onnx_node("ConstantOfShape", ["shape"], ["W"], "fill"), gru],
              {"shape": np.array([1, 3 * H, I], np.int64), "R": R}),
        model([onnx_node("ConstantOfShape", ["shape"], ["W"], "fill"), gru],
              {"shape": big, "R": R}),
        model([onnx_node("Expand", ["one", "shape"], ["W"], "expand"), gru],
              {"one": np.ones((1, 1, 1), np.float32), "shape": big, "R": R}),
        model([onnx_node("ConstantOfShape", ["shape"], [f"c{i}"], f"fill{i}") for i in range(8)]
              + [onnx_node("Concat", [f"c{i}" for i in range(8)], ["W"], "join", axis=2), gru],
              {"shape": np.array([1, 3 * H, 1 << 19], np.int64), "R": R}),
        model([onnx_node("Gather", ["w0", "idx"], ["W"], "gather", axis=2), gru],
              {"w0": np.ones((1, 3 * H, I), np.float32), "idx": np.zeros(1 << 16, np.int64),
               "R": R}),
        model([onnx_node("Cast", ["w0"], ["W"], "cast", to=11), gru],
              {"w0": np.ones((1, 3 * H, I), np.int32), "R": R}),
        model([onnx_node("Identity", ["w0" if i == 0 else f"w{i}"], [f"w{i + 1}"], f"id{i}")
               for i in range(250)]
              + [onnx_node("Identity", ["w250"], ["W"], "last"), gru],
              {"w0": np.ones((1, 3 * H, I), np.float32), "R": R}),
    ]
    return out


def _write_corpus(directory):
    os.makedirs(directory, exist_ok=True)
    for i, data in enumerate(seeds()):
        with open(os.path.join(directory, f"seed-{i:03d}"), "wb") as f:
            f.write(data)


def _mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data)) if data else 0
        if op == 0 and data:                         # flip bits
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and data:                       # interesting byte
            data[pos] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
        elif op == 2:                                # truncate
            del data[pos:]
        elif op == 3:                                # insert random bytes
            data[pos:pos] = os.urandom(rng.randint(1, 16))
        elif data:                                   # duplicate a chunk
            end = min(len(data), pos + rng.randint(1, 64))
            data[pos:pos] = data[pos:end]
    return bytes(data)


def plain_fuzz(seconds, seed=0):
    """No atheris: random mutations of the seeds for a bounded time."""
    rng = random.Random(seed)
    corpus = seeds() or [b"\x00", b"\x01"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = _mutate(rng.choice(corpus), rng)
        try:
            check_one(data)
        except Exception:
            path = os.path.join(os.getcwd(), f"crash-{stats['inputs']:08d}")
            with open(path, "wb") as f:
                f.write(data)
            print(f"finding saved to {path}", file=sys.stderr)
            raise


def main(argv):
    print(f"gru_cy {gru_cy.__version__}: fuzzing loaders {sorted(LOADERS) or 'none'} "
          f"({'atheris' if atheris and '--plain' not in argv else 'plain mutation'})",
          file=sys.stderr)
    if not LOADERS:
        print("gru_cy has neither load nor load_onnx yet: nothing to fuzz", file=sys.stderr)
        return 0
    _cap_memory()
    atexit.register(lambda: print(f"gru_cy loaders: {stats}", file=sys.stderr))
    if atheris is None or "--plain" in argv:
        seconds = 60.0
        if "--seconds" in argv:
            seconds = float(argv[argv.index("--seconds") + 1])
        plain_fuzz(seconds)
        return 0
    # libFuzzer takes corpus folders as positional arguments; seed the first one
    # (or a fresh one) with valid files.
    folders = [a for a in argv[1:] if not a.startswith("-")]
    if not folders:
        folders = [os.path.join(_WORKDIR, "corpus")]
        argv = argv + folders
    _write_corpus(folders[0])
    atheris.Setup(argv, check_one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
