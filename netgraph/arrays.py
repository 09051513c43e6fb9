"""What a net's array may hold: one check for every way a value gets into a net.

``NetReplacePart`` values, arrays given to a layer's constructor and arrays read by
``netgraph.load`` all pass through :func:`validated_array`, so that what is stored is always a
plain float32 ndarray whose every entry is finite. A value is accepted when it is a real
numeric array (or nested list, or scalar) — integer or floating dtype — and every entry ``x``
satisfies ``|x| <= 3.4028235e38`` after rounding to float32, i.e. ``isfinite(float32(x))``.
Booleans, complex numbers, strings, bytes, dates and times, objects, structured records and
masked arrays are refused: each has no single obvious real value, and a silent conversion
(dropping an imaginary part or a mask, ``True`` as 1.0, ``1e39`` as ``inf``) would corrupt
the net without a word.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import NetError

__all__ = ["validated_array"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_KIND_NAMES = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes",
               "M": "dates", "m": "time differences", "O": "Python objects",
               "V": "structured records"}


def validated_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a new read-only float32 ndarray, or a ``NetError`` naming ``what``.

    ``what`` says where the value goes, e.g. ``"array 'Weights' at node 'lin'"``; the message
    names it, the value's type or dtype and the offending entry.

    Raises
    ------
    NetError
        If ``value`` is not a real numeric array (see the module docstring), holds NaN or
        Inf, or holds an entry beyond float32's range (``|x| > 3.4028235e38``), which float32
        would store as ``inf``.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise NetError(f"{what} must be a plain numeric array, got a masked array (its masked "
                       "entries have no value); fill it first, e.g. value.filled(0.0)")
    if isinstance(value, (str, bytes, dict, set)) or value is None:
        raise NetError(f"{what} must be a real numeric array, got {type(value).__name__} "
                       f"{_short(value)}")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nested lists and the like
        raise NetError(f"{what} must be a regular real numeric array, got "
                       f"{type(value).__name__}: {e}") from None
    if a.dtype.kind not in "iuf":
        kind = _KIND_NAMES.get(a.dtype.kind, str(a.dtype))
        raise NetError(f"{what} must be a real numeric array (integers or floats), got an "
                       f"array of {kind} ({a.dtype}) of shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = _first(~np.isfinite(a))
        raise NetError(f"{what} contains NaN or Inf: {a[bad].item()!r} at index {bad} "
                       f"(shape {a.shape}); every entry must be finite")
    with np.errstate(over="ignore"):  # overflow is what the next line reports
        out = np.array(a, dtype=np.float32, order="C")
    if not np.isfinite(out).all():
        bad = _first(~np.isfinite(out))
        raise NetError(f"{what} has the entry {a[bad].item()!r} at index {bad}, beyond the "
                       f"range of float32 (|x| <= {_FLOAT32_MAX:.7g}), in which arrays are "
                       "stored: it would become inf; rescale it")
    out.flags.writeable = False
    return out


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """The index of the first true entry of ``mask``."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
