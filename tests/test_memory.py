"""Memory: no leaks over many calls, and huge requests fail cleanly.

- 10,000 calls each of forward, forward_train + backward, and step leave the
  resident set size flat (a generous bound, far below what leaking any one
  array per call would cost).
- Requests for absurd sizes (parameters, inputs, states, gradients) raise
  MemoryError or ValueError instead of crashing. They run in a child process
  whose address space is capped, so that nothing here can use up the
  machine's memory whatever the kernel's overcommit policy.
"""

import ctypes
import ctypes.util
import gc
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gru_cy

CALLS = 10_000
# Leaking the smallest array handed to or made by a call (x below, 4 KiB)
# would add 40 MiB over CALLS calls; allocator noise stays far below this.
RSS_BOUND = 8 << 20
T, B, I, H = 4, 4, 32, 16

# scripts/memcheck.sh sets GRU_CY_MEMCHECK (asan, valgrind): under either, freed
# memory sits in a quarantine and shadow memory grows, so RSS says nothing.
rss_test = pytest.mark.skipif(os.environ.get("GRU_CY_MEMCHECK", "0") not in ("", "0"),
                              reason="RSS is meaningless under a memory checker")


def _rss():
    """Current resident set size in bytes (Linux's /proc; skips elsewhere, where
    only the peak is at hand and earlier tests' peaks would hide any growth)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pytest.skip("the current RSS is read from /proc/self/statm (Linux)")


def _load_malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_malloc_trim = _load_malloc_trim()


def _settle():
    """Collect garbage and give free heap pages back to the system (glibc), so
    that memory freed by earlier tests, still resident, cannot absorb a leak."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


def _growth(fn, calls=CALLS, warmup=300):
    for _ in range(warmup):
        fn()
    _settle()
    before = _rss()
    for _ in range(calls):
        fn()
    _settle()
    return _rss() - before


@rss_test
def test_rss_probe_sees_a_real_leak():
    # The measuring device itself: holding on to one 4 KiB array per call shows.
    kept = []
    growth = _growth(lambda: kept.append(np.ones(T * B * I)), warmup=0)
    assert growth > RSS_BOUND, f"the probe saw only {growth} bytes of a ~40 MiB leak"


def _module(**kwargs):
    return gru_cy.GRU(I, H, dtype=np.float64, seed=0, **kwargs)


def _x(seed=0):
    return np.random.default_rng(seed).standard_normal((T, B, I))


@rss_test
@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=2, bidirectional=True)],
                         ids=["uni", "bi2"])
def test_forward_does_not_leak(kwargs):
    gru, x = _module(**kwargs), _x()
    growth = _growth(lambda: gru(x, lengths=[4, 2, 0, 1]))
    assert growth < RSS_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB over {CALLS} calls"


@rss_test
@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=2, bidirectional=True,
                                                 reset_after=False, dropout=0.3)],
                         ids=["uni", "bi2"])
def test_forward_train_and_backward_do_not_leak(kwargs):
    gru, x = _module(**kwargs), _x()
    dout = np.ones((T, B, gru.num_directions * H))

    def train_step():
        out, h_n, tape = gru.forward_train(x, lengths=[4, 1, 3, 0])
        gru.backward(tape, dout, np.ones_like(h_n))

    growth = _growth(train_step)
    assert growth < RSS_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB over {CALLS} calls"


@rss_test
def test_step_does_not_leak():
    gru = _module(num_layers=2)
    x_t = _x()[0]
    state = [None]

    def one_step():
        _, state[0] = gru.step(x_t, state[0])

    growth = _growth(one_step)
    assert growth < RSS_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB over {CALLS} calls"


# -- huge requests --------------------------------------------------------------------------

_HUGE_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import gru_cy

    small = gru_cy.GRU(3, 4, num_layers=2, seed=0)
    small(np.ones((2, 1, 3), np.float32))          # BLAS buffers exist before the cap
    _, _, tape = small.forward_train(np.ones((2, 1, 3), np.float32))
    with open("/proc/self/status") as f:
        vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize")][0]
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))

    def huge(shape, dtype=np.float32):
        # A read-only view of one element: any size, no memory behind it.
        return np.broadcast_to(np.zeros((), dtype), shape)

    cases = {
        "hidden_size": lambda: gru_cy.GRU(3, 2**40),
        "input_size": lambda: gru_cy.GRU(2**40, 4),
        "hidden_size_2^29": lambda: gru_cy.GRU(3, 2**29),
        "num_layers": lambda: gru_cy.GRU(3, 4, num_layers=2**40),
        "x_T": lambda: small(huge((2**40, 1, 3))),
        "x_T_B_over_int32": lambda: small(huge((2**16, 2**16, 3))),
        "x_B": lambda: small(huge((1, 2**40, 3))),
        "x_empty_T_huge_B": lambda: small(huge((0, 2**40, 3))),
        "x_train": lambda: small.forward_train(huge((2**33, 1, 3))),
        "h0": lambda: small(np.ones((2, 1, 3), np.float32), huge((2, 2**40, 4))),
        "lengths": lambda: small(np.ones((2, 1, 3), np.float32), None, huge((2**40,), np.int64)),
        "step_x": lambda: small.step(huge((2**40, 3))),
        "step_h": lambda: small.step(np.ones((1, 3), np.float32), huge((2, 2**40, 4))),
        "dout": lambda: small.backward(tape, huge((2**40, 1, 4))),
        "dh_n": lambda: small.backward(tape, None, huge((2, 2**40, 4))),
        "state_dict": lambda: small.load_state_dict(
            {k: huge((2**40,) + v.shape) for k, v in small.params.items()}),
    }
    only = sys.argv[1:] or list(cases)
    outcome = {}
    for name in only:
        try:
            cases[name]()
            outcome[name] = "returned"
        except (MemoryError, ValueError, TypeError) as exc:
            outcome[name] = type(exc).__name__
        except Exception as exc:
            outcome[name] = f"unexpected {type(exc).__name__}: {exc}"
    json.dump(outcome, sys.stdout)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="needs an enforced address-space limit (RLIMIT_AS)")
def test_huge_requests_raise_memory_or_value_error(tmp_path):
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(gru_cy.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["OPENBLAS_NUM_THREADS"] = "1"   # small, fixed BLAS buffers under the cap
    proc = subprocess.run([sys.executable, "-c", _HUGE_SCRIPT], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, (
        f"the child process died (exit {proc.returncode}) on a huge request:\n{proc.stderr}")
    outcome = json.loads(proc.stdout)
    bad = {name: what for name, what in outcome.items()
           if what not in ("MemoryError", "ValueError")}
    # A zero-step call over a huge batch needs huge states: an error, or (if the
    # memory were there) an empty result.
    if bad.get("x_empty_T_huge_B") == "returned":
        del bad["x_empty_T_huge_B"]
    assert not bad, f"huge requests that did not raise MemoryError/ValueError: {bad}"
