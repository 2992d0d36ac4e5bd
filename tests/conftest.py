"""Session set-up: make sure the suite tests a built gru_cy, and say which.

The suite runs against an installed gru_cy: a wheel, ``pip install .``, or an
editable install (whose package folder is the checkout's ``gru_cy/`` with its
compiled modules built in place). Plain ``pytest tests`` never puts the
checkout root on sys.path (only ``tests/`` itself, for ``reference.py``), but
``python -m pytest`` adds the current folder: started from the checkout root,
the bare ``gru_cy/`` source folder, which has no compiled modules, would then
shadow the installed package. When that happens this module drops the
checkout root from sys.path and imports the installed package instead; if
there is none, it stops the session with an error that says what to do.

GRU_CY_TEST_INSTALLED=1 (set by .ci/run) also requires that the package was
not imported from a source checkout at all, so that CI's installed-wheel run
cannot silently test the source tree.

Under CI=true hypothesis runs derandomised (the same examples on every run)
and keeps no example database, so CI is reproducible.
"""

import importlib
import os
import sys


TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(TESTS_DIR)
_COMPILED = tuple(f"gru_cy.kernels.{name}" for name in ("_core",))


def _real(path):
    return os.path.normcase(os.path.realpath(path))


def _package_dir(module):
    return os.path.dirname(_real(module.__file__))


def _drop_gru_cy_modules():
    for name in list(sys.modules):
        if name == "gru_cy" or name.startswith("gru_cy."):
            del sys.modules[name]
    importlib.invalidate_caches()


def _import_built_gru_cy():
    """Import gru_cy with its compiled modules, all from one package folder
    (the compiled modules in its kernels/).

    Returns (module, note); note says how the package was found when that
    needed a fallback.
    """
    problem = None
    try:
        gru_cy, problem = _import_and_check()
        if problem is None:
            return gru_cy, None
    except ImportError as exc:
        problem = f"importing gru_cy failed: {exc!r}"

    # Retry without the checkout root on sys.path ("" is the current folder).
    root = _real(CHECKOUT)
    kept = [p for p in sys.path if _real(p or os.getcwd()) != root]
    if len(kept) == len(sys.path):
        raise RuntimeError(_advice(problem))
    sys.path[:] = kept
    _drop_gru_cy_modules()
    try:
        gru_cy, again = _import_and_check()
    except ImportError as exc:
        raise RuntimeError(_advice(f"{problem}; without the checkout on sys.path: {exc!r}"))
    if again is not None:
        raise RuntimeError(_advice(f"{problem}; without the checkout on sys.path: {again}"))
    return gru_cy, f"the checkout root was on sys.path ({problem}); using the installed package"


def _import_and_check():
    """(gru_cy, None), or (gru_cy, problem) when a compiled module does not
    come from the package's own kernels/ folder."""
    gru_cy = importlib.import_module("gru_cy")
    compiled = [importlib.import_module(name) for name in _COMPILED]
    here = _package_dir(gru_cy)
    kernels = os.path.join(here, "kernels")
    strays = [m.__file__ for m in compiled if _package_dir(m) != kernels]
    if not strays:
        return gru_cy, None
    return gru_cy, (f"gru_cy was imported from {here} but its compiled modules from "
                    f"{', '.join(strays)}")


def _advice(problem):
    return (
        f"{problem}\n"
        "The tests need a built gru_cy. Install it first, then run pytest:\n"
        '    pip install ".[test]" && pytest tests          (installed, as CI does)\n'
        "    pip install -e . --no-build-isolation           (editable, for development)\n"
        "and prefer `pytest tests` to `python -m pytest`, which puts the current folder "
        "(the source checkout) on sys.path."
    )


def _from_checkout(package_dir):
    """True when the package folder sits in a source tree (next to setup.py)."""
    return os.path.exists(os.path.join(os.path.dirname(package_dir), "setup.py"))


gru_cy, _IMPORT_NOTE = _import_built_gru_cy()
PACKAGE_DIR = _package_dir(gru_cy)

if os.environ.get("GRU_CY_TEST_INSTALLED", "0") not in ("", "0") and _from_checkout(PACKAGE_DIR):
    raise RuntimeError(
        f"GRU_CY_TEST_INSTALLED=1 but gru_cy was imported from the source tree at "
        f"{PACKAGE_DIR}; the installed package must be tested. Run pytest from outside "
        "the checkout, without an editable install in the environment.")


def pytest_report_header(config):
    kind = "source checkout (editable or in-place build)" if _from_checkout(PACKAGE_DIR) \
        else "installed"
    lines = [f"gru_cy {gru_cy.__version__} from {PACKAGE_DIR} [{kind}]"]
    if _IMPORT_NOTE:
        lines.append(f"gru_cy: {_IMPORT_NOTE}")
    return lines


try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test extra; its tests skip without it
    pass
else:
    settings.register_profile(
        "ci", derandomize=True, database=None, deadline=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("dev", deadline=None, print_blob=True)
    settings.load_profile(os.environ.get(
        "HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI", "") not in ("", "0", "false") else "dev"))
