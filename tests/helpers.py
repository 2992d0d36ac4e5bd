"""Small comparison helpers shared by several test files."""

import numpy as np


def same_bits(a, b):
    """Bitwise equality as a plain bool (a failing assert then reports which
    result differs instead of diffing megabytes of bytes)."""
    if isinstance(a, (bytes, str)) or isinstance(b, (bytes, str)):
        return type(a) is type(b) and a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_same_modules(a, b):
    """Same repr (configuration) and the same parameters, names and order."""
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def backward_calls_take_turns(module, backward, n_threads=4, calls=5):
    """Run backward() calls on one module from several threads at once; return
    the largest number of its kernel calls seen running together. The
    module's _kernel_backward is wrapped to count them and to sleep inside,
    so that calls nothing serialises would overlap."""
    import threading
    import time

    kernel = module._kernel_backward
    running, most = [0], [0]

    def watched(*args):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.002)
        kernel(*args)
        running[0] -= 1

    module._kernel_backward = watched
    barrier = threading.Barrier(n_threads)

    def work():
        barrier.wait()
        for _ in range(calls):
            backward()

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del module._kernel_backward
    return most[0]
