"""Command line: python -m gru_cy (or gru-cy) [info | bench | convert].

With no arguments (or ``info``): the version, where the products run (the
kernels' instruction set, or SciPy's BLAS) and on how many threads, a
forward + backward self-check against a NumPy GRU, and the time per step
of a small model.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np


def _blas_info():
    """(description, threads) of the BLAS SciPy's cython_blas calls."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS so it is listed)

        from gru_cy._threads import scipy_blas_entry

        i = scipy_blas_entry(threadpool_info())
        if i is not None:
            desc = f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
            return desc, i.get("num_threads")
    import scipy

    from gru_cy._threads import _openblas_threads

    # Without threadpoolctl: ask SciPy's OpenBLAS directly when it can be found.
    blas_calls = _openblas_threads()
    threads = blas_calls[0]() if blas_calls else None
    cfg = scipy.show_config(mode="dicts") if hasattr(scipy, "show_config") else None
    try:
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}", threads
    except (TypeError, KeyError):
        return "unknown (install threadpoolctl for details)", threads


def _time_per_step(T=100, B=8, I=64, H=128, repeats=5):
    from gru_cy import GRU

    rng = np.random.default_rng(0)
    gru = GRU(I, H, seed=0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    gru(x)  # warm up
    best_f = best_t = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        gru(x)
        best_f = min(best_f, time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, _, tape = gru.forward_train(x)
        gru.backward(tape, np.ones((T, B, H), np.float32))
        best_t = min(best_t, time.perf_counter() - t0)
    return best_f / T, best_t / T


def _precision_info():
    """How freeze(precision="bf16" / "int8") runs here: on the CPU's own
    instruction, or without it (the same bits, about float32's speed)."""
    from gru_cy.kernels import _core

    bf16 = ("bf16 native (AVX512_BF16)" if _core.native("bf16") else
            "bf16 emulated (no AVX512_BF16 here: the same bits, about fp32's speed)")
    int8 = ("int8 native (AVX512-VNNI)" if _core.native("int8") else
            "int8 without AVX512-VNNI (the same bits, about fp32's speed)")
    return f"{bf16}; {int8}"


def info(out=sys.stdout):
    import scipy

    import gru_cy
    from gru_cy._selfcheck import self_check

    from gru_cy._threads import available_cores
    from gru_cy.kernels import _core

    blas, threads = _blas_info()
    print(f"gru_cy {gru_cy.__version__}", file=out)
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"{platform.machine()}", file=out)
    if gru_cy.get_backend() == "gru_cy":
        best = _core.cpu_isa()
        chosen = _core.isa()
        note = "" if chosen == best else f" (GRU_CY_ISA; this CPU has {best})"
        print(f"products: gru_cy's kernels, {chosen}{note}; threads: "
              f"{gru_cy.get_num_threads()} of the {available_cores()} cores this process "
              "may use", file=out)
    else:
        print("products: SciPy's BLAS (gru_cy.set_backend('blas')); gru_cy's threads: 1",
              file=out)
    print(f"frozen inference: {_precision_info()}", file=out)
    print(f"BLAS (SciPy's, for the BLAS backend): {blas}; threads: "
          f"{threads if threads is not None else 'unknown'}", file=out)
    ok = True
    for reset_after in (True, False):
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
            err = self_check(reset_after=reset_after, dtype=dtype)
            good = err <= tol
            ok &= good
            print(f"self-check reset_after={reset_after!s:5} {np.dtype(dtype).name}: "
                  f"max rel. difference vs NumPy {err:.1e} (tolerance {tol:.0e}) "
                  f"{'ok' if good else 'FAILED'}", file=out)
    fwd, train = _time_per_step()
    print(f"time per step (T=100, B=8, I=64, H=128, float32): forward {fwd * 1e6:.1f} us, "
          f"forward_train + backward {train * 1e6:.1f} us", file=out)
    return 0 if ok else 1


def _prog():
    """How the user ran us: ``python -m gru_cy`` or the ``gru-cy`` console script."""
    import os

    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name in ("__main__.py", "-c", "-m"):
        return "python -m gru_cy"
    return name[:-3] if name.endswith((".py", ".exe")) else name


def main(argv=None):
    from gru_cy.io.convert import CONVERT_DESCRIPTION, CONVERT_EPILOG, convert_cli

    parser = argparse.ArgumentParser(
        prog=_prog(), description="gru_cy's command line: info (the default), bench, convert.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="version, BLAS, self-check and timing (the default)")
    bench = sub.add_parser("bench", help="benchmark against the installed peers")
    bench.add_argument("--quick", action="store_true", help="a small grid, under a minute")
    bench.add_argument("--threads", type=int, nargs="*", default=None)
    bench.add_argument("--out", default=None, help="write results as JSON here")
    convert = sub.add_parser("convert", help="convert a model between file formats",
                             description=CONVERT_DESCRIPTION, epilog=CONVERT_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("src", help="the model to read")
    convert.add_argument("dst", help="the file to write")
    args, rest = parser.parse_known_args(argv)
    if args.command in (None, "info"):
        return info()
    if args.command == "bench":
        try:
            from gru_cy.bench import run_cli
        except ImportError as exc:
            print(f"benchmark unavailable: {exc}", file=sys.stderr)
            return 2
        return run_cli(args, rest)
    if args.command == "convert":
        if rest:
            convert.error(f"unrecognized arguments: {' '.join(rest)}")
        return convert_cli(args.src, args.dst)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
