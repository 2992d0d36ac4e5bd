"""``python -m gru_cy convert SRC DST``: convert a model between file formats.

The formats come from the extensions (``FORMATS``). Reading and writing go
through the converters of each format, so a cell that has a converter in a
format (its entry in that format's cell table) converts here too: an .npz
names its class, an ONNX file its operator, a torch state dict its gate
rows, a Keras model its layer class.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

import numpy as np

__all__ = ["convert_cli"]

FORMATS = {".npz": "npz", ".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".keras": "keras"}
def _torch_names():
    from gru_cy.io.torch import TORCH_CELLS

    return " / ".join(f"nn.{c.torch_class}" for c in TORCH_CELLS.values())


def _keras_names():
    from gru_cy.io.keras import KERAS_CELLS

    names = [c.keras_class for c in KERAS_CELLS.values()]
    return " / ".join(names), " / ".join(f"Bidirectional({n})" for n in names)


FORMAT_HELP = (f".npz (gru_cy save), .onnx, .pt/.pth (a PyTorch state_dict of one "
               f"{_torch_names()}), .keras (a Keras 3 model made of {_keras_names()[0]} "
               f"layers or {_keras_names()[1]})")

# Exit codes, one per kind of error.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING_PACKAGE = 0, 1, 2, 3

CONVERT_DESCRIPTION = f"""\
Convert a model between file formats, chosen by the file extensions:

  .npz         gru_cy's own format (module.save / gru_cy.load); no pickles
  .onnx        an ONNX model (read and written without the onnx package)
  .pt, .pth    a PyTorch state_dict of one {_torch_names()}
               (torch.load with weights_only=True; other entries are ignored
               and listed)
  .keras       a Keras 3 model made of {_keras_names()[0]} layers
               or {_keras_names()[1]}

PyTorch files need torch, Keras files need keras."""

CONVERT_EPILOG = """\
exit status:
  0  the model was converted
  1  the conversion failed: the source is not a readable model of its format,
     the model has no form in the destination format, or writing failed
  2  usage error: bad arguments, an unknown extension, no such source file
  3  a package the conversion needs (torch, keras) is not installed"""


def _format_of(path):
    return FORMATS.get(os.path.splitext(str(path))[1].lower())


def _prepare_keras_backend():
    """Pick a Keras backend that is installed, unless the user chose one."""
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    import importlib.util

    for backend, module in (("tensorflow", "tensorflow"), ("torch", "torch"), ("jax", "jax")):
        if importlib.util.find_spec(module) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


def _read_model(path, fmt, notes):
    from gru_cy.io._common import build
    from gru_cy.nn.base import MODULES

    if fmt == "npz":
        from gru_cy.io.npz import load

        return load(path)
    if fmt == "onnx":
        from gru_cy.io.onnx.read import load_onnx

        return load_onnx(path)
    if fmt == "torch":
        from gru_cy.io.torch import TORCH_CELLS, config_from_state_dict

        try:
            import torch
        except ImportError as exc:
            raise ImportError("reading a PyTorch file needs torch (pip install torch)") from exc
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise ValueError(
                f"{path}: torch.load(weights_only=True) refused it ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); save a state_dict with "
                f"torch.save(model.gru.state_dict(), path), not a pickled module") from exc
        if not (hasattr(obj, "keys") and hasattr(obj, "__getitem__")):
            raise ValueError(f"{path} holds a {type(obj).__name__}, not a state_dict")
        config, state, ignored = config_from_state_dict(obj)
        kind = config.pop("kind")
        if TORCH_CELLS[kind].state_dict_note:
            notes.append(TORCH_CELLS[kind].state_dict_note)
        if ignored:
            shown = ", ".join(map(str, ignored[:5])) + (", ..." if len(ignored) > 5 else "")
            notes.append(f"ignored {len(ignored)} entries outside the {kind} ({shown})")
        dt = config.pop("dtype")
        return build(MODULES[kind], config, state, dt)
    if fmt == "keras":
        from gru_cy.io.keras import _import_keras, from_keras

        _prepare_keras_backend()
        keras = _import_keras()
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except (ImportError, MemoryError):
            raise
        except Exception as exc:  # Keras raises ValueError, BadZipFile, KeyError, OSError, ...
            raise ValueError(f"{path}: Keras could not load it ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        return from_keras(model)
    raise AssertionError(fmt)


def _write_model(module, path, fmt):
    if fmt == "npz":
        from gru_cy.io.npz import save

        save(module, path)
    elif fmt == "onnx":
        from gru_cy.io.onnx.write import to_onnx

        to_onnx(module, path)
    elif fmt == "torch":
        from gru_cy.io._common import write_atomically
        from gru_cy.io.torch import check_torch_expressible

        check_torch_expressible(module, "writing a PyTorch state_dict")
        try:
            import torch
        except ImportError as exc:
            raise ImportError("writing a PyTorch file needs torch (pip install torch)") from exc
        state = {name: torch.from_numpy(np.ascontiguousarray(p))
                 for name, p in module.state_dict().items()}
        write_atomically(path, lambda f: torch.save(state, f))
    elif fmt == "keras":
        from gru_cy.io.keras import _import_keras, to_keras

        _prepare_keras_backend()
        keras = _import_keras()
        model = to_keras(module)
        if not isinstance(model, keras.Model):
            model = keras.Sequential([keras.Input(shape=(None, module.input_size),
                                                  dtype=module.dtype.name), model])
        model.save(path)


def convert_cli(src: str, dst: str, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    """``python -m gru_cy convert SRC DST``: formats from the extensions. Returns an exit code:

    0 on success, 1 when the conversion fails (the message says why: an
    unreadable or unrepresentable model, a failed write, not enough memory),
    2 for a usage problem (unknown extension, missing file), 3 when a needed
    optional package is missing. Nothing else escapes as an exception but
    errors of gru_cy's own code.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    src_fmt, dst_fmt = _format_of(src), _format_of(dst)
    for path, fmt in ((src, src_fmt), (dst, dst_fmt)):
        if fmt is None:
            print(f"gru_cy convert: cannot tell the format of {path!r} from its extension; "
                  f"supported: {FORMAT_HELP}", file=err)
            return EXIT_USAGE
    if not os.path.isfile(src):
        print(f"gru_cy convert: no such file: {src!r}", file=err)
        return EXIT_USAGE
    notes = []
    try:
        module = _read_model(src, src_fmt, notes)
        _write_model(module, dst, dst_fmt)
    except ImportError as exc:
        print(f"gru_cy convert: {exc}", file=err)
        return EXIT_MISSING_PACKAGE
    except MemoryError as exc:
        print(f"gru_cy convert: cannot convert {src} to {dst}: out of memory"
              + (f" ({exc})" if str(exc) else ""), file=err)
        return EXIT_FAILED
    except (ValueError, NotImplementedError, TypeError, OSError) as exc:
        print(f"gru_cy convert: cannot convert {src} to {dst}: {exc}", file=err)
        return EXIT_FAILED
    for note in notes:
        print(f"note: {note}", file=out)
    print(f"wrote {dst}: {module!r}", file=out)
    return EXIT_OK
