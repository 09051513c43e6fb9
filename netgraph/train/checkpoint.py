"""Checkpoints (``training_progress_checkpointing``) and resuming (``resume=``).

A checkpoint is a :func:`netgraph.save` file of the net being trained (so :func:`netgraph.load`
reads it as a net) with the training state in further members that ``load`` ignores:

* ``training/state.json`` — counters, the loss, measurement and learning-rate lists, the
  stopping criterion's state, the random generators' states, the optimizer's name and step
  count, and the held-out split (see :meth:`TrainState.to_doc`);
* ``training/<name>.npy`` — float32 vectors over the trained scalars: the optimizer's moment
  buffers (``optimizer.m``, ...) and the best validation round's arrays (``best``).

Files are written atomically (a temporary file, fsync, rename: see :mod:`netgraph.io`), so a
reader sees the previous checkpoint or the new one, never half of one. In a directory every
checkpoint has its own file, ``checkpoint-<round, 8 digits>.ngz``, so that sorting the names
sorts them by round.
"""

from __future__ import annotations

import json
import numbers
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import NetError, where
from ..io import load, npy_header, save_with_members
from ..layer import Layer
from ..net import Net
from ..tree import walk

__all__ = ["Checkpointing", "parse_checkpointing", "write_checkpoint", "read_checkpoint",
           "read_vector", "fingerprint", "check_structure", "STATE_MEMBER"]

STATE_MEMBER = "training/state.json"
STATE_FORMAT = "netgraph-training-state"
STATE_VERSION = 1
_PREFIX = "checkpoint-"
_SUFFIX = ".ngz"


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often checkpoints are written."""

    kind: str  # "Directory" or "File"
    path: str
    every: int = 1

    def due(self, round_: int) -> bool:
        return round_ % self.every == 0

    def target(self, round_: int) -> str:
        if self.kind == "File":
            return self.path
        os.makedirs(self.path, exist_ok=True)
        return os.path.join(self.path, f"{_PREFIX}{round_:08d}{_SUFFIX}")


def _interval(opts: Any) -> int:
    every = opts.get("interval", ("Rounds", 1)) if isinstance(opts, dict) else None
    if not (isinstance(opts, dict) and set(opts) <= {"interval"} and isinstance(every, tuple)
            and len(every) == 2 and every[0] == "Rounds" and isinstance(every[1], numbers.Integral)
            and not isinstance(every[1], bool) and every[1] >= 1):
        raise NetError("NetTrain: the options of training_progress_checkpointing are "
                       f"{{'interval': ('Rounds', k)}} with an int k >= 1, got {opts!r}")
    return int(every[1])


def parse_checkpointing(spec: Any) -> Checkpointing | None:
    """``None | ("Directory", dir) | ("File", path)``, optionally with ``{"interval":
    ("Rounds", k)}`` as a third element."""
    if spec is None:
        return None
    if not (isinstance(spec, tuple) and len(spec) in (2, 3) and spec[0] in ("Directory", "File")
            and isinstance(spec[1], (str, os.PathLike))):
        raise NetError("NetTrain: training_progress_checkpointing must be None, ('Directory', "
                       "dir) or ('File', path), optionally with {'interval': ('Rounds', k)}; "
                       f"got {spec!r}")
    every = _interval(spec[2]) if len(spec) == 3 else 1
    path = os.fsdecode(os.fspath(spec[1]))
    if spec[0] == "Directory" and os.path.exists(path) and not os.path.isdir(path):
        raise NetError(f"NetTrain: the checkpoint directory {path!r} exists and is not a "
                       "directory")
    return Checkpointing(spec[0], path, every)


def write_checkpoint(path: str, net: Net, doc: dict, arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``net`` with the training state ``doc`` and the float32 vectors
    ``arrays`` (name -> array) to ``path``."""
    members: dict[str, bytes | np.ndarray] = {
        STATE_MEMBER: json.dumps({"format": STATE_FORMAT, "version": STATE_VERSION, **doc},
                                 allow_nan=True).encode("utf-8")}
    for name, a in arrays.items():
        members[f"training/{name}.npy"] = np.ascontiguousarray(a, dtype=np.float32)
    save_with_members(net, path, members)


def _latest(path: str) -> str:
    names = sorted(n for n in os.listdir(path) if n.startswith(_PREFIX) and n.endswith(_SUFFIX))
    if not names:
        raise NetError(f"NetTrain: resume={path!r} is a directory without checkpoints "
                       f"({_PREFIX}*{_SUFFIX} files)")
    return os.path.join(path, names[-1])


def read_checkpoint(path: Any) -> tuple[Net, dict, str]:
    """The net and the training state of checkpoint ``path`` (a directory: its latest
    checkpoint), and the file's path (to read its vectors with :func:`read_vector`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise NetError(f"NetTrain: resume must be the path of a checkpoint, got {path!r}")
    path = os.fsdecode(os.fspath(path))
    if os.path.isdir(path):
        path = _latest(path)
    net = load(path)  # a missing or damaged file is a NetError naming it
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(STATE_MEMBER)
            if info.file_size > max(1 << 20, os.path.getsize(path)):  # stored, not deflated
                raise NetError(f"its {STATE_MEMBER!r} inflates to {info.file_size} bytes")
            doc = json.loads(zf.read(info).decode("utf-8"))
    except KeyError:
        raise NetError(f"NetTrain: {path!r} is a saved net but not a training checkpoint (it "
                       f"has no {STATE_MEMBER!r})") from None
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, NetError) as e:
        raise NetError(f"NetTrain: cannot resume from {path!r}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT or \
            doc.get("version") != STATE_VERSION:
        raise NetError(f"NetTrain: cannot resume from {path!r}: its training state has format "
                       f"{doc.get('format') if isinstance(doc, dict) else None!r} version "
                       f"{doc.get('version') if isinstance(doc, dict) else None!r}, expected "
                       f"{STATE_FORMAT!r} version {STATE_VERSION}")
    return net, doc, path


def read_vector(path: str, name: str, size: int) -> np.ndarray:
    """The float32 vector ``name`` of checkpoint ``path``, checked to have ``size`` entries
    (its ``.npy`` header is checked before any data is read)."""
    member = f"training/{name}.npy"
    what = f"NetTrain: checkpoint {path!r}"
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise NetError(f"{what} has no {member!r}") from None
        header, shape = npy_header(zf, info, what)
        if shape != (size,) or info.file_size != header + 4 * size:
            raise NetError(f"{what}: {member!r} holds shape {shape}, expected ({size},)")
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False).astype(np.float32)


def fingerprint(net: Net) -> list[tuple]:
    """The structure of ``net``: per sub-net its path, class, parameters (layers), wiring
    (graphs) and array shapes."""
    out = []
    for path, sub in walk(net):
        if isinstance(sub, Layer):
            shapes = {k: None if a is None else tuple(a.shape) for k, a in sub._arrays().items()}
            out.append((path, type(sub).__name__, sub.params.model_dump(mode="json"), shapes))
        else:
            out.append((path, type(sub).__name__, repr(getattr(sub, "_edges", ())), {}))
    return out


def check_structure(net: Net, saved: Net, path: str) -> None:
    """A ``NetError`` naming the first node that differs when ``net`` does not have the
    structure of the checkpoint net ``saved``."""
    mine, theirs = fingerprint(net), fingerprint(saved)
    for a, b in zip(mine, theirs):
        if a != b:
            node = where(a[0]) if a[0] == b[0] else f"{where(a[0])} / {where(b[0])}"
            raise NetError(f"NetTrain: resume={path!r}: the net does not have the structure of "
                           f"the checkpoint's net: at {node} the net has {a[1]} {a[2]} with "
                           f"arrays {a[3]}, the checkpoint {b[1]} {b[2]} with arrays {b[3]}")
    if len(mine) != len(theirs):
        raise NetError(f"NetTrain: resume={path!r}: the net does not have the structure of the "
                       f"checkpoint's net: it has {len(mine)} nodes, the checkpoint's "
                       f"{len(theirs)}")
