"""User data <-> padded arrays plus lengths.

Single example versus batch is decided by rank, as in Wolfram: data of the port's rank is one
example, rank + 1 (or a list of examples, ragged allowed) is a batch. Every bad input raises
``InputDataError`` naming the port.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import scratch
from .allocation import check_request, request_bytes, total_memory
from .blas import single_threaded
from .compile import PortMeta
from .errors import InputDataError
from .shapes import Index, display

__all__ = ["Batch", "to_batch", "from_batch", "pad_examples", "split_examples", "unwrap_objects",
           "check_values", "with_hints"]


def _depth(x: Any) -> int:
    """Rank of (possibly ragged) nested data, measured along first elements."""
    d = 0
    while True:
        if isinstance(x, np.ndarray):
            return d + x.ndim
        if isinstance(x, (list, tuple)):
            d += 1
            if len(x) == 0:
                return d
            x = x[0]
            continue
        return d


def _expected(meta: PortMeta) -> Any:
    return display(tuple("Varying" if k is not None else n for n, k in zip(meta.dims, meta.keys)),
                   meta.elem)


#: the dtype kinds of numeric data (bool, signed and unsigned integers, reals)
NUMERIC_KINDS = frozenset("biuf")


def _plain_examples(examples: list | tuple, meta: PortMeta) -> bool:
    """Whether every one of ``examples`` is already a numeric ndarray of the port's shape (a
    varying length only on the first axis, and not 0), so that none needs :func:`_example`.
    Tested property by property over the whole batch — a set of the types, of the dtype
    kinds and of the shapes (as many as there are distinct lengths) — not example by
    example."""
    if {type(e) for e in examples} != {np.ndarray} or not (
            {e.dtype.kind for e in examples} <= NUMERIC_KINDS):
        return False
    shapes = {e.shape for e in examples}
    if not meta.varying:
        return shapes == {meta.dims}
    if not meta.first_varying:
        return False
    rank, tail = meta.rank, meta.dims[1:]
    return all(len(s) == rank and s[0] > 0 and s[1:] == tail for s in shapes)


def _example(x: Any, meta: PortMeta, port: str, k: int | None,
             values: bool = True) -> np.ndarray:
    which = "" if k is None else f" (example {k})"
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InputDataError(f"data for port {port!r}{which} is not a regular numeric array: "
                             f"{e}") from None
    if a.dtype.kind not in NUMERIC_KINDS:
        raise InputDataError(f"data for port {port!r}{which} is not numeric (got an array of "
                             f"{a.dtype}); expected {_expected(meta)!r}")
    if a.ndim != meta.rank:
        raise InputDataError(f"data for port {port!r}{which} has shape {a.shape} but the port "
                             f"expects {_expected(meta)!r}")
    for axis, (n, key) in enumerate(zip(meta.dims, meta.keys)):
        if key is not None:
            if a.shape[axis] == 0:
                raise InputDataError(f"data for port {port!r}{which} is an empty sequence; "
                                     "all sequences must have non-zero length")
        elif a.shape[axis] != n:
            raise InputDataError(f"data for port {port!r}{which} has shape {a.shape} but the "
                                 f"port expects {_expected(meta)!r}")
    return check_values(a, meta, port, which) if values else a


#: int64 holds exactly the integers in [-2**63, 2**63); both bounds are exact floats
_INT64_LOW, _INT64_END = -2.0 ** 63, 2.0 ** 63


def _show_number(x: Any) -> str:
    """An integer-valued number as a user would write it (``7``, ``1e+30``)."""
    if isinstance(x, np.floating) and abs(float(x)) >= 1e20:
        return f"{float(x):.6g}"
    return str(int(x))


def check_values(a: np.ndarray, meta: PortMeta, port: str, which: str = "") -> np.ndarray:
    """NaN/Inf and integer/range checks; returns ``a`` (as int64 for integer ports).

    An integer port takes integer values ``-2**63 <= x < 2**63`` (int64); an ``Index(n)``
    port ``0 <= x < n``. The range is checked on the values as given, before the conversion
    to int64 could wrap them."""
    if a.dtype.kind == "f" and not _all_finite(a):
        raise InputDataError(f"data for port {port!r}{which} contains NaN or Inf")
    if meta.integer:
        if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
            raise InputDataError(f"data for port {port!r}{which} must be integers "
                                 f"({_expected(meta)!r})")
        if a.size:
            lo, hi = a.min(), a.max()
            if isinstance(meta.elem, Index):
                if lo < 0 or hi >= meta.elem.n:
                    raise InputDataError(
                        f"data for port {port!r}{which} has values from {_show_number(lo)} to "
                        f"{_show_number(hi)}, outside the range 0..{meta.elem.n - 1} of "
                        f"{meta.elem!r}")
            elif (a.dtype.kind == "f" and (lo < _INT64_LOW or hi >= _INT64_END)) or (
                    a.dtype.kind == "u" and int(hi) >= 2 ** 63):
                raise InputDataError(
                    f"data for port {port!r}{which} has values from {_show_number(lo)} to "
                    f"{_show_number(hi)}, outside the range of 'Integer' (int64: -2**63 .. "
                    "2**63 - 1)")
        a = a.astype(np.int64)
    return a


#: from this many elements on, :func:`_all_finite` checks a sum first
_SUM_CHECK_ELEMENTS = 1 << 16
#: the dtypes whose sum of squares BLAS computes (:func:`_all_finite`)
_DOT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _all_finite(a: np.ndarray) -> bool:
    """Whether every element of the real array ``a`` is finite. A large array is checked by
    one read-only pass first, with no temporary: the sum of its squares (one BLAS dot
    product, at one thread; half the time of NumPy's sum) for C-contiguous float32 and
    float64, else its sum. A NaN or an infinity makes either NaN or infinite; only when it
    is not finite — a bad element, or finite ones whose squares or sum overflow — is ``a``
    checked element by element."""
    if a.size >= _SUM_CHECK_ELEMENTS:
        with np.errstate(over="ignore", invalid="ignore"):
            if a.dtype in _DOT_DTYPES and a.flags.c_contiguous:
                flat = a.reshape(-1)
                with single_threaded():
                    check = np.dot(flat, flat)
            else:
                check = np.add.reduce(a, axis=None)
            if np.isfinite(check):
                return True
    return bool(np.isfinite(a).all())


def unwrap_objects(x: Any) -> Any:
    """An object-dtype ndarray as the nested lists it stands for: ``np.array([a, b],
    dtype=object)`` of two differently long arrays is the ragged batch ``[a, b]`` (NumPy's
    ``tolist`` stops at the arrays it holds); anything else is returned as it is."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x.tolist()
    return x


def split_examples(x: Any, meta: PortMeta, port: str,
                   values: bool = True) -> tuple[list[np.ndarray], bool]:
    """The examples in ``x`` and whether ``x`` was a batch. Shapes are always validated;
    element values (finite, integer range) only with ``values=True``."""
    x = unwrap_objects(x)
    if isinstance(x, (str, bytes, dict)) or x is None:
        raise InputDataError(f"data for port {port!r} is {type(x).__name__}, not numeric; "
                             f"expected {_expected(meta)!r}")
    if isinstance(x, (list, tuple)) and len(x) == 0:
        raise InputDataError(f"data for port {port!r} is empty (an empty batch or an empty "
                             f"example); expected {_expected(meta)!r}")
    depth = _depth(x) if isinstance(x, (list, tuple, np.ndarray)) else 0
    r = meta.rank
    if depth == r:
        example = x if _plain_examples((x,), meta) else _example(x, meta, port, None, False)
        return [check_values(example, meta, port) if values else example], False
    if depth == r + 1:
        if len(x) == 0:
            raise InputDataError(f"data for port {port!r} is an empty batch")
        examples = list(x) if _plain_examples(x, meta) else [
            _example(e, meta, port, k, False) for k, e in enumerate(x)]
        if values:
            examples = [check_values(e, meta, port, f" (example {k})")
                        for k, e in enumerate(examples)]
        return examples, True
    shape = np.shape(x) if depth and not isinstance(x, list) else f"rank {depth}"
    raise _index_error(meta, port, depth, f"data for port {port!r} has {shape}, but the port "
                       f"expects {_expected(meta)!r}: rank {r} for one example or rank {r + 1} "
                       "for a batch", _last_size(x))


def _last_size(x: Any) -> int | None:
    """The size of the innermost axis of (possibly ragged) nested data, along first elements."""
    while isinstance(x, (list, tuple)) and x:
        if not isinstance(x[0], (list, tuple, np.ndarray)):
            return len(x)
        x = x[0]
    return x.shape[-1] if isinstance(x, np.ndarray) and x.ndim else None


def _index_error(meta: PortMeta, port: str, depth: int, message: str,
                 last: int | None) -> InputDataError:
    """The rank error ``message``; for data with one axis more than an ``Index(n)`` port
    takes, the last of size ``n``, it adds that these look like one-hot vectors. Such an
    error carries ``index_port`` so that the caller can add the consumers' advice
    (:func:`with_hints`)."""
    n = getattr(meta.elem, "n", None)
    if n is None or last != n or depth not in (meta.rank + 1, meta.rank + 2):
        return InputDataError(message)
    err = InputDataError(f"{message}; these look like one-hot or probability vectors over the "
                         f"{n} classes of {meta.elem!r}: give class indices 0..{n - 1} instead "
                         "(e.g. np.argmax(x, axis=-1))")
    err.index_port = port
    return err


def with_hints(err: InputDataError, hints: dict[str, str]) -> InputDataError:
    """``err`` with the advice ``hints[port]`` added when it is a one-hot error (see
    :func:`_index_error`) for ``port``."""
    hint = hints.get(getattr(err, "index_port", None))
    if not hint:
        return err
    new = InputDataError(f"{err}, {hint}")
    new.index_port = err.index_port
    return new


def pad_examples(examples: list[np.ndarray], meta: PortMeta, dtype: Any,
                 fill: float = 0.0, port: str = "") -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Stack examples into one array, padding varying dims with ``fill``. Returns the array
    and, per varying axis, the lengths. A padded array larger than the machine's memory is an
    ``InputDataError`` (naming ``port``), raised before anything is allocated.

    Each example is copied once, straight into the padded array in ``dtype`` (no stacked or
    converted intermediate), which is :func:`netgraph.scratch.empty` memory: data and padding
    are written once each, for a varying first axis by one concatenate of the examples and
    their paddings."""
    dt = np.int64 if meta.integer else dtype
    if not meta.varying:
        return np.stack(examples, dtype=dt, casting="unsafe"), {}
    if meta.first_varying:
        sizes = {0: [len(e) for e in examples]}
        shape = [len(examples), max(sizes[0]), *meta.dims[1:]]
    else:
        sizes = {axis: [e.shape[axis] for e in examples]
                 for axis, key in enumerate(meta.keys) if key is not None}
        shape = [len(examples)] + [max(sizes[a]) if a in sizes else n
                                   for a, n in enumerate(meta.dims)]
    total = total_memory()
    if total is not None and (nbytes := request_bytes(shape, dt)) > total:  # message if needed
        longest = max(sizes.values(), key=max)
        check_request(nbytes, f"the batch of {len(examples)} examples given "
                      f"to port {port or '?'!r} padded to shape {tuple(shape)} "
                      f"({np.dtype(dt).name}; its longest example has length {max(longest)}, "
                      f"its shortest {min(longest)})", InputDataError)
    lengths = {axis: np.array(s, dtype=np.int64) for axis, s in sizes.items()}
    pad = 0 if meta.integer else fill
    if meta.first_varying:
        out = scratch.empty(tuple(shape), dt)  # every element is written once: data or padding
        lens, longest, tail = sizes[0], shape[1], tuple(shape[2:])
        # one concatenate in C of every example followed by its padding (views of one block)
        rows = (longest - min(lens),) + tail
        padding = np.zeros(rows, dt) if pad == 0 else np.full(rows, pad, dt)
        pads = {k: padding[:longest - k] for k in set(lens)}  # one view per distinct length
        parts = [None] * (2 * len(examples))
        parts[0::2], parts[1::2] = examples, map(pads.__getitem__, lens)
        np.concatenate(parts, out=out.reshape((-1,) + tail), casting="unsafe")
        return out, lengths
    out = np.full(shape, pad, dtype=dt)
    for b, e in enumerate(examples):
        out[(b,) + tuple(slice(0, s) for s in e.shape)] = e
    return out, lengths


class Batch:
    """Validated, padded inputs of one application."""

    def __init__(self, arrays: dict[str, np.ndarray], lengths: dict[Any, np.ndarray],
                 is_batch: bool, size: int):
        self.arrays, self.lengths, self.is_batch, self.size = arrays, lengths, is_batch, size


#: the largest finite value of each computing dtype (data beyond it would overflow)
_FLOAT_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float32, np.float64)}


def _plain(x: Any, meta: PortMeta, dtype: Any) -> tuple[np.ndarray, dict, bool] | None:
    """The fast path of :func:`to_batch`: data that is plainly valid, packed without looking
    at its examples one by one. That is an ndarray holding one example or a stacked batch
    (rank + 1) of exactly the port's shape (a varying length only on the first axis, then
    the same for every example, and not 0), of integers or reals, whose values pass the
    checks of :func:`check_values` by one min/max reduction: finite reals within the range
    of ``dtype`` (so the conversion cannot overflow), integers for an integer port within
    ``0..n-1`` for ``Index(n)`` and int64 for ``"Integer"``. Returns the padded array (a new
    one in the computing dtype: the net never holds the caller's array), the lengths per
    varying axis and whether it was a batch; None leaves the data — every error included —
    to the general path, whose result for accepted data is the same, bit for bit."""
    if type(x) is not np.ndarray or x.dtype.kind not in "iuf" or x.size == 0:
        return None
    rank, dims = meta.rank, meta.dims
    if x.ndim == rank:
        is_batch, example = False, x.shape
    elif x.ndim == rank + 1:
        is_batch, example = True, x.shape[1:]
    else:
        return None
    if not meta.varying:
        if example != dims:
            return None
    elif not meta.first_varying or example[1:] != dims[1:]:
        return None
    if meta.integer:
        dtype = np.int64
    if not _plain_values(x, meta, dtype):
        return None
    a = x.astype(dtype)
    if not is_batch:
        a = a[None]
    lengths = {0: np.full(len(a), a.shape[1], np.int64)} if meta.varying else {}
    return a, lengths, is_batch


def _plain_values(x: np.ndarray, meta: PortMeta, dtype: Any) -> bool:
    """Whether the values of ``x`` (integers or reals) certainly pass :func:`check_values`
    for ``meta`` and convert to ``dtype`` without overflow, by one min/max reduction."""
    kind = x.dtype.kind
    lo, hi = np.minimum.reduce(x, axis=None), np.maximum.reduce(x, axis=None)
    if meta.integer:
        if kind == "f":
            return False
        n, lo, hi = getattr(meta.elem, "n", None), int(lo), int(hi)
        return 0 <= lo and hi < n if n is not None else hi < 2 ** 63
    if kind == "f":  # compared as Python floats: NaN fails every comparison
        limit = _FLOAT_MAX[np.dtype(dtype)]
        return -limit <= float(lo) <= float(hi) <= limit
    return True


def _general(x: Any, meta: PortMeta, port: str, dtype: Any,
             fill: float) -> tuple[np.ndarray, dict, bool, int]:
    """Any data for ``port``: split into examples (shapes validated), padded with ``fill``,
    values validated by one vectorized check of the padded batch (per example only to name
    the one at fault)."""
    examples, is_batch = split_examples(x, meta, port, values=False)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values: reported below
        array, port_lengths = pad_examples(examples, meta, dtype, fill, port)
    try:  # one vectorized value check; the zero padding of real data is finite
        check_values(array if fill == 0 and not meta.integer else np.concatenate(
            [e.ravel() for e in examples]), meta, port)
    except InputDataError:  # find the example to blame
        for k, e in enumerate(examples):
            check_values(e, meta, port, f" (example {k})" if is_batch else "")
        # every example is finite: the conversion to ``dtype`` overflowed
        big = max(float(np.abs(e).max()) for e in examples)
        raise InputDataError(f"data for port {port!r} has values up to {big:.3g}, beyond "
                             f"the range of {np.dtype(dtype).name}; rescale the data or "
                             "compute with dtype=np.float64") from None
    return array, port_lengths, is_batch, len(examples)


def to_batch(data: dict[str, Any], metas: dict[str, PortMeta], dtype: Any,
             fill: float = 0.0) -> Batch:
    """The validated, padded batch of ``data`` (port -> one example or a batch)."""
    arrays: dict[str, np.ndarray] = {}
    lengths: dict[Any, np.ndarray] = {}
    owner: dict[Any, str] = {}
    sizes: dict[str, int] = {}
    batchness: dict[str, bool] = {}
    for port, meta in metas.items():
        plain = _plain(data[port], meta, dtype)
        if plain is not None:
            arrays[port], port_lengths, is_batch = plain
            size = len(arrays[port])
        else:
            arrays[port], port_lengths, is_batch, size = _general(data[port], meta, port,
                                                                   dtype, fill)
        batchness[port], sizes[port] = is_batch, size
        for axis, lens in port_lengths.items():
            key = meta.keys[axis]
            if key in lengths and not np.array_equal(lengths[key], lens):
                raise InputDataError(f"length of sequence given to port {port!r} "
                                     f"({lens.tolist()}) is inconsistent with the length given "
                                     f"to port {owner[key]!r} ({lengths[key].tolist()})")
            lengths[key], owner[key] = lens, port
    if len(set(batchness.values())) > 1:
        message = ("some ports were given one example and others a batch: "
                   + ", ".join(f"{p!r}: {'batch' if b else 'example'}"
                               for p, b in batchness.items()))
        for p, meta in metas.items():  # a one-hot vector given to an index port reads as a batch
            if batchness[p] and _depth(data[p]) == meta.rank + 1:
                err = _index_error(meta, p, meta.rank + 1, message, _last_size(data[p]))
                if hasattr(err, "index_port"):
                    raise err
        raise InputDataError(message)
    if len(set(sizes.values())) > 1:
        raise InputDataError("all input ports must be given batches of the same length; got "
                             + ", ".join(f"{p!r}: {n}" for p, n in sizes.items()))
    is_batch = next(iter(batchness.values()), False)
    return Batch(arrays, lengths, is_batch, next(iter(sizes.values()), 1))


def from_batch(value: np.ndarray, meta: PortMeta, lengths: dict[Any, np.ndarray],
               is_batch: bool) -> Any:
    """User form of a padded value: unpadded per example; a list for a varying batch."""
    if not meta.varying:
        return value if is_batch else value[0]
    if meta.first_varying:
        out = [value[b, :n] for b, n in enumerate(lengths[meta.keys[0]].tolist())]
    else:
        out = [value[(b,) + tuple(slice(0, None if key is None else int(lengths[key][b]))
                                  for key in meta.keys)] for b in range(value.shape[0])]
    return out if is_batch else out[0]
