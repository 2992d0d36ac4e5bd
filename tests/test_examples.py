"""The examples/ scripts name a missing package with its install command (no
traceback), and the `examples` extra lists what they import."""

import importlib.util
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
# What each script imports beyond gru_cy and NumPy.
NEEDS = {"classify_digits.py": {"sklearn"}, "forecast_sunspots.py": {"sklearn", "statsmodels"}}

# Run a script as `python script.py` would, with some modules reported missing.
_RUN_WITHOUT = """
import importlib.util, runpy, sys
hidden = set(sys.argv[2].split(","))
find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name in hidden else find_spec(name, *a)
sys.path.insert(0, sys.argv[3])
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("script,hidden,package", [
    ("classify_digits.py", "sklearn", "scikit-learn"),
    ("forecast_sunspots.py", "statsmodels", "statsmodels"),
    ("forecast_sunspots.py", "sklearn,statsmodels", "scikit-learn and statsmodels"),
])
def test_a_missing_package_is_named_with_its_install_command(script, hidden, package):
    path = os.path.join(EXAMPLES, script)
    if not os.path.exists(path):
        pytest.skip("examples/ is not part of this installation")
    # A package the script needs that is missing anyway would be named too.
    absent = sorted(m for m in NEEDS[script] - set(hidden.split(","))
                    if importlib.util.find_spec(m) is None)
    if absent:
        pytest.skip(f"{', '.join(absent)} not installed here: the message would name it too")
    run = subprocess.run([sys.executable, "-c", _RUN_WITHOUT, path, hidden, EXAMPLES],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert f"{script} needs {package}, which is not installed" in run.stderr
    assert 'pip install "gru_cy[examples]"' in run.stderr


def test_the_examples_extra_lists_what_the_examples_import():
    tomllib = pytest.importorskip("tomllib")
    pyproject = os.path.join(os.path.dirname(EXAMPLES), "pyproject.toml")
    if not os.path.exists(pyproject):
        pytest.skip("pyproject.toml is not part of this installation")
    with open(pyproject, "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = {req.split(">")[0].split("=")[0].split("[")[0].strip() for req in extras["examples"]}
    assert {"scikit-learn", "statsmodels"} <= names
