"""Timing for the benchmarks: every library pinned to the same number of
threads, peers taking turns call by call, and how busy the machine is.

NumPy is the only dependency. gru_cy's own kernels are pinned with
gru_cy.set_num_threads; threadpoolctl, when installed, pins the BLAS
libraries (else only SciPy's OpenBLAS, the one gru_cy's BLAS backend calls,
is pinned).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from gru_cy.bench.peers import available_peers

__all__ = ["Threads", "blas_threads_controllable", "time_interleaved", "time_peers",
           "busy_fraction", "wait_until_quiet"]


class Threads:
    """Pin every library to n threads for the duration of a with block:
    gru_cy's kernels, the BLAS libraries, torch's intra-op pool."""

    def __init__(self, n):
        self.n = n
        self._limits = None
        self._gru_cy_threads = None

    def __enter__(self):
        import gru_cy

        self._gru_cy_threads = gru_cy.get_num_threads()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            threadpool_limits = None
        self.scipy_blas = None
        if threadpool_limits is not None:
            import scipy.linalg  # noqa: F401  (load SciPy's BLAS so it is limited too)

            self._limits = threadpool_limits(limits=self.n)
        else:
            # Without threadpoolctl, SciPy's OpenBLAS (the BLAS backend's) can still be set.
            from gru_cy._threads import _openblas_threads

            blas = _openblas_threads()
            if blas:
                self.scipy_blas = (blas, blas[0]())
                blas[1](self.n)
        # gru_cy's own pool (threadpoolctl limits it too when it lists gru_cy;
        # set it here whatever threadpoolctl does).
        gru_cy.set_num_threads(self.n)
        # Import the peers now: a torch imported later inside the block would
        # keep its default thread count (every core).
        available_peers()
        torch = sys.modules.get("torch")
        if torch is not None:
            self._torch_threads = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        import gru_cy

        if self._limits is not None:
            self._limits.restore_original_limits()
        if self._gru_cy_threads is not None:
            gru_cy.set_num_threads(self._gru_cy_threads)
        if self.scipy_blas is not None:
            blas, threads = self.scipy_blas
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


def time_interleaved(fns, budget, rounds=15, min_rounds=5, pause=0.0):
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


def time_peers(fns, budget, threads):
    """time_interleaved for peers pinned to threads threads: with more than
    one, each turn starts after a pause, so that the threads of the peer
    before (spinning after their last task) have let go of the cores."""
    if threads > 1:
        return time_interleaved(fns, budget, rounds=4, min_rounds=3, pause=0.25)
    return time_interleaved(fns, budget)


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
