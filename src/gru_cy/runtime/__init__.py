"""Whole exported models: InferenceSession runs an ONNX graph on NumPy and gru_cy.

``InferenceSession`` has ONNX Runtime's call shape; ``Stream`` feeds a model its
own state (recurrent states as graph inputs and outputs) call after call. This
package reads files with io.onnx's codec and builds recurrent nodes from nn's
modules; neither imports it.
"""

from gru_cy.runtime.session import InferenceSession, NodeArg
from gru_cy.runtime.streaming import Stream

__all__ = ["InferenceSession", "NodeArg", "Stream"]
