"""Python threads: sharing one module for inference, training separate modules,
and the GIL being released by the kernels.

Results are compared bit for bit with serial runs of the same calls. Whether
two threads actually finish a fixed amount of work sooner than one is a
timing question, measured by benchmarks/threads_gil.py, not asserted here;
this file checks the structural fact behind it: while a kernel runs, other
Python threads run.
"""

import os
import sys
import threading
import time

import numpy as np
import pytest

import gru_cy
from helpers import THREAD_SPLITS, same_bits, threads

N_THREADS = 8


def _run_in_threads(n, target):
    """Run target(i) in n threads started together; re-raise the first error."""
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def body(i):
        try:
            barrier.wait(timeout=60)
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001  (reported to the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def _jobs(gru, n_jobs, seed):
    """Inference calls of several shapes: (x, h0, lengths)."""
    rng = np.random.default_rng(seed)
    L = gru.num_layers * gru.num_directions
    jobs = []
    for j in range(n_jobs):
        T, B = int(rng.integers(1, 40)), int(rng.integers(1, 6))
        x = rng.standard_normal((T, B, gru.input_size)).astype(gru.dtype)
        h0 = rng.standard_normal((L, B, gru.hidden_size)).astype(gru.dtype) if j % 2 else None
        lengths = rng.integers(0, T + 1, size=B) if j % 3 == 0 else None
        jobs.append((x, h0, lengths))
    return jobs


MODULES = [
    dict(input_size=16, hidden_size=32),
    dict(input_size=8, hidden_size=24, num_layers=2, bidirectional=True, dtype=np.float64),
    dict(input_size=12, hidden_size=16, num_layers=3, reset_after=False, bias=False),
]


@pytest.mark.parametrize("config", MODULES, ids=["uni", "bi2-f64", "l3-reset_before"])
def test_one_module_shared_by_8_threads_for_inference(config):
    gru = gru_cy.GRU(seed=0, **config)
    jobs_per_thread = [_jobs(gru, 6, seed=i) for i in range(N_THREADS)]
    serial = [[gru(x, h0, lengths) for x, h0, lengths in jobs] for jobs in jobs_per_thread]

    def work(i):
        results = []
        for _ in range(3):                              # repeat to overlap more calls
            results = [gru(x, h0, lengths) for x, h0, lengths in jobs_per_thread[i]]
        return results

    threaded = _run_in_threads(N_THREADS, work)
    for i in range(N_THREADS):
        for (out_s, h_s), (out_t, h_t) in zip(serial[i], threaded[i]):
            assert same_bits(out_s, out_t)
            assert same_bits(h_s, h_t)


def _blas_thread_counts():
    """Thread counts of every BLAS threadpoolctl sees (None without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return sorted((i["filepath"], i["num_threads"]) for i in threadpool_info()
                  if i.get("user_api") == "blas")


def _large_bidirectional(dtype):
    # Large enough (>= 2e6 multiply-adds per direction) that a layer may run its two
    # directions on two threads of its own, setting the BLAS thread count meanwhile,
    # while 8 callers compete for that.
    return gru_cy.GRU(32, 64, num_layers=2, bidirectional=True, dtype=dtype, seed=2)


def _large_jobs(dtype):
    rng = np.random.default_rng(2)
    return [(rng.standard_normal((50, 8, 32)).astype(dtype),
             rng.integers(0, 51, size=8) if i % 2 else None) for i in range(N_THREADS)]


def _train_once(gru, x, lengths):
    gru.zero_grad()
    out, h_n, tape = gru.forward_train(x, lengths=lengths)
    dx, dh0 = gru.backward(tape, np.ones_like(out))
    return [out, h_n, dx, dh0] + [gru.grads[k].copy() for k in sorted(gru.grads)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_large_bidirectional_module_shared_by_8_threads_for_inference(dtype):
    gru = _large_bidirectional(dtype)
    jobs = _large_jobs(dtype)
    blas_before = _blas_thread_counts()
    serial = [gru(x, lengths=lengths) for x, lengths in jobs]
    threaded = _run_in_threads(
        N_THREADS, lambda i: [gru(jobs[i][0], lengths=jobs[i][1]) for _ in range(3)])
    for i in range(N_THREADS):
        for out_t, h_t in threaded[i]:
            assert same_bits(out_t, serial[i][0])
            assert same_bits(h_t, serial[i][1])
    assert _blas_thread_counts() == blas_before, "the BLAS thread count was not restored"


def _train_large_in_threads(dtype):
    jobs = _large_jobs(dtype)
    serial = [_train_once(_large_bidirectional(dtype), x, lengths) for x, lengths in jobs]
    threaded = _run_in_threads(
        N_THREADS, lambda i: _train_once(_large_bidirectional(dtype), *jobs[i]))
    return serial, threaded


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_large_bidirectional_training_in_8_threads_matches_serial(dtype):
    # Bit for bit: a bidirectional layer's BLAS calls are single-threaded whether its
    # directions get the worker thread or not, so what the other threads do cannot
    # change how a weight-gradient GEMM (K = T*B) rounds.
    blas_before = _blas_thread_counts()
    for _ in range(2):
        serial, threaded = _train_large_in_threads(dtype)
        for s, t in zip(serial, threaded):
            for a, b in zip(s, t):
                assert same_bits(a, b)
    assert _blas_thread_counts() == blas_before, "the BLAS thread count was not restored"


def test_one_module_shared_by_8_threads_for_streaming():
    gru = gru_cy.GRU(6, 20, num_layers=2, seed=1)
    rng = np.random.default_rng(1)
    streams = [rng.standard_normal((30, 3, 6)).astype(np.float32) for _ in range(N_THREADS)]

    def run(x):
        h, ys = None, []
        for t in range(x.shape[0]):
            y, h = gru.step(x[t], h)
            ys.append(y)
        return np.stack(ys), h

    serial = [run(x) for x in streams]
    threaded = _run_in_threads(N_THREADS, lambda i: run(streams[i]))
    for (y_s, h_s), (y_t, h_t) in zip(serial, threaded):
        assert same_bits(y_s, y_t) and same_bits(h_s, h_t)


def _train(seed, steps=15):
    """A few SGD steps of one module on its own data: every result as bytes."""
    gru = gru_cy.GRU(5, 12, num_layers=2, bidirectional=seed % 2 == 1, dropout=0.25,
                     seed=seed)
    rng = np.random.default_rng(100 + seed)
    x = rng.standard_normal((20, 4, 5)).astype(np.float32)
    target = rng.standard_normal((20, 4, gru.num_directions * 12)).astype(np.float32)
    record = []
    for _ in range(steps):
        gru.zero_grad()
        out, h_n, tape = gru.forward_train(x, lengths=[20, 13, 7, 1])
        dx, dh0 = gru.backward(tape, out - target)
        for name, p in gru.params.items():
            p -= 0.05 * gru.grads[name]
        record += [out.tobytes(), dx.tobytes(), dh0.tobytes()]
    record += [gru.params[k].tobytes() for k in sorted(gru.params)]
    return record


def test_training_separate_modules_in_separate_threads():
    serial = [_train(seed) for seed in range(N_THREADS)]
    threaded = _run_in_threads(N_THREADS, _train)
    for seed in range(N_THREADS):
        assert len(serial[seed]) == len(threaded[seed])
        for a, b in zip(serial[seed], threaded[seed]):
            assert same_bits(a, b), f"module {seed} trained differently in a thread"


# -- the GIL ----------------------------------------------------------------------------------

def _progress_of_other_thread_during(call):
    """How many times another Python thread ran while call() was executing.

    The switch interval is raised so far that the interpreter never takes the
    GIL away from this thread by itself: the other thread can run only when
    this one releases the GIL (in C code, around a blocking call or a kernel).
    The other thread releases it on every pass of its loop.
    """
    counter = [0]
    stop = threading.Event()

    def other():
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    thread = threading.Thread(target=other, daemon=True)
    try:
        thread.start()
        while counter[0] == 0:        # the other thread is up and looping
            time.sleep(0.001)
        before = counter[0]
        call()
        progress = counter[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(old_interval)
        thread.join(timeout=60)
    return progress


def _long_calls(T):
    """Calls whose time is all in the kernels' time loops.

    B and H are tiny and x is already a contiguous array of the module's dtype,
    so the Python layer does no NumPy work large enough to release the GIL
    itself: any progress of the other thread happens inside a kernel.
    """
    gru = gru_cy.GRU(4, 8, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((T, 1, 4))
    _, _, tape = gru.forward_train(x)
    return {
        "forward": lambda: gru(x),
        "forward_train": lambda: gru.forward_train(x),
        "backward": lambda: gru.backward(tape),
    }


# valgrind runs one thread at a time and switches at points of its own choosing, so
# whether the other thread gets a turn during a call says nothing there.
_under_valgrind = pytest.mark.skipif(os.environ.get("GRU_CY_MEMCHECK") == "valgrind",
                                     reason="valgrind serialises threads")


@_under_valgrind
def test_harness_sees_a_call_that_holds_the_gil():
    # sum() over a range is a C loop that keeps the GIL: the other thread must not move.
    assert _progress_of_other_thread_during(lambda: sum(range(3_000_000))) == 0


@_under_valgrind
@pytest.mark.parametrize("name", ["forward", "forward_train", "backward"])
def test_kernels_release_the_gil(name):
    # Generous: make the call longer until the other thread gets a chance to run
    # (it needs only to be scheduled once while the kernel runs).
    for T in (20_000, 80_000, 320_000):
        if _progress_of_other_thread_during(_long_calls(T)[name]) > 0:
            return
    pytest.fail(f"no other Python thread ran during {name}: the GIL seems held by the kernel")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", [dict(), dict(num_layers=2, bidirectional=True)])
def test_backward_from_threads_on_one_module_adds_every_gradient(config, dtype):
    """Several threads calling backward on one module: grads end up as the
    sum of every call's gradients, none lost to a race on the shared arrays."""
    gru = gru_cy.GRU(16, 96, dtype=dtype, seed=3, **config)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((50, 16, 16)).astype(dtype)
    out, _, tape = gru.forward_train(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    gru.zero_grad()
    gru.backward(tape, dout)
    once = {k: v.copy() for k, v in gru.grads.items()}
    calls = 3
    gru.zero_grad()
    _run_in_threads(N_THREADS, lambda i: [gru.backward(tape, dout) for _ in range(calls)])
    n = N_THREADS * calls
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    for k, g in gru.grads.items():
        np.testing.assert_allclose(g, n * once[k], err_msg=k, **tol)


def test_a_module_with_its_gradient_lock_pickles_and_copies():
    import copy
    import pickle

    gru = gru_cy.GRU(3, 4, seed=0)
    out, _, tape = gru.forward_train(np.ones((2, 1, 3), np.float32))
    gru.backward(tape, np.ones_like(out))
    for clone in (pickle.loads(pickle.dumps(gru)), copy.deepcopy(gru)):
        out, _, tape = clone.forward_train(np.ones((2, 1, 3), np.float32))
        clone.backward(tape, np.ones_like(out))
        for k in gru.grads:
            np.testing.assert_allclose(clone.grads[k], 2 * gru.grads[k], rtol=1e-6, atol=1e-6)


def _scipy_wheel_blas(infos):
    """Independently of gru_cy: the BLAS entry whose file lies in SciPy's own
    folders (scipy.libs or scipy/.dylibs of a wheel install), or skip."""
    import scipy

    scipy_dir = os.path.realpath(os.path.dirname(scipy.__file__))
    folders = (scipy_dir, scipy_dir + ".libs")
    mine = [i for i in infos if i.get("user_api") == "blas"
            and os.path.dirname(os.path.realpath(i["filepath"])).startswith(folders)]
    if len(mine) != 1:
        pytest.skip("SciPy's BLAS is not a library of its own wheel here")
    return mine[0]


def test_info_names_the_blas_scipy_calls_not_numpys():
    """NumPy's wheels ship libscipy_openblas64_ too; `info` must report the
    one SciPy's cython_blas calls, whatever order threadpoolctl lists them in."""
    import subprocess

    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401

    from gru_cy.__main__ import _blas_info

    infos = threadpoolctl.threadpool_info()
    want = _scipy_wheel_blas(infos)
    described = f"{want['internal_api']} {want['version']} ({want['architecture']})"
    for order in (infos, infos[::-1]):
        original = threadpoolctl.threadpool_info
        threadpoolctl.threadpool_info = lambda order=order: order
        try:
            assert _blas_info()[0] == described
        finally:
            threadpoolctl.threadpool_info = original
    run = subprocess.run([sys.executable, "-m", "gru_cy", "info"], capture_output=True,
                         text=True, timeout=300)
    assert f"for the BLAS backend): {described};" in run.stdout, run.stdout + run.stderr


def _blas_count():
    from gru_cy._threads import _openblas_threads

    blas = _openblas_threads()
    if not blas:
        pytest.skip("SciPy's BLAS is not an OpenBLAS whose thread count gru_cy can read")
    return blas[0]


def test_other_threads_blas_count_is_not_lowered_while_gru_cy_runs():
    """While bidirectional layers run in one thread, another thread always sees
    the BLAS thread count the user set."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    get = _blas_count()
    gru = gru_cy.GRU(32, 64, num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((100, 16, 32)).astype(np.float32)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        if get() != 2:
            pytest.skip("the BLAS cannot be set to two threads here")
        done = threading.Event()
        seen = set()

        def run():
            try:
                for _ in range(5):
                    out, _, tape = gru.forward_train(x)
                    gru.backward(tape, out)
                    gru(x)
            finally:
                done.set()

        worker = threading.Thread(target=run)
        worker.start()
        while not done.is_set():
            seen.add(get())
        worker.join()
        seen.add(get())
    assert seen == {2}, f"another thread saw BLAS thread counts {sorted(seen)}"


def test_set_num_threads_checks_its_argument():
    before = gru_cy.get_num_threads()
    with pytest.raises(TypeError, match="n should be an integer"):
        gru_cy.set_num_threads(2.0)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        gru_cy.set_num_threads(0)
    assert gru_cy.get_num_threads() == before


def test_own_threads_give_the_one_thread_results():
    """set_num_threads(2) splits each call over the kernels' pool; every product element is
    still one chain computed by one thread, so the results are those of one thread, bit for
    bit. The BLAS count is untouched."""
    from gru_cy.kernels import _core

    gru = gru_cy.GRU(64, 128, num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((60, 16, 64)).astype(np.float32)
    results = []
    before = gru_cy.get_num_threads()
    try:
        for n in (1, 2):
            gru_cy.set_num_threads(n)
            out, h_n, tape = gru.forward_train(x)
            dx, dh0 = gru.backward(tape, out)
            results.append((out, h_n, dx, dh0))
    finally:
        gru_cy.set_num_threads(before)
    assert _core.pool_workers() >= 1, "set_num_threads(2) started no worker"
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn", "jordan"])
@pytest.mark.parametrize("lengths", [[40, 39, 3, 2, 1, 1, 1, 1, 1], [40, 40, 40, 40, 40, 40, 1, 1, 1],
                                     [40, 30, 20, 10, 9, 8, 7, 6, 5]])
def test_row_groups_balanced_by_length_give_the_one_thread_results(cell, lengths):
    """With sorted lengths the row groups share the work rather than the rows (a group of
    long sequences gets fewer rows), down to one row a group; which thread computes a row
    changes no bit of it, forward or backward."""
    make = {"gru": lambda: gru_cy.GRU(12, 40, seed=1),
            "lstm": lambda: gru_cy.LSTM(12, 40, proj_size=7, seed=1),
            "rnn": lambda: gru_cy.RNN(12, 40, seed=1),
            "jordan": lambda: gru_cy.Jordan(12, 40, 5, seed=1)}[cell]
    x = np.random.default_rng(2).standard_normal((40, len(lengths), 12)).astype(np.float32)
    results = []
    for n, rows, units in THREAD_SPLITS:
        m = make()
        with threads(n, rows, units):
            out, state, tape = m.forward_train(x, lengths=lengths)
            dx = m.backward(tape, out)[0]
            inferred = m(x, lengths=lengths)[0]
        results.append([out, dx, inferred] + [m.grads[k].copy() for k in sorted(m.grads)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert same_bits(a, b)


# ---- the kernels' thread pool ---------------------------------------------------------------

def _run_python(code, env=None, timeout=120):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=timeout)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


def test_default_is_the_cores_this_process_may_use():
    import os

    from gru_cy._threads import available_cores

    n = available_cores()
    assert 1 <= n <= (os.cpu_count() or n)
    env = dict(os.environ)
    env.pop("GRU_CY_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    assert int(_run_python("import gru_cy; print(gru_cy.get_num_threads())", env)) == n
    if hasattr(os, "sched_setaffinity"):
        # Restricted to one core: one thread.
        code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
                "import gru_cy; print(gru_cy.get_num_threads())")
        assert _run_python(code, env) == "1"


def test_the_environment_variable_sets_the_default():
    import os

    env = dict(os.environ, GRU_CY_NUM_THREADS="3")
    env.pop("OMP_NUM_THREADS", None)
    assert _run_python("import gru_cy; print(gru_cy.get_num_threads())", env) == "3"
    env["GRU_CY_NUM_THREADS"] = "1"
    assert _run_python("import gru_cy; print(gru_cy.get_num_threads())", env) == "1"
    env["OMP_NUM_THREADS"] = "5"               # gru_cy's own variable comes first
    assert _run_python("import gru_cy; print(gru_cy.get_num_threads())", env) == "1"


def test_omp_num_threads_sets_the_default_without_gru_cys_own():
    # As Dask's nanny starts each worker process with OMP_NUM_THREADS=1.
    import os

    from gru_cy._threads import available_cores

    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("GRU_CY_NUM_THREADS", None)
    assert _run_python("import gru_cy; print(gru_cy.get_num_threads())", env) == "1"
    env["OMP_NUM_THREADS"] = "4096"            # never more than the cores
    assert int(_run_python("import gru_cy; print(gru_cy.get_num_threads())", env)) == \
        available_cores()
    env["OMP_NUM_THREADS"] = "lots"            # ignored
    assert int(_run_python("import gru_cy; print(gru_cy.get_num_threads())", env)) == \
        available_cores()


def test_threadpoolctl_lists_and_limits_gru_cy():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not hasattr(threadpoolctl, "register"):
        pytest.skip("this threadpoolctl takes no controllers of other libraries")
    before = gru_cy.get_num_threads()
    try:
        gru_cy.set_num_threads(2)
        mine = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "gru_cy"]
        assert len(mine) == 1 and mine[0]["num_threads"] == 2
        with threadpoolctl.threadpool_limits(1):
            assert gru_cy.get_num_threads() == 1
        assert gru_cy.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(1, user_api="gru_cy"):
            assert gru_cy.get_num_threads() == 1
    finally:
        gru_cy.set_num_threads(before)


def test_a_forked_child_runs_threaded_calls():
    import os

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    code = """
import os, numpy as np, gru_cy
gru_cy.set_num_threads(2)
gru = gru_cy.GRU(64, 128, seed=0)
x = np.random.default_rng(0).standard_normal((50, 32, 64)).astype(np.float32)
want = gru(x)[0]                         # the pool runs in the parent
pid = os.fork()
if pid == 0:
    ok = np.array_equal(gru(x)[0], want)   # and in the child, from a fresh pool
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    assert _run_python(code, timeout=60) == "0"


def test_an_idle_process_uses_no_cpu():
    """After threaded calls the pool's threads spin briefly, then sleep."""
    code = """
import time, resource, numpy as np, gru_cy
gru_cy.set_num_threads(2)
gru = gru_cy.GRU(64, 128, seed=0)
x = np.random.default_rng(0).standard_normal((50, 32, 64)).astype(np.float32)
for _ in range(3):
    gru(x)
time.sleep(0.2)
r0 = resource.getrusage(resource.RUSAGE_SELF)
time.sleep(1.0)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime))
"""
    pytest.importorskip("resource")
    assert float(_run_python(code, timeout=60)) < 0.05


def test_python_threads_calling_one_module_at_once_agree():
    """Several Python threads call one module: one call takes the pool, the others run on
    their own threads; every result is the serial one."""
    from concurrent.futures import ThreadPoolExecutor

    gru = gru_cy.GRU(32, 96, num_layers=2, seed=0)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((40, 24, 32)).astype(np.float32) for _ in range(8)]
    before = gru_cy.get_num_threads()
    try:
        gru_cy.set_num_threads(2)
        serial = [gru(x) for x in xs]
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(gru, xs))
    finally:
        gru_cy.set_num_threads(before)
    for (a, b), (c, d) in zip(serial, threaded):
        assert np.array_equal(a, c) and np.array_equal(b, d)
