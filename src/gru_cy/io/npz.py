"""gru_cy's own file format: an .npz of arrays plus a JSON config, never pickled.

``save`` writes each parameter under its PyTorch name and ``config``, a 0-d
string array holding JSON: the format name and version, ``"class"`` (the
module's registered kind, e.g. "GRU"), the constructor arguments from
``module._config()``, and the dtype. ``numpy.load(path, allow_pickle=False)``
reads it.

``load`` is generic over every registered module class (``nn.base.MODULES``):
it finds the class by the "class" entry (or takes ``cls=``), checks each
constructor argument's type and bounds against the constructor's signature
(an argument with an int default or none must be a positive int, a bool
default a bool, a float default a finite number, a str default a string),
computes the parameter shapes from the config without allocating anything,
checks every array's header against them, and only then reads the arrays,
builds ``cls(**config, dtype=dtype)`` and loads the state dict. A cell plugs
in by being registered (``@register_module``) with ``_config()`` returning
its constructor arguments; ``_param_shapes()`` must depend only on the
attributes named like those arguments (and class attributes), or the
module is built before the shapes are checked.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import struct
import zipfile
import zlib
from typing import IO, TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from gru_cy.io._common import write_atomically
from gru_cy.nn.base import _INT32_MAX, MODULES

if TYPE_CHECKING:
    from gru_cy.nn.base import Module

__all__ = ["save", "load"]

_M = TypeVar("_M", bound="Module")

FORMAT_NAME = "gru_cy"
FORMAT_VERSION = 1
CONFIG_KEY = "config"
# Config entries that are not constructor arguments.
_META = ("format", "format_version", "class", "dtype", "gru_cy_version")
# Bounds of float arguments, beyond being finite numbers.
_FLOAT_BOUNDS = {"dropout": (0.0, 1.0)}


def save(module: Module, path: str | os.PathLike[str] | IO[bytes]
         ) -> str | os.PathLike[str] | IO[bytes]:
    """Save configuration and weights to ``path`` (written as given, no suffix added).

    The file is an ordinary .npz: each parameter under its PyTorch name,
    plus ``config``, a 0-d string array holding JSON (format name and
    version, class, the constructor arguments, dtype). ``numpy.load(path,
    allow_pickle=False)`` reads it; ``gru_cy.load`` checks it.
    """
    from gru_cy._version import __version__

    config = dict(format=FORMAT_NAME, format_version=FORMAT_VERSION,
                  **{"class": type(module)._kind}, **module._config(),
                  dtype=module.dtype.name, gru_cy_version=__version__)
    arrays = {name: np.ascontiguousarray(p, dtype=module.dtype)
              for name, p in module.state_dict().items()}
    arrays[CONFIG_KEY] = np.array(json.dumps(config))
    write_atomically(path, lambda f: np.savez(f, **arrays))
    return path


def _npy_header(zf, member, source):
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(f)
        raise ValueError(f"{source}: {member} has .npy format version {version}")


def _accepts(cls, kind):
    """Whether a file of this kind may be loaded as cls: the kind of cls or of one of
    its registered ancestors, or a registered subclass of cls."""
    if any(klass.__dict__.get("_kind") == kind for klass in cls.__mro__):
        return True
    return kind in MODULES and issubclass(MODULES[kind], cls)


def _constructor_arguments(cls):
    """[(name, default or inspect.Parameter.empty)] of cls's settings (not dtype, seed).

    A subclass constructor that passes ``*args, **kwargs`` on contributes its
    own arguments, followed by those of the next constructor up.
    """
    args, names = [], set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                forwards = True
            elif p.name not in ("self", "dtype", "seed") and p.name not in names:
                names.add(p.name)
                args.append((p.name, p.default))
        if not forwards:
            break
    return args


def _check_argument(name, default, value, fail):
    if isinstance(default, bool):
        if type(value) is not bool:
            fail(f"{name} must be true or false, got {value!r}")
    elif default is inspect.Parameter.empty or isinstance(default, int):
        lowest = 0 if default == 0 else 1
        if type(value) is not int or not lowest <= value <= _INT32_MAX:
            fail(f"{name} must be a {'non-negative' if lowest == 0 else 'positive'} integer, "
                 f"got {value!r}")
    elif isinstance(default, float):
        low, high = _FLOAT_BOUNDS.get(name, (-math.inf, math.inf))
        if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
            bounds = f" in [{low:g}, {high:g}]" if name in _FLOAT_BOUNDS else ""
            fail(f"{name} must be a number{bounds}, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if type(value) is not str or len(value) > 100:
            fail(f"{name} must be a short string, got {value!r}")
    elif not (value is None or type(value) in (bool, int, float, str)):
        fail(f"{name} must be a number, a string, true, false or null, got {value!r}")
    return value


def _check_config(config, source, cls):
    """(class, constructor arguments, dtype) of a file's config; ValueError if it is bad."""
    def fail(msg):
        raise ValueError(f"{source}: bad config: {msg}")

    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        fail(f"not a gru_cy model file (its config has no \"format\": \"{FORMAT_NAME}\")")
    version = config.get("format_version")
    if type(version) is not int or version < 1:
        fail(f"format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{source} was written by a newer gru_cy (file format version "
                         f"{version}); this gru_cy reads version {FORMAT_VERSION}: upgrade it")
    kind = config.get("class")
    if cls is None:
        if type(kind) is not str or kind not in MODULES:
            fail(f"class {kind!r} (this gru_cy loads {', '.join(sorted(MODULES))})")
        cls = MODULES[kind]
    elif type(kind) is not str or not _accepts(cls, kind):
        fail(f"class {kind!r} cannot be loaded as {cls.__name__} (cls=)")
    arguments = _constructor_arguments(cls)
    names = {name for name, _ in arguments}
    unknown = sorted(k for k in config if k not in names and k not in _META)
    if unknown:
        fail(f"unknown settings {unknown} for {cls.__name__}")
    checked = {}
    for name, default in arguments:
        if name not in config and default is not inspect.Parameter.empty:
            continue  # written before the setting existed: its default
        checked[name] = _check_argument(name, default, config.get(name), fail)
    if config.get("dtype") not in ("float32", "float64"):
        fail(f"dtype must be \"float32\" or \"float64\", got {config.get('dtype')!r}")
    return cls, checked, np.dtype(config["dtype"])


def _expected_shapes(cls, config, dtype):
    """{name: shape} of cls's parameters for this config, without building the module
    (None when cls's _param_shapes needs more than the config's attributes)."""
    probe = cls.__new__(cls)
    probe.__dict__.update(config, dtype=dtype)
    try:
        return dict(cls._param_shapes(probe))
    except (AttributeError, TypeError, KeyError, NotImplementedError):
        return None


@overload
def load(path: str | os.PathLike[str] | IO[bytes], *, cls: type[_M]) -> _M: ...


@overload
def load(path: str | os.PathLike[str] | IO[bytes], *, cls: None = None) -> Any: ...


def load(path: str | os.PathLike[str] | IO[bytes], *, cls: type | None = None) -> Any:
    """Load a module written by ``save`` (or ``module.save``). No pickles are read.

    The class is the file's (any registered module class), or ``cls`` (a
    subclass of it, registered or not). Raises ValueError, naming the
    problem, for anything that is not such a file: not a zip archive,
    truncated or corrupted data, a missing or malformed config, a newer
    format version, missing or unexpected arrays, shapes or dtypes that
    disagree with the config, object arrays.
    """
    if hasattr(path, "read"):
        return _load_npz(path, getattr(path, "name", "<file>"), cls)
    source = os.fspath(path)
    with open(source, "rb") as f:  # a missing file stays FileNotFoundError
        return _load_npz(f, source, cls)


def _load_npz(f, source, cls):
    # Whatever zipfile, zlib and numpy raise on bad bytes (zipfile alone raises
    # BadZipFile, NotImplementedError, EOFError, OSError, ValueError, ...).
    corrupt = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
               NotImplementedError, UnicodeDecodeError, struct.error, OverflowError)
    try:
        zf = zipfile.ZipFile(f)
    except corrupt as exc:
        hint = ""
        if _looks_like_onnx(f, source):
            hint = "; it looks like an ONNX model: read it with gru_cy.load_onnx(path)"
        raise ValueError(f"{source} is not a gru_cy .npz file (not a zip archive, or truncated): "
                         f"{type(exc).__name__}: {exc}{hint}") from exc
    archive_size = _size_of(f)
    with zf:
        try:
            names = zf.namelist()
        except corrupt as exc:
            raise ValueError(f"{source}: unreadable archive directory: {exc}") from exc
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: the archive lists a member twice")
        encrypted = [info.filename for info in zf.infolist() if info.flag_bits & 0x1]
        if encrypted:
            raise ValueError(f"{source}: encrypted members {encrypted} (gru_cy's save() writes "
                             f"none, and load() takes no password)")
        bad = [n for n in names if not n.endswith(".npy")]
        if bad:
            raise ValueError(f"{source}: unexpected members {bad} (a .npz holds only .npy arrays)")
        members = {n[:-4]: n for n in names}
        if CONFIG_KEY not in members:
            raise ValueError(f"{source}: no '{CONFIG_KEY}' entry; not a file written by "
                             f"gru_cy's save()")
        try:
            shape, _, dt = _npy_header(zf, members[CONFIG_KEY], source)
            if dt.kind != "U" or shape != () or dt.itemsize > 1 << 20:
                raise ValueError(f"'{CONFIG_KEY}' must be a 0-d string, got dtype {dt} "
                                 f"shape {shape}")
            with zf.open(members[CONFIG_KEY]) as f:
                text = str(np.lib.format.read_array(f, allow_pickle=False))
            config = json.loads(text)
        except corrupt as exc:
            raise ValueError(f"{source}: unreadable config ({type(exc).__name__}: {exc})") from exc
        cls, checked, dtype = _check_config(config, source, cls)
        module = None
        expected = _expected_shapes(cls, checked, dtype)
        if expected is None:
            module = _construct(cls, checked, dtype, source)
            expected = module._shape_table()[1]
        found = set(members) - {CONFIG_KEY}
        missing, unexpected = sorted(set(expected) - found), sorted(found - set(expected))
        if missing or unexpected:
            raise ValueError(f"{source}: arrays do not match the config: "
                             + (f"missing {missing} " if missing else "")
                             + (f"unexpected {unexpected}" if unexpected else ""))
        state = {}
        for name, shape in expected.items():
            try:
                file_shape, _, dt = _npy_header(zf, members[name], source)
            except corrupt as exc:
                raise ValueError(f"{source}: array {name!r} is unreadable ({exc})") from exc
            if dt.hasobject:
                raise ValueError(f"{source}: array {name!r} holds Python objects; gru_cy never "
                                 f"unpickles (allow_pickle=False)")
            if dt.kind != "f" or dt.itemsize != dtype.itemsize or tuple(file_shape) != shape:
                raise ValueError(f"{source}: array {name!r} is {dt} of shape {file_shape}, "
                                 f"expected {dtype} of shape {shape}")
            _check_member_size(zf.getinfo(members[name]), shape, dtype, archive_size, source)
            try:
                with zf.open(members[name]) as f:
                    state[name] = np.lib.format.read_array(f, allow_pickle=False)
            except corrupt as exc:
                raise ValueError(f"{source}: array {name!r} is truncated or corrupted "
                                 f"({type(exc).__name__}: {exc})") from exc
    if module is None:
        module = _construct(cls, checked, dtype, source)
    module.load_state_dict(state)
    return module


def _size_of(f):
    """The size of a seekable file object, in bytes."""
    position = f.tell()
    size = f.seek(0, os.SEEK_END)
    f.seek(position)
    return size


# Deflate expands at most about 1032 times.
_MAX_INFLATION = 1032


def _check_member_size(info, shape, dtype, archive_size, source):
    """Refuse, before NumPy allocates the array its header claims, a member whose
    stored data cannot hold it (NumPy allocates first and reads after)."""
    nbytes = math.prod(shape) * dtype.itemsize
    fits = info.file_size >= nbytes and info.compress_size <= archive_size and (
        info.compress_type != zipfile.ZIP_STORED or info.file_size <= archive_size) and (
        info.file_size <= _MAX_INFLATION * info.compress_size + (1 << 16))
    if not fits:
        raise ValueError(f"{source}: array {info.filename[:-4]!r} is truncated or corrupted (its "
                         f"header asks for {nbytes} bytes; the archive stores "
                         f"{info.file_size} bytes for it, compressed to {info.compress_size})")


def _looks_like_onnx(f, source):
    """Whether a file that is not a zip archive looks like an ONNX model (by its name, or
    by starting as a protobuf ModelProto does: field 1, ir_version)."""
    if str(source).lower().endswith(".onnx"):
        return True
    try:
        f.seek(0)
        head = f.read(2)
    except (OSError, ValueError):
        return False
    return len(head) == 2 and head[0] == 0x08 and 0 < head[1] < 0x80


def _construct(cls, config, dtype, source):
    try:
        return cls(**config, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: bad config: {exc}") from exc
