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
    module's kernel call (_kernel_layer_backward for the recurrent modules,
    _kernel_backward for the cells) is wrapped to count them and to sleep
    inside, so that calls nothing serialises would overlap."""
    import threading
    import time

    attr = ("_kernel_layer_backward" if hasattr(module, "_kernel_layer_backward")
            else "_kernel_backward")
    kernel = getattr(module, attr)
    running, most = [0], [0]

    def watched(*args):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.002)
        result = kernel(*args)
        running[0] -= 1
        return result

    setattr(module, attr, watched)
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
    delattr(module, attr)
    return most[0]


class threads:
    """Run the block with gru_cy's kernels on n threads, every layer split
    into (rows, units) groups as far as its shape allows (0, 0: the kernels'
    own rule) and calls threaded whatever their size (min_work=0); restores
    the setting afterwards. The results must not change with it."""

    def __init__(self, n, rows=0, units=0, min_work=0.0):
        self.n, self.rows, self.units, self.min_work = n, rows, units, min_work

    def __enter__(self):
        import gru_cy
        from gru_cy.kernels import _core

        self._saved = gru_cy.get_num_threads()
        gru_cy.set_num_threads(self.n)
        _core.force_split(self.rows, self.units, self.min_work)
        return self

    def __exit__(self, *exc):
        import gru_cy
        from gru_cy.kernels import _core

        _core.force_split()
        gru_cy.set_num_threads(self._saved)


# Thread configurations the exactness tests run under: one thread, rows
# split, units split, both.
THREAD_SPLITS = [(1, 0, 0), (2, 2, 1), (2, 1, 2), (4, 2, 2), (3, 3, 1)]
