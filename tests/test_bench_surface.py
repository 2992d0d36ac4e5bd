"""The benchmark package (gru_cy.bench) is split by concern (cases, timing, peers,
report, runner) behind one public surface, and the scripts in benchmarks/ use that
surface only: every name they take from gru_cy.bench is public (listed in its
__all__) and exists. Nothing here times anything."""

import ast
import glob
import os

import pytest

import gru_cy.bench as bench

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")


def _names_taken_from_bench(path):
    """Names a script imports from gru_cy.bench, or reads as attributes of it."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names, aliases = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "gru_cy.bench":
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "gru_cy":
            aliases.update(a.asname or a.name for a in node.names if a.name == "bench")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gru_cy.bench."):
            names.update(f"{node.module}.{a.name}" for a in node.names)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases):
            names.add(node.attr)
    return names


def test_every_public_name_exists():
    for name in bench.__all__:
        assert not name.startswith("_") and hasattr(bench, name), name


def test_benchmark_scripts_use_the_public_surface():
    scripts = sorted(glob.glob(os.path.join(BENCHMARKS, "*.py")))
    if not scripts:
        pytest.skip("benchmarks/ is not part of this installation")
    used = {}
    for path in scripts:
        for name in _names_taken_from_bench(path):
            used.setdefault(name, []).append(os.path.basename(path))
    assert used, "no script uses gru_cy.bench"
    bad = {name: files for name, files in used.items() if name not in bench.__all__}
    assert not bad, f"benchmark scripts use names outside gru_cy.bench's public surface: {bad}"
