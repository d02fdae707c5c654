"""The external data files an ONNX model refers to, read from its protobuf without onnx.

ONNX keeps large tensors outside the model file when told to (``onnx.save(...,
save_as_external_data=True)``, torch.onnx for models over 2 GB): each such ``TensorProto``
carries ``external_data`` entries whose ``location`` names a file relative to the model.  Any
name is allowed (``weights.bin``, one file per tensor), so the ``model.onnx.data`` convention
alone misses files; this walks the protobuf wire format (stdlib only: it runs on devices)
and lists every location, skipping tensor bytes without reading them.

Only what can hold a tensor is entered: the graph's initializers and sparse initializers,
and node attributes (tensors and subgraphs, recursively).  A malformed file yields what was
found before the damage; loading it reports the damage itself.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

# field numbers (onnx/onnx.proto)
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA = 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_MAX_DEPTH = 64  # subgraphs nest; a hostile file must not exhaust the stack


class _Malformed(Exception):
    pass


def external_locations(path: str | Path) -> list[str]:
    """The ``location`` of every external tensor in the ONNX file ``path``, each once, in the
    order they appear; [] for a file without external data or one that cannot be read."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            found: list[str] = []
            try:
                for field, start, end in _fields(buf, 0, len(buf)):
                    if field == _MODEL_GRAPH:
                        _graph(buf, start, end, found, 0)
            except (_Malformed, IndexError, UnicodeDecodeError):
                pass  # keep what was found: load() names the damage
            return list(dict.fromkeys(found))
    except (OSError, ValueError):  # unreadable, or empty (mmap of 0 bytes)
        return []


def _varint(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Malformed


def _fields(buf: mmap.mmap, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field in buf[pos:end]; others skipped."""
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _Malformed
            yield key >> 3, pos, pos + size
            pos += size
        else:  # groups (3, 4) are not used by ONNX
            raise _Malformed
    if pos != end:
        raise _Malformed


def _graph(buf: mmap.mmap, pos: int, end: int, found: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _Malformed
    for field, start, stop in _fields(buf, pos, end):
        if field == _GRAPH_INITIALIZER:
            _tensor(buf, start, stop, found)
        elif field == _GRAPH_SPARSE_INITIALIZER:
            _sparse(buf, start, stop, found)
        elif field == _GRAPH_NODE:
            for nf, nstart, nstop in _fields(buf, start, stop):
                if nf == _NODE_ATTRIBUTE:
                    _attribute(buf, nstart, nstop, found, depth)


def _attribute(buf: mmap.mmap, pos: int, end: int, found: list[str], depth: int) -> None:
    for field, start, stop in _fields(buf, pos, end):
        if field in (_ATTR_T, _ATTR_TENSORS):
            _tensor(buf, start, stop, found)
        elif field in (_ATTR_G, _ATTR_GRAPHS):
            _graph(buf, start, stop, found, depth + 1)
        elif field in (_ATTR_SPARSE, _ATTR_SPARSES):
            _sparse(buf, start, stop, found)


def _sparse(buf: mmap.mmap, pos: int, end: int, found: list[str]) -> None:
    for field, start, stop in _fields(buf, pos, end):
        if field in (_SPARSE_VALUES, _SPARSE_INDICES):
            _tensor(buf, start, stop, found)


def _tensor(buf: mmap.mmap, pos: int, end: int, found: list[str]) -> None:
    for field, start, stop in _fields(buf, pos, end):
        if field != _TENSOR_EXTERNAL_DATA:
            continue
        entry = {f: bytes(buf[s:e]).decode("utf-8") for f, s, e in _fields(buf, start, stop)}
        if entry.get(_ENTRY_KEY) == "location" and entry.get(_ENTRY_VALUE):
            found.append(entry[_ENTRY_VALUE])
