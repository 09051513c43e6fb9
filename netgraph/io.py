"""Saving and loading nets: ``save(net, path)`` and ``load(path)``.

The file format (``"netgraph-net"``, format version 1)
------------------------------------------------------
One zip archive, written at exactly ``path`` (no suffix is added), holding:

* ``net.json`` — the spec::

      {"format": "netgraph-net", "format_version": 1, "netgraph_version": "0.1.0",
       "net": NODE}

  where a NODE is a layer or a graph::

      {"kind": "layer", "type": "LinearLayer",          # a class in layers.__all__
       "params": {...},                                 # params.model_dump(mode="json")
       "ports": {"Input": SPEC, ...},                   # the port shapes the user gave
       "enabled_inputs": [...], "enabled_outputs": [...],  # optional ports switched on
       "arrays": {"Weights": ARRAY, "Biases": null},    # null: not initialized
       "children": {"ScoringNet": NODE}}                # sub-nets (attention, operators)

      {"kind": "graph", "type": "NetGraph" | "NetChain",
       "nodes": [{"name": "a" | 0, "net": NODE}, ...],  # in construction order
       "edges": [[END, END], ...],                      # resolved (source, destination)
       "inputs": [...], "outputs": [...],               # graph ports, in order
       "order": [...],                                  # node evaluation order
       "ports": {"Input": SPEC, ...}}

  An END is ``{"node": name, "port": "Output"}``, or ``{"node": null, "port": p}`` for graph
  port ``p``. A SPEC is a shape spec: an int, a string, ``null`` for Automatic,
  ``{"Index": n}`` for ``Index(n)``, or a list (a tuple) of those. An ARRAY is
  ``{"member": "arrays/3.npy", "shape": [5, 3], "dtype": "float32"}``.
* ``arrays/<k>.npy`` — one float32 array each in NumPy's ``.npy`` format, without pickles.

Saving is atomic: the archive is written to a temporary file in the same directory, synced,
then moved onto ``path`` with ``os.replace``. Loading validates ``net.json`` with pydantic
(a newer format version is refused), looks classes up in a fixed registry (nothing is
imported by name, nothing is unpickled), checks every array's member, dtype and shape,
rebuilds the net and runs shape inference again. Any problem raises ``NetError``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import uuid
import zipfile
from collections.abc import Callable
from importlib import metadata
from typing import IO, Any

import numpy as np
from pydantic import ValidationError

from ._iotree import ArrayJSON, FileJSON, decode, encode, validation_summary
from .errors import NetError
from .net import Net

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "netgraph-net"
FORMAT_VERSION = 1
SPEC_MEMBER = "net.json"
_MAX_SPEC_BYTES = 64 << 20
_NPY_HEADER_MAX = 1 << 16  # a .npy header is far shorter; bounds a member before reading it
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: one net, one byte sequence


def _version() -> str:
    try:
        return metadata.version("netgraph")
    except metadata.PackageNotFoundError:
        return "unknown"


def _fspath(path: Any) -> str:
    try:
        name = os.fspath(path)
    except TypeError:
        raise NetError(f"a path must be a str or os.PathLike, got {type(path).__name__}") from None
    name = os.fsdecode(name)
    if not name:
        raise NetError("the path is empty")
    return name


# ------------------------------------------------------------------------- save
def save(net: Net, path: str | os.PathLike) -> None:
    """Write ``net`` (its spec and arrays) to one file at exactly ``path``, atomically.

    Raises
    ------
    NetError
        If ``net`` is not a net of netgraph's classes or the file cannot be written.
    """
    if not isinstance(net, Net):
        raise NetError(f"save needs a net, got {type(net).__name__}")
    name = _fspath(path)
    arrays: list[tuple[str, np.ndarray]] = []
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "netgraph_version": _version(),
           "net": encode(net, arrays)}
    try:
        text = json.dumps(doc, indent=1, allow_nan=False)
    except ValueError as e:
        raise NetError(f"cannot save the net: its spec is not valid JSON ({e})") from None
    _atomic_write(name, lambda f: _write_zip(f, text, arrays))


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.external_attr = 0o644 << 16
    return info


def _write_zip(f: IO[bytes], text: str, arrays: list[tuple[str, np.ndarray]]) -> None:
    with zipfile.ZipFile(f, "w") as zf:
        spec = _member(SPEC_MEMBER)
        spec.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(spec, text)
        for member, array in arrays:
            _write_array(zf, member, array)


def _write_array(zf: zipfile.ZipFile, member: str, array: np.ndarray) -> None:
    with zf.open(_member(member), "w", force_zip64=array.nbytes > (1 << 30)) as out:
        np.save(out, array, allow_pickle=False)


def _atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write via a temporary file in the target's directory, fsync, ``os.replace``; on any
    failure the temporary file is removed and ``path`` is left as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)[:80]}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as e:
        raise NetError(f"cannot save to {path!r}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise NetError(f"cannot save to {path!r}: {e.strerror or e}") from e
        raise
    if os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


# ------------------------------------------------------------------------- load
def load(path: str | os.PathLike) -> Net:
    """Read a net written by :func:`save`.

    Raises
    ------
    NetError
        If the file is missing, empty, truncated, not a netgraph file, from a newer format
        version, or damaged or edited so that it no longer describes a valid net.
    """
    name = _fspath(path)
    if not os.path.exists(name):
        raise NetError(f"cannot load {name!r}: no such file")
    if not os.path.isfile(name):
        raise NetError(f"cannot load {name!r}: not a regular file")
    try:
        if os.path.getsize(name) == 0:
            raise NetError("the file is empty")
        with zipfile.ZipFile(name) as zf:
            doc = _read_spec(zf)
            return decode(doc.net, lambda ref, what: _read_array(zf, ref, what))
    except NetError as e:
        raise type(e)(f"cannot load {name!r}: {e}") from None
    except zipfile.BadZipFile as e:
        raise NetError(f"cannot load {name!r}: {_zip_trouble(name, e)}") from None
    except OSError as e:
        raise NetError(f"cannot load {name!r}: {e.strerror or e}") from e
    except Exception as e:  # anything else a damaged archive can raise (zlib, EOF, ...)
        raise NetError(f"cannot load {name!r}: the file is damaged "
                       f"({type(e).__name__}: {e})") from e


def _zip_trouble(name: str, err: Exception) -> str:
    with open(name, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        return f"the zip archive is truncated or damaged ({err})"
    return "not a netgraph net file (it is not a zip archive)"


def _read_spec(zf: zipfile.ZipFile) -> FileJSON:
    try:
        info = zf.getinfo(SPEC_MEMBER)
    except KeyError:
        raise NetError(f"not a netgraph net file: the archive has no {SPEC_MEMBER!r}") from None
    if info.file_size > _MAX_SPEC_BYTES:
        raise NetError(f"{SPEC_MEMBER!r} is {info.file_size} bytes, too large for a net spec")
    try:
        data = json.loads(zf.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NetError(f"{SPEC_MEMBER!r} is not valid JSON ({e})") from None
    got = data.get("format") if isinstance(data, dict) else None
    if got != FORMAT:
        raise NetError(f"not a netgraph net file: {SPEC_MEMBER!r} has format {got!r}, "
                       f"expected {FORMAT!r}")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise NetError(f"{SPEC_MEMBER!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise NetError(f"the file has format version {version}, written by a newer netgraph "
                       f"({data.get('netgraph_version', 'unknown')!s}); this netgraph "
                       f"({_version()}) reads format versions up to {FORMAT_VERSION}: "
                       "upgrade netgraph to load it")
    try:
        return FileJSON.model_validate(data)
    except ValidationError as e:
        raise NetError(f"{SPEC_MEMBER!r} does not describe a net: "
                       f"{validation_summary(e)}") from None


def _read_array(zf: zipfile.ZipFile, ref: ArrayJSON, what: str) -> np.ndarray:
    """The float32 array of member ``ref.member``, checked against ``ref``; read-only."""
    shape = tuple(ref.shape)
    try:
        info = zf.getinfo(ref.member)
    except KeyError:
        raise NetError(f"{what}: the file has no member {ref.member!r}") from None
    if info.file_size > 4 * math.prod(shape) + _NPY_HEADER_MAX:
        raise NetError(f"{what}: member {ref.member!r} has {info.file_size} bytes, too many "
                       f"for a float32 array of shape {shape}")
    try:
        array = np.load(io.BytesIO(zf.read(info)), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise NetError(f"{what}: member {ref.member!r} is not a plain .npy array ({e})") from None
    if not isinstance(array, np.ndarray):
        raise NetError(f"{what}: member {ref.member!r} is not a single .npy array")
    if array.dtype.kind != "f" or array.dtype.itemsize != 4:
        raise NetError(f"{what}: member {ref.member!r} has dtype {array.dtype}; arrays are "
                       "stored as float32")
    if array.shape != shape:
        raise NetError(f"{what}: {SPEC_MEMBER!r} gives shape {shape}, but member "
                       f"{ref.member!r} holds shape {array.shape}")
    array = array.astype(np.float32, copy=False)  # native byte order
    array.flags.writeable = False
    return array
