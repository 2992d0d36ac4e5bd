"""A minimal protobuf codec for ONNX files: reading messages and tensors, writing them.

``Msg`` decodes one protobuf message lazily (length-delimited fields stay
views into the file's bytes); ``onnx_tensor`` turns a TensorProto into a
NumPy array, reading external data only from files inside the model's
folder. The ``pb_*`` and ``onnx_*`` writers build the few message kinds
``to_onnx`` writes. No onnx package is needed. Every problem with the bytes
themselves raises ``Corrupt`` (a ValueError); this module knows nothing
about recurrent cells.
"""

from __future__ import annotations

import math
import os
import re
import struct

import numpy as np

class Corrupt(ValueError):
    """Bytes that are not a well-formed ONNX model (truncated, inconsistent, too large)."""


def read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise Corrupt("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise Corrupt("varint longer than 10 bytes")


def signed64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


class Msg:
    """The fields of one protobuf message: {number: [(wire_type, value)]}.

    Length-delimited values are memoryviews into the file's bytes (no copy);
    nested messages are decoded when asked for.
    """

    __slots__ = ("fields",)

    def __init__(self, data):
        buf = memoryview(data)
        fields = {}
        pos, n = 0, len(buf)
        while pos < n:
            key, pos = read_varint(buf, pos)
            num, wire = key >> 3, key & 7
            if num == 0:
                raise Corrupt("field number 0")
            if wire == 0:
                value, pos = read_varint(buf, pos)
            elif wire == 1:
                value, pos = buf[pos:pos + 8], pos + 8
            elif wire == 2:
                size, pos = read_varint(buf, pos)
                value, pos = buf[pos:pos + size], pos + size
            elif wire == 5:
                value, pos = buf[pos:pos + 4], pos + 4
            else:
                raise Corrupt(f"unsupported wire type {wire}")
            if pos > n:
                raise Corrupt("field runs past the end of its message")
            fields.setdefault(num, []).append((wire, value))
        self.fields = fields

    def has(self, num):
        return num in self.fields

    def int(self, num, default=0):
        if num not in self.fields:
            return default
        wire, value = self.fields[num][-1]
        if wire != 0:
            raise Corrupt(f"field {num} is not a varint")
        return signed64(value)

    def ints(self, num):
        out = []
        for wire, value in self.fields.get(num, ()):
            if wire == 0:
                out.append(signed64(value))
            elif wire == 2:  # packed
                pos = 0
                while pos < len(value):
                    v, pos = read_varint(value, pos)
                    out.append(signed64(v))
            else:
                raise Corrupt(f"field {num} is not a list of varints")
        return out

    def _fixed(self, num, size, fmt):
        """A packed or unpacked repeated fixed-width field as a NumPy array."""
        chunks = []
        for wire, value in self.fields.get(num, ()):
            if wire not in (1, 2, 5) or len(value) % size:
                raise Corrupt(f"field {num} has a bad length")
            chunks.append(bytes(value))
        return np.frombuffer(b"".join(chunks), dtype=fmt)

    def floats(self, num):
        return self._fixed(num, 4, "<f4")

    def doubles(self, num):
        return self._fixed(num, 8, "<f8")

    def float(self, num, default=0.0):
        if num not in self.fields:
            return default
        wire, value = self.fields[num][-1]
        if wire != 5:
            raise Corrupt(f"field {num} is not a float")
        return struct.unpack("<f", value)[0]

    def bytes(self, num, default=None):
        if num not in self.fields:
            return default
        wire, value = self.fields[num][-1]
        if wire != 2:
            raise Corrupt(f"field {num} is not length-delimited")
        return value

    def string(self, num, default=""):
        value = self.bytes(num)
        return default if value is None else _utf8(value)

    def strings(self, num):
        return [_utf8(v) for w, v in self.fields.get(num, ()) if w == 2]

    def message(self, num):
        value = self.bytes(num)
        return None if value is None else Msg(value)

    def messages(self, num):
        return [Msg(v) for w, v in self.fields.get(num, ()) if w == 2]


def _utf8(value):
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Corrupt(f"a string is not UTF-8 ({exc})") from None


def pb_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_int(num, v):
    return pb_varint(num << 3) + pb_varint(v)


def pb_bytes(num, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return pb_varint(num << 3 | 2) + pb_varint(len(data)) + data


# TensorProto.DataType codes and the NumPy types they are read as.
ONNX_FLOAT, ONNX_INT32, ONNX_INT64, ONNX_DOUBLE, ONNX_BFLOAT16 = 1, 6, 7, 11, 16
ONNX_NUMPY = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?",
               10: "<f2", 11: "<f8", 12: "<u4", 13: "<u8", 16: "<u2"}
ONNX_FROM_NUMPY = {np.dtype(np.float32): ONNX_FLOAT, np.dtype(np.float64): ONNX_DOUBLE,
                    np.dtype(np.int32): ONNX_INT32, np.dtype(np.int64): ONNX_INT64,
                    np.dtype(np.bool_): 9, np.dtype(np.float16): 10, np.dtype(np.int8): 3,
                    np.dtype(np.uint8): 2, np.dtype(np.int16): 5, np.dtype(np.uint16): 4,
                    np.dtype(np.uint32): 12, np.dtype(np.uint64): 13}
MAX_ELEMENTS = 1 << 31


def external_data(msg, name, base_dir, nbytes):
    """The bytes of a tensor stored in a file next to the model (ONNX external data).

    Only files inside the model's folder are read: an absolute location, a
    ``..`` or a symbolic link leading elsewhere is refused.
    """
    if base_dir is None:
        raise NotImplementedError(
            f"tensor {name!r} keeps its data in an external file; load the model from its path "
            f"so that the file next to it can be read")
    entries = {e.string(1): e.string(2) for e in msg.messages(13)}
    location = entries.get("location", "")
    parts = re.split(r"[\\/]", location)
    if not location or os.path.isabs(location) or ".." in parts or ":" in location:
        raise ValueError(f"tensor {name!r}: external data location {location!r} is not a file "
                         f"in the model's folder; refused")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"tensor {name!r}: external data {location!r} leads out of the model's "
                         f"folder; refused")
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries.get("length", str(nbytes)))
    except ValueError as exc:
        raise Corrupt(f"tensor {name!r}: bad external data offset or length") from exc
    if offset < 0 or length != nbytes:
        raise Corrupt(f"tensor {name!r}: external data of {length} bytes at offset {offset}, "
                       f"expected {nbytes} bytes")
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < offset + nbytes:
                raise Corrupt(f"tensor {name!r}: external data file {location!r} is too short")
            f.seek(offset)
            data = f.read(nbytes)
    except OSError as exc:
        raise ValueError(f"tensor {name!r}: cannot read its external data file {location!r} "
                         f"({exc.strerror or exc})") from exc
    if len(data) != nbytes:
        raise Corrupt(f"tensor {name!r}: external data file {location!r} is too short")
    return data


def onnx_tensor(msg, what, base_dir=None):
    """A TensorProto as a NumPy array (native byte order, its own memory)."""
    dims = msg.ints(1)
    dtype_code = msg.int(2)
    name = msg.string(8) or what
    if dtype_code not in ONNX_NUMPY:
        raise ValueError(f"tensor {name!r} has ONNX data type {dtype_code}, which gru_cy does not "
                         f"read (it reads float, double, float16, bfloat16 and integer tensors)")
    if any(d < 0 for d in dims):
        raise Corrupt(f"tensor {name!r} has negative dimensions {dims}")
    size = math.prod(dims)
    if size > MAX_ELEMENTS:
        raise Corrupt(f"tensor {name!r} claims {size} elements")
    np_type = np.dtype(ONNX_NUMPY[dtype_code])
    raw = msg.bytes(9)
    if msg.int(14) == 1:
        raw = external_data(msg, name, base_dir, size * np_type.itemsize)
    if raw is not None:
        if len(raw) != size * np_type.itemsize:
            raise Corrupt(f"tensor {name!r}: {len(raw)} bytes of data for shape {dims} of "
                           f"{np_type.itemsize}-byte elements")
        arr = np.frombuffer(raw, dtype=np_type)
    elif dtype_code == ONNX_FLOAT:
        arr = msg.floats(4)
    elif dtype_code == ONNX_DOUBLE:
        arr = msg.doubles(10)
    elif dtype_code == ONNX_INT64:
        arr = np.array(msg.ints(7), dtype=np.int64)
    elif dtype_code in (12, 13):
        arr = np.array([v & ((1 << 64) - 1) for v in msg.ints(11)], dtype=np.uint64)
    else:  # int32_data carries every type up to 32 bits, float16 and bfloat16 as bit patterns
        arr = np.array(msg.ints(5), dtype=np.int64).astype(np_type)
    if arr.size != size:
        raise Corrupt(f"tensor {name!r}: {arr.size} values for shape {dims}")
    if dtype_code == ONNX_BFLOAT16:
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(arr.dtype.newbyteorder("="), copy=True).reshape(dims)


# AttributeProto.AttributeType codes gru_cy reads, and their names in messages.
ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH, ATTR_FLOATS, ATTR_INTS, \
    ATTR_STRINGS = 1, 2, 3, 4, 5, 6, 7, 8
ATTR_NAMES = {1: "a float", 2: "an integer", 3: "a string", 4: "a tensor", 5: "a graph",
              6: "a list of floats", 7: "a list of integers", 8: "a list of strings"}


def attr_kind(msg):
    """An AttributeProto's type (by its type field, or by the field present)."""
    kind = msg.int(20, 0)
    if kind == 0:  # old writers leave the type out: use whichever field is set
        for field, k in ((2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (8, 7), (9, 8)):
            if msg.has(field):
                kind = k
                break
    return kind


def attr_value(msg, base_dir=None):
    """The value of an AttributeProto (a graph as its undecoded GraphProto ``Msg``;
    Unreadable for kinds gru_cy never needs)."""
    kind = attr_kind(msg)
    if kind == 1:
        return msg.float(2)
    if kind == 2:
        return msg.int(3)
    if kind == 3:
        return msg.string(4)
    if kind == 4:
        tensor = msg.message(5)
        if tensor is None:
            raise Corrupt(f"attribute {msg.string(1)!r} has no tensor")
        return onnx_tensor(tensor, msg.string(1), base_dir)
    if kind == 5:
        graph = msg.message(6)
        if graph is None:
            raise Corrupt(f"attribute {msg.string(1)!r} has no graph")
        return graph
    if kind == 6:
        return [float(v) for v in msg.floats(7)]
    if kind == 7:
        return msg.ints(8)
    if kind == 8:
        return msg.strings(9)
    return Unreadable(kind)


class Unreadable:
    """An attribute of a kind gru_cy never needs (graphs, sparse tensors, ...)."""

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return f"<attribute of type {self.kind}>"


# TypeProto fields of the kinds of values a graph can hold besides tensors.
VALUE_KINDS = {4: "a sequence", 5: "a map", 8: "a sparse tensor", 9: "an optional"}


def read_value_info(msg):
    """A ValueInfoProto as (name, element type, dims, kind).

    kind is "tensor", or VALUE_KINDS' description of another kind of value;
    element type is the TensorProto data type code, 0 when not given; dims is
    None for an unknown rank, else one entry per axis: an int (dim_value), a
    str (dim_param) or None (neither).
    """
    name = msg.string(1)
    type_proto = msg.message(2)
    if type_proto is None:
        return name, 0, None, "tensor"
    tensor = type_proto.message(1)
    if tensor is None:
        for field, kind in VALUE_KINDS.items():
            if type_proto.has(field):
                return name, 0, None, kind
        return name, 0, None, "tensor"
    shape = tensor.message(2)
    dims = None
    if shape is not None:
        dims = []
        for dim in shape.messages(1):
            if dim.has(1):
                dims.append(dim.int(1))
            elif dim.has(2):
                dims.append(dim.string(2))
            else:
                dims.append(None)
    return name, tensor.int(1), dims, "tensor"


def read_source(source):
    """(bytes, name for messages, folder of external data or None) of a path, file or bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>", None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        folder = os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None
        return source.read(), name or "<file>", folder
    path = os.fspath(source)
    with open(path, "rb") as f:
        return f.read(), path, os.path.dirname(os.path.abspath(path))


def onnx_tensor_proto(name, arr):
    arr = np.ascontiguousarray(arr)
    code = ONNX_FROM_NUMPY[arr.dtype]
    return (b"".join(pb_int(1, d) for d in arr.shape) + pb_int(2, code) + pb_bytes(8, name)
            + pb_bytes(9, arr.astype(arr.dtype.newbyteorder("<")).tobytes()))


def onnx_value_info(name, elem_type, dims):
    shape = b"".join(
        pb_bytes(1, pb_bytes(2, d) if isinstance(d, str) else pb_int(1, d)) for d in dims)
    tensor_type = pb_int(1, elem_type) + pb_bytes(2, shape)
    return pb_bytes(1, name) + pb_bytes(2, pb_bytes(1, tensor_type))


def onnx_node(op_type, inputs, outputs, name, **attrs):
    out = b"".join(pb_bytes(1, i) for i in inputs) + b"".join(pb_bytes(2, o) for o in outputs)
    out += pb_bytes(3, name) + pb_bytes(4, op_type)
    for key, value in attrs.items():
        if isinstance(value, str):
            attr = pb_bytes(1, key) + pb_int(20, 3) + pb_bytes(4, value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str)
                                                                 for v in value):
            attr = pb_bytes(1, key) + pb_int(20, 8) + b"".join(pb_bytes(9, v) for v in value)
        elif isinstance(value, (list, tuple)):
            attr = pb_bytes(1, key) + pb_int(20, 7) + b"".join(pb_int(8, v) for v in value)
        else:
            attr = pb_bytes(1, key) + pb_int(20, 2) + pb_int(3, int(value))
        out += pb_bytes(5, attr)
    return out
