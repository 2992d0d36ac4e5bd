"""The public API is typed ("Typing :: Typed"): a small user script
(tests/typing/user_script.py) passes ``mypy --strict`` against the package the
suite imports, and runs. Skipped when mypy is not installed (CI installs it and
also runs the check as a step of its own, after installing the wheel).
"""

import os
import subprocess
import sys

import pytest

import gru_cy

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "typing", "user_script.py")


def test_user_script_runs():
    run = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_user_script_passes_mypy_strict(tmp_path):
    pytest.importorskip("mypy")
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(gru_cy.__file__)))
    env = dict(os.environ)
    if os.path.basename(package_parent) not in ("site-packages", "dist-packages"):
        # A source checkout (built in place): point mypy at it; errors inside
        # the package are not the user's and are silenced, as for an
        # installed package.
        env["MYPYPATH"] = package_parent
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), SCRIPT],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
