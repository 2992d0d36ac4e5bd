"""gru_cy's compute settings: the threads a call may use, where the products
run (set_backend), and the BLAS's thread count, read only.

The kernels run each call on a pool of threads of their own (C, in
gru_cy.kernels): a layer's work splits along the rows of the batch and along
the units, each output element computed by one thread, so results do not
depend on the thread count. By default a call may use every core this
process may run on (its CPU affinity and cgroup CPU quota), or
OMP_NUM_THREADS when that is set (as Dask's nanny sets it for each worker
process); GRU_CY_NUM_THREADS sets another default, set_num_threads(n) changes it at
run time and threadpoolctl's threadpool_limits limits it as it limits BLAS
and OpenMP (gru_cy registers a controller for itself with threadpoolctl
when that is installed: threadpool_info() lists it with user_api
"gru_cy").

gru_cy never changes the BLAS's thread count. Its products run on its own
kernels; with the BLAS backend (gru_cy.set_backend("blas")) they run on
SciPy's BLAS and its threads instead, and gru_cy's own threads stay at one
so that the two never oversubscribe the cores.
"""

from __future__ import annotations

import ctypes
import os

from gru_cy.kernels import _core

_blas = None                        # (get, set) of SciPy's OpenBLAS thread count, or False


def available_cores():
    """The cores this process may use: its CPU affinity, bounded by its
    cgroup's CPU quota (containers), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, quota)
    return max(1, n)


def _cgroup_quota():
    """floor(quota / period) of the cgroup's CPU limit, or None without one."""
    candidates = (("/sys/fs/cgroup/cpu.max", None),
                  ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
    for path, period_path in candidates:
        try:
            with open(path) as f:
                text = f.read().split()
            if period_path is None:
                quota, period = text[0], text[1] if len(text) > 1 else "100000"
            else:
                with open(period_path) as f:
                    period = f.read().strip()
                quota = text[0]
            if quota in ("max", "-1"):
                return None
            return max(1, int(quota) // max(1, int(period)))
        except (OSError, ValueError, IndexError):
            continue
    return None


def _default_threads():
    """GRU_CY_NUM_THREADS, else OMP_NUM_THREADS (the variable process managers
    such as Dask's nanny set to share the cores out among processes; PyTorch
    reads it too), else the cores this process may use. A value that is not
    a positive integer is ignored."""
    for name in ("GRU_CY_NUM_THREADS", "OMP_NUM_THREADS"):
        env = os.environ.get(name, "").strip()
        try:
            n = int(env) if env else 0
        except ValueError:
            n = 0
        if n >= 1:
            return min(n, available_cores()) if name == "OMP_NUM_THREADS" else n
    return available_cores()


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
    """Let each gru_cy call run on up to n threads (the default: the cores
    this process may use, or GRU_CY_NUM_THREADS). Results are the same bits
    whatever n is."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n should be an integer, got {type(n).__name__}: {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _core.set_threads(n)


def get_num_threads():
    """The threads a gru_cy call may use (see set_num_threads)."""
    return _core.get_threads()


_BACKENDS = ("gru_cy", "blas")


def set_backend(name):
    """Where the recurrent modules' products run: "gru_cy" (the default: its
    own kernels, with the reproducibility guarantees of docs/architecture.md)
    or "blas" (SciPy's BLAS, with its own threads; gru_cy's then stay at one
    per call). The environment variable GRU_CY_BACKEND sets it at import."""
    if name not in _BACKENDS:
        raise ValueError(f"backend must be 'gru_cy' or 'blas', got {name!r}")
    _core.set_backend(name)


def get_backend():
    """Where the products run: "gru_cy" or "blas" (see set_backend)."""
    return _core.backend()


def _register_threadpoolctl():
    """Make threadpoolctl see gru_cy's thread count (threadpool_info lists it,
    threadpool_limits limits it), when threadpoolctl is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register") or not hasattr(threadpoolctl, "LibController"):
        return

    class GruCyController(threadpoolctl.LibController):
        user_api = "gru_cy"
        internal_api = "gru_cy"
        filename_prefixes = ("_core",)
        check_symbols = ("gru_cy_set_num_threads",)

        def get_num_threads(self):
            get = getattr(self.dynlib, "gru_cy_get_num_threads", None)
            return None if get is None else get()

        def set_num_threads(self, num_threads):
            set_ = getattr(self.dynlib, "gru_cy_set_num_threads", None)
            if set_ is not None:
                set_(ctypes.c_int(int(num_threads)))

        def get_version(self):
            from gru_cy._version import __version__
            return __version__

    threadpoolctl.register(GruCyController)


_core.set_threads(_default_threads())
_backend_env = os.environ.get("GRU_CY_BACKEND", "").strip()
if _backend_env in _BACKENDS:
    _core.set_backend(_backend_env)
_register_threadpoolctl()
