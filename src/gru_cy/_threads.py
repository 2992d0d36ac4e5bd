"""Two independent kernel calls on two threads.

The two directions of a bidirectional layer are independent, and so are
two halves of a batch (RNNBase._batch_split); the kernels release the GIL
for their whole time loop, so one call can run on a worker thread while
the calling thread runs the other.

gru_cy never changes the BLAS's thread count. SciPy's OpenBLAS has only a
process-wide setting (its openblas_set_num_threads_local, in the pthreads
build SciPy ships, sets the same process-wide count: measured, a second
thread sees the change), so lowering it for gru_cy's own calls would also
throttle every other thread's BLAS calls, and restoring a snapshot
afterwards would undo any limit the user set in between (threadpoolctl)
or leave the process at one thread for good.

gru_cy's own threads are therefore a separate budget, set_num_threads(n),
1 by default. Two calls of a layer run on two threads only when it is 2 or
more and the layer is large enough to pay for the hand-over (about
20-70 us). Each of those threads calls the BLAS, whose threads the user
sets. Measured on 2 cores (inference, B = 8 to 128): gru_cy's two threads
over a two-threaded OpenBLAS were 1.02-1.6x slower than OpenBLAS's two
threads alone (the threads oversubscribe the cores); over a one-thread
BLAS they ran at 0.7-1.08x the speed of OpenBLAS's two threads alone. So
the default leaves the parallelism to the BLAS; set_num_threads(2) with a
one-thread BLAS (threadpoolctl) is for programs that keep the BLAS at one
thread for other reasons. Never both.
Results can differ from a one-thread run in the last bits, as OpenBLAS's
threaded products do.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Multiply-adds of one direction (T * B * 3H * (I + H)) below which a
# second thread costs more than it saves.
MIN_MULTIPLY_ADDS = 2_000_000

_worker_lock = threading.Lock()     # held by the layer using the worker
_num_threads = 1                    # gru_cy's own thread budget (set_num_threads)
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


def blas_library_path():
    """Real path of the shared library that scipy.linalg.cython_blas calls,
    or None when it cannot be told (no dladdr, a BLAS we do not know).

    The symbols are looked up through cython_blas's own handle, so the
    dynamic linker resolves them as SciPy's calls are resolved; dladdr then
    names the file that holds them. (Another BLAS may be loaded in the same
    process, e.g. NumPy's own OpenBLAS, whose file name also says scipy.)
    """
    try:
        import scipy.linalg.cython_blas as cython_blas

        lib = ctypes.CDLL(cython_blas.__file__)
        dladdr = ctypes.CDLL(None).dladdr
    except (ImportError, OSError, AttributeError, TypeError):
        return None

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    dladdr.restype = ctypes.c_int
    names = [f"{prefix}_get_num_threads{suffix}" for prefix in ("scipy_openblas", "openblas")
             for suffix in ("", "64_")] + ["scipy_sgemm_", "scipy_sgemm_64_", "sgemm_"]
    for name in names:
        try:
            address = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        except AttributeError:
            continue
        found = DlInfo()
        if address and dladdr(address, ctypes.byref(found)) and found.dli_fname:
            path = os.fsdecode(found.dli_fname)
            if os.path.realpath(path) != os.path.realpath(cython_blas.__file__):
                return os.path.realpath(path)
    return None


def scipy_blas_entry(infos):
    """The entry of threadpoolctl's threadpool_info() for the library SciPy's
    cython_blas calls (others, such as NumPy's own OpenBLAS, may be loaded
    too, with "scipy" in their file names), or None when none matches."""
    path = blas_library_path()
    blas = [i for i in infos if i.get("user_api") == "blas"]
    if path is not None:
        for i in blas:
            if os.path.realpath(i.get("filepath", "")) == path:
                return i
        return None
    # dladdr unavailable: SciPy's wheels keep their BLAS in SciPy's folders
    # (scipy.libs, scipy/.dylibs), NumPy's in NumPy's.
    mine = [i for i in blas
            if "scipy" in os.path.basename(os.path.dirname(i.get("filepath", "")))]
    return mine[0] if len(mine) == 1 else None


def blas_threads():
    """Threads the user allows SciPy's BLAS (1 when unknown)."""
    blas = _openblas_threads()
    if not blas:
        return 1
    return max(1, blas[0]())


def set_num_threads(n):
    """Let gru_cy run up to n threads of its own (1, the default, or 2: the
    two directions of a bidirectional layer, or two halves of a large batch,
    at once). The BLAS's own thread count is left as it is: pair n = 2 with
    a one-thread BLAS (threadpoolctl.threadpool_limits(1, user_api="blas"))
    so that the threads do not oversubscribe the cores."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n should be an integer, got {type(n).__name__}: {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _num_threads = n


def get_num_threads():
    """gru_cy's own thread budget (see set_num_threads)."""
    return _num_threads


def thread_budget():
    """Threads gru_cy may run a layer's calls on (its own budget)."""
    return _num_threads


def run_directions(calls, multiply_adds):
    """Run the kernel calls of a layer's directions (one or two callables);
    two of them run on two threads when that pays off (see module doc)."""
    global _executor
    if (len(calls) == 2 and multiply_adds >= MIN_MULTIPLY_ADDS and thread_budget() > 1
            and _worker_lock.acquire(blocking=False)):
        try:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gru_cy")
            future = _executor.submit(calls[1])
            try:
                calls[0]()
            finally:
                future.result()
        finally:
            _worker_lock.release()
        return
    for call in calls:
        call()


def _connect_kernels():
    """Give the kernels SciPy's OpenBLAS get_num_threads, which they ask
    before running the per-step products on packed weights in one thread
    (kernels/_blas.pyx, packed_pays); without it they assume one thread."""
    from gru_cy.kernels import _blas as kernels_blas

    blas = _openblas_threads()
    address = ctypes.cast(blas[0], ctypes.c_void_p).value if blas else None
    kernels_blas.set_thread_query(address or 0)


_connect_kernels()
