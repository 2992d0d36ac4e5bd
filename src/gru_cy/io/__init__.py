"""Files and other frameworks: gru_cy's .npz format, PyTorch, Keras 3, ONNX.

Public: ``load`` and ``save`` (gru_cy's .npz, no pickles) and ``load_onnx``;
the module methods ``from_torch``, ``to_torch``, ``from_keras``,
``to_keras``, ``to_onnx`` and ``save`` reach this package through
``nn.base.IO_HOOKS``, which importing it fills (io imports nn, never the
reverse). Submodules: ``npz``, ``torch``, ``keras``, ``onnx`` (``codec``,
``graph``, ``cells``, ``read``, ``write``) and ``convert`` (the command
line). Optional packages (torch, keras) are imported inside the functions
that need them; no function here unpickles anything.

How a recurrent cell plugs in: register its class (``@register_module``,
with ``_config()`` and the ``_gates`` blocks of PyTorch's parameter
layout) and add one entry per format: ``torch.TORCH_CELLS``,
``keras.KERAS_CELLS``, ``onnx.cells.ONNX_CELLS`` (see each module's
docstring). .npz files need nothing more.
"""

from __future__ import annotations

import importlib

from gru_cy.io.npz import load, save
from gru_cy.io.onnx.read import load_onnx
from gru_cy.nn import base as _base

__all__ = ["load", "load_onnx", "save"]


def _lazy(module, name):
    """A hook calling module.name, imported on first use."""
    def hook(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


_base.IO_HOOKS.update(
    save=save,
    from_torch=_lazy("gru_cy.io.torch", "from_torch"),
    to_torch=_lazy("gru_cy.io.torch", "to_torch"),
    from_keras=_lazy("gru_cy.io.keras", "from_keras"),
    to_keras=_lazy("gru_cy.io.keras", "to_keras"),
    to_onnx=_lazy("gru_cy.io.onnx.write", "to_onnx"),
    cell_from_torch=_lazy("gru_cy.io.torch", "cell_from_torch"),
    cell_to_torch=_lazy("gru_cy.io.torch", "cell_to_torch"),
)
