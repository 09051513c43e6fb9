"""Saving and loading nets: ``save(net, path)`` and ``load(path)``.

The file format (``"netgraph-net"``, format version 1)
------------------------------------------------------
One zip archive, written at exactly ``path`` (no suffix is added), holding:

* ``net.json`` — the spec::

      {"format": "netgraph-net", "format_version": 1, "netgraph_version": "0.1.0",
       "net": NODE}

  where a NODE is a layer or a graph::

      {"kind": "layer", "type": "LinearLayer",          # a class in netgraph.layers.__all__
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
* anything else is ignored by :func:`load`: a training checkpoint
  (:mod:`netgraph.train.checkpoint`, written with :func:`save_with_members`) is a net file
  with its training state in further ``training/...`` members.

Every member is stored uncompressed, so a file holds at least as many bytes as it inflates
to. (Files of earlier releases have a deflated ``net.json``; they load as long as it inflates
to at most ``max(1 MiB, file size)``.)

Saving is atomic: the archive is written to a temporary file in the directory of the file it
replaces, synced, then moved onto it with ``os.replace``. Saving writes regular files only: a
path that is a directory, device, FIFO or socket is refused; a symlink is followed (its target
is replaced, the link stays); a replaced file keeps its permission bits (and owner, where the
process may set it); the temporary file is removed after any failure.

Loading is bounded by the file: ``net.json`` may inflate to at most ``max(1 MiB, file size)``
and nest at most :data:`MAX_JSON_DEPTH` levels (nets at most ``MAX_DEPTH``); it is validated
with pydantic (a newer format version is refused) and classes are looked up in a fixed
registry (nothing is imported by name, nothing is unpickled). Each array's member is checked
against the shape ``net.json`` records (its ``.npy`` header, dtype and byte count, and the
byte budget: all arrays together cannot need more bytes than the file has) before the array
data is read; then the net is rebuilt around zero-memory stand-ins of those shapes and shape
inference runs once on the whole net, so the recorded shapes are checked against the shapes
the net's structure and port sizes imply — all before any array data is inflated. Only then
are the arrays read, checked to be finite, and put in place. Any problem raises ``NetError``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import stat
import uuid
import zipfile
from collections.abc import Callable
from importlib import metadata
from typing import IO, Any

import numpy as np
from pydantic import ValidationError

from ._iotree import (
    MAX_DEPTH,
    ArrayJSON,
    FileJSON,
    decode,
    encode,
    validation_summary,
)
from .arrays import validated_array
from .errors import NetError
from .net import Net
from .tree import walk

__all__ = ["save", "save_with_members", "load", "npy_header", "FORMAT", "FORMAT_VERSION",
           "MAX_JSON_DEPTH"]

FORMAT = "netgraph-net"
FORMAT_VERSION = 1
SPEC_MEMBER = "net.json"
#: a spec may always inflate to this many bytes; beyond it, to at most the file's size
_SPEC_ALLOWANCE = 1 << 20
_MAX_SPEC_BYTES = 64 << 20
#: nesting of ``net.json`` (a graph level is 3 JSON levels: net, "nodes", node)
MAX_JSON_DEPTH = 3 * MAX_DEPTH + 32
_NPY_HEADER_MAX = 4096  # a float32 .npy header is ~128 bytes; bounds a member before reading
_MAX_RANK = 32
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
    if "\0" in name:
        raise NetError(f"the path {name!r} contains a NUL byte")
    return name


# ------------------------------------------------------------------------- save
def save(net: Net, path: str | os.PathLike) -> None:
    """Write ``net`` (its spec and arrays) to one file at exactly ``path``, atomically.

    Raises
    ------
    NetError
        If ``net`` is not a net of netgraph's classes, nests more than ``MAX_DEPTH`` levels,
        or the file cannot be written (``path`` is a directory, device, FIFO or other special
        file, or the directory is missing or not writable).
    """
    save_with_members(net, path, {})


def save_with_members(net: Net, path: str | os.PathLike,
                      members: dict[str, bytes | np.ndarray]) -> None:
    """:func:`save`, with further archive members (``name -> bytes``, or an array stored as
    ``.npy``) that :func:`load` ignores — a training checkpoint's state. Member names must
    not start with ``net.json`` or ``arrays/``."""
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
    _atomic_write(name, lambda f: _write_zip(f, text, arrays, members))


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.external_attr = 0o644 << 16
    return info


def _write_zip(f: IO[bytes], text: str, arrays: list[tuple[str, np.ndarray]],
               members: dict[str, bytes | np.ndarray]) -> None:
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr(_member(SPEC_MEMBER), text)  # stored: the file is as large as it inflates
        for member, array in arrays:
            _write_array(zf, member, array)
        for member, value in members.items():
            if isinstance(value, np.ndarray):
                _write_array(zf, member, value)
            else:
                zf.writestr(_member(member), value)


def _write_array(zf: zipfile.ZipFile, member: str, array: np.ndarray) -> None:
    with zf.open(_member(member), "w", force_zip64=array.nbytes > (1 << 30)) as out:
        np.save(out, array, allow_pickle=False)


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


def _save_target(path: str) -> tuple[str, os.stat_result | None]:
    """The regular file that saving to ``path`` replaces (a symlink's target) and its status,
    None when it does not exist yet; anything but a regular file is a ``NetError``."""
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target, None
    except OSError as e:
        raise NetError(f"cannot save to {path!r}: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        shown = repr(path) if target == os.path.abspath(path) else f"{path!r} (-> {target!r})"
        raise NetError(f"cannot save to {shown}: it is {kind}; save writes regular files only")
    return target, st


def _keep_status(fd: int, st: os.stat_result) -> None:
    """Give the new file (open as ``fd``) the permission bits and, where allowed, the owner
    of the file it replaces."""
    if not hasattr(os, "fchmod"):  # pragma: no cover - not POSIX: no permission bits to keep
        return
    mine = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (mine.st_uid, mine.st_gid):
        with contextlib.suppress(OSError):  # only root (or a group member) may give files away
            os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))


def _atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write via a temporary file in the target's directory, fsync, ``os.replace``; on any
    failure the temporary file is removed and ``path`` is left as it was."""
    target, st = _save_target(path)
    directory = os.path.dirname(target)
    tmp = os.path.join(directory, f".{os.path.basename(target)[:80]}.{uuid.uuid4().hex[:12]}.tmp")
    try:  # a replaced file's mode is set before any byte is written; a new file gets 0o666 & ~umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o600 if st is not None else 0o666)
    except OSError as e:
        raise NetError(f"cannot save to {path!r}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            if st is not None:
                _keep_status(f.fileno(), st)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
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
        version, larger once inflated than its size allows, nested too deeply, holding NaN or
        Inf, or damaged or edited so that it no longer describes a valid net.
    """
    name = _fspath(path)
    if not os.path.exists(name):
        raise NetError(f"cannot load {name!r}: no such file")
    if not os.path.isfile(name):
        raise NetError(f"cannot load {name!r}: not a regular file")
    try:
        with open(name, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise NetError("the file is empty")
            with zipfile.ZipFile(fh) as zf:
                doc = _read_spec(zf, size)
                arrays = _ArrayReader(zf, size)
                return arrays.fill(decode(doc.net, arrays.check))
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


def _json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) nests more than ``limit`` lists/objects deep."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((v, depth + 1) for v in value if isinstance(v, (list, dict)))
    return False


def _read_spec(zf: zipfile.ZipFile, size: int) -> FileJSON:
    try:
        info = zf.getinfo(SPEC_MEMBER)
    except KeyError:
        raise NetError(f"not a netgraph net file: the archive has no {SPEC_MEMBER!r}") from None
    allowed = min(_MAX_SPEC_BYTES, max(_SPEC_ALLOWANCE, size))
    if info.file_size > allowed:
        raise NetError(f"{SPEC_MEMBER!r} inflates to {info.file_size} bytes, more than a file "
                       f"of {size} bytes may hold (at most {allowed})")
    too_deep = False
    try:
        data = json.loads(zf.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NetError(f"{SPEC_MEMBER!r} is not valid JSON ({e})") from None
    except RecursionError:  # deeper than the parser's own limit
        too_deep = True
    if too_deep or _json_depth_exceeds(data, MAX_JSON_DEPTH):
        raise NetError(f"{SPEC_MEMBER!r} nests more than {MAX_JSON_DEPTH} levels deep (nets "
                       f"may nest at most {MAX_DEPTH} levels)")
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


class _ArrayReader:
    """The arrays of one archive, in two passes.

    ``check(ref, what)`` runs while the net is decoded: it checks the member against the
    shape ``net.json`` records — the byte budget (all arrays together may not need more
    bytes than the file has, so nothing inflates beyond the file's size), the member's byte
    count and its ``.npy`` header — and returns a zero-memory stand-in of that shape, so that
    shape inference checks the recorded shapes against the net's structure and port sizes.
    ``fill(net)`` then reads each array, checks it is finite, and puts it in place.
    """

    def __init__(self, zf: zipfile.ZipFile, size: int):
        self.zf, self.size, self.budget = zf, size, size
        self.pending: dict[int, tuple[zipfile.ZipInfo, str, np.ndarray]] = {}

    def check(self, ref: ArrayJSON, what: str) -> np.ndarray:
        shape = tuple(ref.shape)
        if len(shape) > _MAX_RANK:
            raise NetError(f"{what}: {SPEC_MEMBER!r} gives it rank {len(shape)}")
        if any(d > np.iinfo(np.intp).max for d in shape):
            raise NetError(f"{what}: {SPEC_MEMBER!r} gives shape {shape}, a dimension beyond "
                           "any array's")
        nbytes = 4 * math.prod(shape)
        if nbytes > self.budget:
            room = (f"the file has only {self.size} bytes" if self.budget == self.size else
                    f"only {self.budget} of the file's {self.size} bytes are left after the "
                    "arrays before it")
            raise NetError(f"{what}: {SPEC_MEMBER!r} gives shape {shape}, {nbytes} bytes of "
                           f"float32, but {room} (each array is stored uncompressed, in a "
                           "member of its own)")
        try:
            info = self.zf.getinfo(ref.member)
        except KeyError:
            raise NetError(f"{what}: the file has no member {ref.member!r}") from None
        if info.file_size > nbytes + _NPY_HEADER_MAX or info.file_size > self.budget:
            raise NetError(f"{what}: member {ref.member!r} has {info.file_size} bytes, too many "
                           f"for a float32 array of shape {shape}")
        self.budget -= info.file_size
        header, held = npy_header(self.zf, info, what)
        if held != shape:
            raise NetError(f"{what}: {SPEC_MEMBER!r} gives shape {shape}, but member "
                           f"{ref.member!r} holds shape {held}")
        if info.file_size != header + nbytes:
            raise NetError(f"{what}: member {ref.member!r} has {info.file_size} bytes; a "
                           f"float32 array of shape {shape} has {header + nbytes}")
        stand_in = np.broadcast_to(np.float32(0), shape)  # zero strides: no memory
        self.pending[id(stand_in)] = (info, what, stand_in)
        return stand_in

    def fill(self, net: Net) -> Net:
        """``net`` with every stand-in replaced by its array, read and checked."""
        read: dict[int, np.ndarray] = {}
        for _, sub in walk(net):
            values = sub._arrays()
            found = {k: id(v) for k, v in values.items() if v is not None and id(v) in self.pending}
            for key in found.values():
                if key not in read:
                    read[key] = self._read(*self.pending[key][:2])
            if found:
                sub._set(_array_values={**values, **{k: read[i] for k, i in found.items()}})
        return net

    def _read(self, info: zipfile.ZipInfo, what: str) -> np.ndarray:
        with self.zf.open(info) as f:
            array = np.lib.format.read_array(f, allow_pickle=False,
                                             max_header_size=_NPY_HEADER_MAX)
            if f.read(1):  # also completes the CRC check
                raise NetError(f"{what}: member {info.filename!r} has bytes after its array")
        return validated_array(array, what)  # float32, native byte order, read-only


def npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> tuple[int, tuple]:
    """Check that member ``info`` starts with the ``.npy`` header of a float32 array; return
    the header's length in bytes and the shape it gives. Reads at most
    ``_NPY_HEADER_MAX + 12`` bytes of the member."""
    member = repr(info.filename)
    with zf.open(info) as f:
        head = f.read(12)
        if head[:6] != b"\x93NUMPY":
            if head[:4] == b"PK\x03\x04":
                raise NetError(f"{what}: member {member} is an .npz archive, not a single .npy "
                               "array")
            if head[:1] == b"\x80":
                raise NetError(f"{what}: member {member} holds a Python pickle, not a .npy "
                               "array; loading never unpickles")
            raise NetError(f"{what}: member {member} is not a plain .npy array (no .npy magic "
                           "string)")
        version = (head[6], head[7]) if len(head) >= 8 else None
        if version not in ((1, 0), (2, 0)) or len(head) < 12:
            raise NetError(f"{what}: member {member} is not a plain .npy array (version "
                           f"{version}, {len(head)} bytes)")
        start = 10 if version == (1, 0) else 12
        length = int.from_bytes(head[8:start], "little")
        if length > _NPY_HEADER_MAX:
            raise NetError(f"{what}: member {member} has a .npy header of {length} bytes")
        text = head[start:] + f.read(length - (len(head) - start))
    try:
        reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)
        stream = io.BytesIO(head[:start] + text)
        stream.seek(8)
        shape, fortran, dtype = reader(stream, max_header_size=_NPY_HEADER_MAX)
    except (ValueError, SyntaxError, EOFError) as e:
        raise NetError(f"{what}: member {member} is not a plain .npy array ({e})") from None
    if dtype.hasobject:
        raise NetError(f"{what}: member {member} holds pickled Python objects (dtype "
                       f"{dtype}); loading never unpickles (allow_pickle=False)")
    if dtype.kind != "f" or dtype.itemsize != 4 or dtype.fields is not None:
        raise NetError(f"{what}: member {member} has dtype {dtype}; arrays are stored as "
                       "float32")
    return start + length, tuple(shape)
