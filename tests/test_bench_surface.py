"""The benchmark package (gru_cy.bench) is split by concern (cases, timing, peers,
report, runner) behind one public surface, and the scripts in benchmarks/ use that
surface only: every name they take from gru_cy.bench is public (listed in its
__all__) and exists. The yardstick of every table (a row's share of one core's
multiply-add peak times the threads) and what the environment records about
how gru_cy ran are checked on given numbers: nothing here times anything."""

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


def test_peak_share_is_gflops_over_peak_times_threads():
    assert bench.peak_share(50.0, 100.0, 1) == 0.5
    assert bench.peak_share(50.0, 100.0, 2) == 0.25
    # float64: a vector multiply-add holds half as many lanes
    assert bench.peak_share(25.0, 100.0, 1, "float64") == 0.5
    assert bench.peak_share(None, 100.0, 1) is None
    assert bench.peak_share(50.0, None, 1) is None


def test_environment_records_how_gru_cy_ran(monkeypatch):
    from gru_cy.kernels import _core

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    env = bench.environment(peak=100.0)
    assert env["fma_peak_gflops"] == 100.0
    assert env["openblas_coretype"] == "Haswell"
    assert env["gru_cy_isa"] == _core.isa()
    assert env["gru_cy_backend"] in ("gru_cy", "blas")
    assert env["gru_cy_threads"] >= 1
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert bench.environment()["openblas_coretype"] is None


def test_tables_show_the_share_of_peak():
    row = dict(case="T=2 B=1 I=4 H=4", mode="forward", threads=2, seconds=1e-3, gflops=20.0,
               ratio=1.0, peak_share=0.1)
    doc = dict(environment=dict(fma_peak_gflops=100.0), threads=[2], notes=[],
               results=[dict(row, peer="gru_cy"), dict(row, peer="torch", ratio=3.0)])
    md = bench.format_markdown(doc)
    assert "% of peak" in md and "| 10% |" in md and "3.00x" in md
    text = bench.format_table(doc["results"], 2)
    assert "10%" in text and "floor" not in text
