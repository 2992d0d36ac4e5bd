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
