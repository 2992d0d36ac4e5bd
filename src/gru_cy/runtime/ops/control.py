"""If: planned by runtime._plan (a folded condition inlines its branch); listed here so that
the table names every operator the runtime runs."""

from __future__ import annotations

from gru_cy.runtime._registry import ANY, GRAPH, op


@op("If", attrs={"then_branch": (GRAPH, None), "else_branch": (GRAPH, None)},
    outputs=(1, ANY))
def build_if(ctx):
    raise AssertionError("If nodes are planned by runtime._plan")  # pragma: no cover
