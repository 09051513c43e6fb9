"""Training data: the accepted forms, validation once per run, batches with length bucketing.

Examples are validated and converted once, when training starts (``InputDataError`` naming
the port for anything wrong); each batch then only gathers and pads. A fixed-shape port is
kept as one stacked array, a port whose first dimension varies as one flat array of all
positions plus offsets and lengths, so a padded batch is built with a single gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import NUMERIC_KINDS, check_values, pad_examples, split_examples, with_hints
from ..coding import encode_training_data
from ..compile import PortMeta
from ..errors import InputDataError
from ..net import Net
from ..ports import NetPort

__all__ = ["as_port_dict", "PortData", "TrainData", "round_batches", "fixed_batches"]

#: a round's examples are shuffled, cut into chunks of this many batches, and sorted by length
#: within each chunk (varying-length data only), so that a batch holds similar lengths
BUCKET_CHUNK = 16

_FORMS = ("a dict port -> list/array of examples, a list of dicts port -> example, or "
          "(inputs, targets) for a net with one input and one output")


def _key(k: Any) -> Any:
    return k.port if isinstance(k, NetPort) and k.layer is None else k


def as_port_dict(data: Any, inputs: Sequence[str], targets: Sequence[str],
                 what: str = "training data", net: Net | None = None) -> dict[str, Any]:
    """``data`` in any accepted form as a dict ``port -> examples`` holding exactly the ports
    ``inputs`` + ``targets`` (the training net's inputs). With the user's ``net``, raw
    examples (strings, labels) of its encoded inputs and of the targets of its decoded
    outputs become indices."""
    expected = list(inputs) + list(targets)
    if isinstance(data, dict):
        out = {_key(k): v for k, v in data.items()}
    elif isinstance(data, tuple) and len(data) == 2:
        if len(inputs) != 1 or len(targets) != 1:
            raise InputDataError(f"{what}: the (inputs, targets) form needs a net with one input "
                                 f"and one output; this training net takes {expected}: give a "
                                 "dict port -> examples")
        out = {inputs[0]: data[0], targets[0]: data[1]}
    elif isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        out = {}
        for port in expected:
            column = []
            for i, d in enumerate(data):
                if port not in d and NetPort(port) not in d:
                    raise InputDataError(f"{what}: example {i} has no value for port {port!r}")
                column.append(d[port] if port in d else d[NetPort(port)])
            out[port] = column
        for i, d in enumerate(data):
            extra = [k for k in map(_key, d) if k not in expected]
            if extra:
                raise InputDataError(f"{what}: example {i} gives unknown port {extra[0]!r}; the "
                                     f"training net takes {expected}")
    else:
        shown = type(data).__name__ if not isinstance(data, list) else "an empty list" \
            if not data else "a list that is not a list of dicts"
        raise InputDataError(f"{what} must be {_FORMS}; got {shown}")
    for port in expected:
        if port not in out:
            role = "target" if port in targets else "input"
            raise InputDataError(f"{what}: no data for {role} port {port!r}; the training net "
                                 f"takes {expected}")
    for port in out:
        if port not in expected:
            raise InputDataError(f"{what}: unknown port {port!r}; the training net takes "
                                 f"{expected}")
    if net is None:
        return out
    try:
        return encode_training_data(net, out, list(targets))
    except InputDataError as e:
        raise InputDataError(f"{what}: {e}") from None


def _fast_fixed(x: Any, meta: PortMeta) -> np.ndarray | None:
    """``x`` as a validated ``(N, *dims)`` array when it is a regular numeric batch that passes
    every check at once; None when the slow, per-example path must decide (and explain)."""
    try:
        a = np.asarray(x)
    except (ValueError, TypeError):
        return None
    if a.dtype.kind not in NUMERIC_KINDS or a.ndim != meta.rank + 1 or a.shape[0] == 0 or \
            a.shape[1:] != meta.dims:
        return None
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return None
    if meta.integer:  # integers, in range (checked before the cast to int64 could wrap)
        try:
            return check_values(a, meta, "")
        except InputDataError:
            return None
    with np.errstate(over="ignore"):
        a = a.astype(np.float32, copy=False)
    return a if np.isfinite(a).all() else None  # overflow: the slow path explains


def _examples(x: Any, meta: PortMeta, port: str, what: str,
              values: bool = True) -> list[np.ndarray]:
    """The examples of ``x``, their shapes checked (and, with ``values``, their values)."""
    if isinstance(x, (list, tuple)) and len(x) == 0 or isinstance(x, np.ndarray) and \
            x.ndim and x.shape[0] == 0:
        raise InputDataError(f"{what}: data for port {port!r} is empty")
    examples, is_batch = split_examples(x, meta, port, values)
    if not is_batch:
        raise InputDataError(f"{what}: data for port {port!r} is a single example; give a list "
                             "(or an array with a leading batch axis) of examples")
    return examples


class PortData:
    """One port's examples, validated and converted (float32, or int64 for indices)."""

    def __init__(self, x: Any, meta: PortMeta, port: str, what: str):
        self.meta, self.port = meta, port
        self.fixed: np.ndarray | None = None
        self.flat: np.ndarray | None = None
        self.examples: list[np.ndarray] | None = None
        self.lengths: np.ndarray | None = None
        varying_axes = [a for a, k in enumerate(meta.keys) if k is not None]
        if not varying_axes:
            fast = _fast_fixed(x, meta)
            self.fixed = fast if fast is not None else self._stack(x, what)
            self.n = len(self.fixed)
            return
        if varying_axes == [0]:
            examples = _examples(x, meta, port, what, values=False)
            self.n = len(examples)
            self.lengths = np.array([len(e) for e in examples], dtype=np.int64)
            self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
            self.flat = self._checked_flat(examples)
        else:  # several varying dims (not produced by the current layers): pad per batch
            self.examples = [self._cast(e) for e in _examples(x, meta, port, what)]
            self.n = len(self.examples)

    def _cast(self, e: np.ndarray) -> np.ndarray:
        if self.meta.integer:
            return e.astype(np.int64, copy=False)
        with np.errstate(over="ignore"):
            out = e.astype(np.float32, copy=False)
        if not np.isfinite(out).all():  # the values were checked finite: float32 overflowed
            raise InputDataError(f"data for port {self.port!r} has values up to "
                                 f"{float(np.abs(e).max()):.3g}, beyond the float32 range in "
                                 "which training computes; rescale the data")
        return out

    def _checked_flat(self, examples: list[np.ndarray]) -> np.ndarray:
        """All positions of ``examples`` (shapes checked) in one array, their values checked
        at once (finite; integers in range for integer ports) and converted. When the check
        fails, or the examples differ in dtype (a joint one could round large integers), the
        examples are checked one by one: the same result, or the error naming the example."""
        if len({e.dtype for e in examples}) == 1:
            flat = np.concatenate(examples, axis=0)
            try:
                return self._cast(check_values(flat, self.meta, self.port))
            except InputDataError:
                pass
        checked = [self._cast(check_values(e, self.meta, self.port, f" (example {k})"))
                   for k, e in enumerate(examples)]
        return np.concatenate(checked, axis=0)

    def _stack(self, x: Any, what: str) -> np.ndarray:
        return np.stack([self._cast(e) for e in _examples(x, self.meta, self.port, what)])

    def example_lengths(self) -> dict[Any, np.ndarray]:
        """Length key -> per-example lengths (varying first dims only)."""
        if self.lengths is not None:
            return {self.meta.keys[0]: self.lengths}
        if self.examples is not None:
            return {self.meta.keys[a]: np.array([e.shape[a] for e in self.examples])
                    for a, k in enumerate(self.meta.keys) if k is not None}
        return {}

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, dict[Any, np.ndarray]]:
        """The padded batch of examples ``idx`` and its lengths by length key."""
        if self.fixed is not None:
            return self.fixed[idx], {}
        if self.flat is not None:
            lens = self.lengths[idx]
            steps = np.arange(int(lens.max()))
            mask = steps[None, :] < lens[:, None]
            pos = np.where(mask, self.offsets[idx][:, None] + steps[None, :], 0)
            out = self.flat[pos]
            if not mask.all():
                out[~mask] = 0
            return out, {self.meta.keys[0]: lens}
        dt = np.float32
        arr, lens = pad_examples([self.examples[i] for i in idx], self.meta, dt)
        return arr, {self.meta.keys[a]: v for a, v in lens.items()}


class TrainData:
    """All ports' examples of a training (or validation) set, checked for consistency."""

    def __init__(self, data: dict[str, Any], metas: dict[str, PortMeta], what: str,
                 hints: dict[str, str] | None = None):
        self.ports = {}
        for p, meta in metas.items():
            try:
                self.ports[p] = PortData(data[p], meta, p, what)
            except InputDataError as e:
                msg = str(with_hints(e, hints or {}))
                raise InputDataError(msg if msg.startswith(what) else f"{what}: {msg}") from None
        counts = {p: d.n for p, d in self.ports.items()}
        if len(set(counts.values())) > 1:
            shown = ", ".join(f"{p!r}: {n}" for p, n in counts.items())
            raise InputDataError(f"{what}: inconsistent numbers of examples given to the ports "
                                 f"({shown})")
        self.n = next(iter(counts.values()))
        owner: dict[Any, tuple[str, np.ndarray]] = {}
        total = np.zeros(self.n, dtype=np.int64)
        for p, d in self.ports.items():
            for key, lens in d.example_lengths().items():
                if key in owner:
                    q, other = owner[key]
                    bad = np.flatnonzero(other != lens)
                    if bad.size:
                        i = int(bad[0])
                        raise InputDataError(f"{what}: example {i}: the sequence given to port "
                                             f"{p!r} has length {int(lens[i])}, but the one given "
                                             f"to port {q!r} has length {int(other[i])}; the net "
                                             "needs them equal")
                else:
                    owner[key] = (p, lens)
                    total += lens
        #: per-example sum of sequence lengths (None for fixed-shape data): the bucketing key
        self.sizes = total if owner else None

    def batch(self, idx: np.ndarray) -> tuple[dict[str, np.ndarray], dict[Any, np.ndarray]]:
        """Padded inputs of examples ``idx`` and the lengths of their varying dims."""
        arrays, lengths = {}, {}
        for p, d in self.ports.items():
            arrays[p], lens = d.take(idx)
            lengths.update(lens)
        return arrays, lengths


def round_batches(n: int, batch_size: int, rng: np.random.Generator,
                  sizes: np.ndarray | None = None) -> list[np.ndarray]:
    """One round's batches: a fresh random permutation cut into batches (the last may be
    smaller). With ``sizes`` (sequence lengths), examples are sorted by size within random
    chunks of :data:`BUCKET_CHUNK` batches, so padding stays small, and the batch order is
    shuffled again."""
    perm = rng.permutation(n)
    if sizes is not None:
        chunk = batch_size * BUCKET_CHUNK
        parts = []
        for start in range(0, n, chunk):
            block = perm[start:start + chunk]
            parts.append(block[np.argsort(sizes[block], kind="stable")])
        perm = np.concatenate(parts)
    batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    if sizes is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def fixed_batches(n: int, batch_size: int, sizes: np.ndarray | None = None) -> list[np.ndarray]:
    """Deterministic batches for evaluation (validation): sorted by size when it varies."""
    order = np.argsort(sizes, kind="stable") if sizes is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
