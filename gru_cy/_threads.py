"""The two directions of a bidirectional layer, on two threads.

The directions are independent, and the kernels release the GIL for their
whole time loop, so one direction can run on a worker thread while the
calling thread runs the other (DESIGN.md §4). Inside, every BLAS call must
be single-threaded, or the two directions would fight over the BLAS's own
threads: while a pair runs, SciPy's OpenBLAS is set to one thread (through
its openblas_set_num_threads, found next to scipy.linalg.cython_blas) and
set back afterwards.

A pair runs on two threads only when the user allows SciPy's BLAS two
threads or more (threadpoolctl, OPENBLAS_NUM_THREADS, ...: pinning gru_cy
to one thread that way pins it completely), when the work is large enough
to pay for the hand-over (about 20-70 us), when the BLAS thread count can
be controlled, and when no other pair holds the worker; otherwise the
calls run one after the other, as before.
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

# Multiply-adds of one direction (T * B * 3H * (I + H)) below which a
# second thread costs more than it saves.
MIN_MULTIPLY_ADDS = 2_000_000

_worker_lock = threading.Lock()     # held by the pair using the worker
_executor = None
_blas = None                        # (get, set) of SciPy's OpenBLAS thread count, or False


def _openblas_threads():
    """(get_num_threads, set_num_threads) of the BLAS behind
    scipy.linalg.cython_blas, or None when it is not an OpenBLAS we know."""
    global _blas
    if _blas is None:
        _blas = False
        try:
            import scipy.linalg.cython_blas as cython_blas

            lib = ctypes.CDLL(cython_blas.__file__)
        except (ImportError, OSError):
            return None
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("", "64_"):
                try:
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}")
                    set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}")
                except AttributeError:
                    continue
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                _blas = (get, set_)
                break
            if _blas:
                break
    return _blas or None


def blas_threads():
    """Threads SciPy's BLAS may use now (1 when unknown)."""
    blas = _openblas_threads()
    return max(1, blas[0]()) if blas else 1


def run_directions(calls, multiply_adds):
    """Run the kernel calls of a layer's directions (one or two callables);
    two of them run on two threads when that pays off (see module doc)."""
    if len(calls) == 1:
        calls[0]()
        return
    blas = _openblas_threads()
    if (len(calls) != 2 or multiply_adds < MIN_MULTIPLY_ADDS or not blas or blas[0]() < 2
            or not _worker_lock.acquire(blocking=False)):
        for call in calls:
            call()
        return
    global _executor
    try:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gru_cy")
        threads = blas[0]()
        blas[1](1)
        try:
            future = _executor.submit(calls[1])
            try:
                calls[0]()
            finally:
                future.result()
        finally:
            blas[1](threads)
    finally:
        _worker_lock.release()
