"""What an installed gru_cy ships: version, typing marker and stubs that match
the compiled modules."""

import ast
import importlib
import importlib.metadata
import inspect
import os
import re

import pytest

import gru_cy

PACKAGE_DIR = os.path.dirname(os.path.abspath(gru_cy.__file__))


def test_version_is_pep440_and_matches_the_distribution_metadata():
    assert re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", gru_cy.__version__)
    try:
        installed = importlib.metadata.version("gru_cy")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gru_cy is importable but not installed (no distribution metadata)")
    assert installed == gru_cy.__version__


def test_py_typed_marker_ships():
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "py.typed"))


def _stub_functions(module_name):
    path = os.path.join(PACKAGE_DIR, "kernels", module_name + ".pyi")
    assert os.path.isfile(path), f"{module_name}.pyi does not ship next to the module"
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {node.name: [a.arg for a in node.args.args]
            for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("module_name", ["_core"])
def test_stubs_match_the_compiled_module(module_name):
    module = importlib.import_module(f"gru_cy.kernels.{module_name}")
    stubbed = _stub_functions(module_name)
    compiled = {name: obj for name, obj in vars(module).items()
                if callable(obj) and not isinstance(obj, type) and not name.startswith("__pyx")
                and getattr(obj, "__module__", None) == module.__name__}
    assert set(stubbed) == set(compiled), "functions in the stub and the module differ"
    for name, params in stubbed.items():
        actual = list(inspect.signature(compiled[name]).parameters)
        assert params == actual, f"{module_name}.{name}: stub {params}, compiled {actual}"
