"""The operators of InferenceSession, one module per family; importing this package fills
``runtime._registry.OPS``."""

from gru_cy.runtime.ops import control, elementwise, nn, recurrent, reduce, shape  # noqa: F401
