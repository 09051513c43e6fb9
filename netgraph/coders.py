"""Encoders and decoders: immutable values that stand for a port's spec and convert its data.

* ``NetEncoder("Characters", characters, *, ignore_case=False)`` — a string becomes the
  indices of its characters in ``characters``: type ``("Varying", Index(n))``, ``n`` the
  alphabet's size.
* ``NetEncoder("Tokens", tokens, *, ignore_case=False, unknown=True)`` — a string is split
  into words and punctuation marks (:data:`TOKEN_PATTERN`, ``\\w+|[^\\w\\s]``) that become
  their indices in ``tokens``; with ``unknown`` a token outside the list becomes index
  ``len(tokens)`` (type ``("Varying", Index(len(tokens) + 1))``), else it is an error.
* ``NetEncoder("Class", labels)`` — a label becomes its index: type ``Index(len(labels))``.
* ``NetDecoder("Class", labels)`` — a probability vector ``p`` over the labels becomes
  ``labels[argmax p]`` (a list of labels for a sequence of vectors); type: a
  ``len(labels)``-vector, or a sequence (any rank-2 array) of them.
* ``NetDecoder("Characters", characters)`` — a sequence of probability vectors becomes the
  string of the most probable characters; type: a sequence of ``len(characters)``-vectors.

Raw data is told from encoded data by its Python type: a ``str`` is a text for Characters and
Tokens and a label for Class (where labels are strings); where some labels are ints, a Python
``int`` is a label too and only NumPy integers and arrays are indices. Anything else is
already-encoded data and goes to the port as it is (validated as indices there).

Labels are strings or ints (not bools), distinct; alphabets and token lists have distinct
entries, also up to case with ``ignore_case=True`` (entries then compare lower-cased).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import InputDataError, NetError
from .shapes import Dim, Index, ParsedSpec, PortCoder, Tail

__all__ = ["NetEncoder", "NetDecoder", "TOKEN_PATTERN", "coder_from_json", "CODER_JSON_VERSION"]

#: how a Tokens encoder splits a text: words and single punctuation marks
TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
#: the version of the JSON form of a coder in saved files (``to_json``)
CODER_JSON_VERSION = 1

_ENCODER_KINDS = {"Characters": ("ignore_case",), "Tokens": ("ignore_case", "unknown"),
                  "Class": ()}
_DECODER_KINDS = {"Class": (), "Characters": ()}
_DEFAULTS = {"ignore_case": False, "unknown": True}


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _example(position: int | None, text: Any) -> str:
    """``example 3 ('Caf é')`` or ``the example 'Café'``, for messages."""
    shown = _shorten(repr(text))
    return f"the example {shown}" if position is None else f"example {position} ({shown})"


class _Coder(PortCoder):
    """What encoders and decoders share: a kind, a table of elements (characters, tokens or
    labels) with their indices, options, value semantics."""

    __slots__ = ("_kind", "_elements", "_options", "_index", "_int_labels")
    _kinds: dict[str, tuple[str, ...]] = {}

    def __init__(self, kind: Any, elements: Any = None, **options: Any):
        cls = type(self).__name__
        if not isinstance(kind, str) or kind not in self._kinds:
            raise NetError(f"{cls}: unknown kind {kind!r}; the kinds are {list(self._kinds)}")
        allowed = self._kinds[kind]
        for k in options:
            if k not in allowed:
                known = f"its options are {list(allowed)}" if allowed else "it takes no options"
                raise NetError(f"{cls}({kind!r}): unknown option {k!r}; {known}")
        opts = {k: options.get(k, _DEFAULTS[k]) for k in allowed}
        for k, v in opts.items():
            if not isinstance(v, (bool, np.bool_)):
                raise NetError(f"{cls}({kind!r}): option {k!r} must be True or False, got {v!r}")
        opts = {k: bool(v) for k, v in opts.items()}
        values = _elements(cls, kind, elements)
        index = _table(cls, kind, values, opts.get("ignore_case", False))
        for name, value in (("_kind", kind), ("_elements", values), ("_options", opts),
                            ("_index", index),
                            ("_int_labels", any(isinstance(v, int) for v in values))):
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------- value
    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self._kind, self._elements, tuple(self._options.items())))

    def _key(self) -> tuple:
        return (type(self), self._kind, self._elements, tuple(sorted(self._options.items())))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Coder) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = repr("".join(self._elements)) if self._kind == "Characters" else \
            repr(list(self._elements))
        opts = "".join(f", {k}={v!r}" for k, v in self._options.items() if v != _DEFAULTS[k])
        return f"{type(self).__name__}({self._kind!r}, {shown}{opts})"

    # ------------------------------------------------------------ properties
    @property
    def kind(self) -> str:
        """``"Characters"``, ``"Tokens"`` or ``"Class"``."""
        return self._kind

    @property
    def elements(self) -> tuple:
        """The characters, tokens or labels, in index order."""
        return self._elements

    @property
    def options(self) -> dict[str, bool]:
        return dict(self._options)

    @property
    def size(self) -> int:
        """The number of indices the port's type holds (``n`` of its ``Index(n)`` or of its
        vectors): the elements, plus one for the unknown token of a Tokens encoder."""
        return len(self._elements) + int(self._options.get("unknown", False))

    def describe(self) -> str:
        """Kind and size for summaries: ``"Characters, 47 characters"``, ``"Tokens, 1,000
        tokens + unknown"``, ``"Class, 3 labels"``."""
        noun = {"Characters": "character", "Tokens": "token", "Class": "label"}[self._kind]
        n = len(self._elements)
        text = f"{self._kind}, {n:,} {noun}{'' if n == 1 else 's'}"
        return text + (" + unknown" if self._options.get("unknown") else "")

    def to_json(self) -> dict:
        """The JSON form saved in files (``coder_from_json`` reads it back)."""
        return {"coder": type(self).__name__, "version": CODER_JSON_VERSION,
                "kind": self._kind, "elements": list(self._elements),
                "options": dict(self._options)}

    # ------------------------------------------------------- raw <-> indices
    def index_of(self, element: Any, port: str, example: str) -> int:
        """The index of one character, token or label; ``InputDataError`` when it has none
        (``example`` says where it occurred, for the message)."""
        key = _fold(element) if self._options.get("ignore_case") else element
        i = self._index.get(key) if _hashable_label(key) else None
        if i is not None:
            return i
        if self._options.get("unknown"):
            return len(self._elements)
        noun = {"Characters": "character", "Tokens": "token", "Class": "label"}[self._kind]
        raise InputDataError(f"port {port!r}: the {noun} {element!r} of {example} is not one "
                             f"of the {self._noun_list()} of {self._short()}")

    def _noun_list(self) -> str:
        noun = {"Characters": "characters", "Tokens": "tokens", "Class": "labels"}[self._kind]
        return f"{len(self._elements):,} {noun}"

    def _short(self) -> str:
        return _shorten(repr(self), 100)

    def is_raw(self, x: Any) -> bool:
        """True when ``x`` is one raw value (a text, or a label) rather than indices."""
        if isinstance(x, str):
            return True
        return self._kind == "Class" and self._int_labels and type(x) is int

    def encode(self, x: Any, port: str, position: int | None = None) -> Any:
        """One raw example as indices: an int64 array for a text, an int for a label (and a
        list of them, recursively, for lists of labels)."""
        if self._kind == "Class":
            return self._labels(x, port, position, x)
        if not isinstance(x, str):
            return x
        parts: Iterable[str] = x if self._kind == "Characters" else TOKEN_PATTERN.findall(x)
        table = self._index
        try:  # the common case: every element known
            indices = [table[p.lower() if self._options["ignore_case"] else p] for p in parts]
        except KeyError:
            example = _example(position, x)
            indices = [self.index_of(p, port, example) for p in parts]
        if not indices:
            example = _example(position, x)
            what = "an empty text" if not x else "a text without tokens"
            raise InputDataError(f"port {port!r}: {example} is {what}; every sequence needs "
                                 "at least one element")
        return np.array(indices, dtype=np.int64)

    def _labels(self, x: Any, port: str, position: int | None, whole: Any) -> Any:
        if self.is_raw(x):
            return self.index_of(x, port, _example(position, whole))
        if isinstance(x, (list, tuple)):
            return [self._labels(e, port, position, whole) for e in x]
        return x

    def encode_examples(self, x: Any, port: str, batch: bool | None = None) -> Any:
        """Data for the port with every raw example encoded: one raw example, or a list of
        examples of which the raw ones are encoded (already-encoded ones are kept). ``batch``
        True: ``x`` is a list of examples (training columns); None: a list holding a raw value
        is read as a batch."""
        if batch is None:
            if self.is_raw(x):
                return self.encode(x, port)
            batch = isinstance(x, (list, tuple)) and any(self.is_raw(e) for e in x)
        if batch and isinstance(x, (list, tuple)):
            return [self.encode(e, port, k) for k, e in enumerate(x)]
        return x


def _rebuild(cls: type, kind: str, elements: tuple, options: tuple) -> _Coder:
    return cls(kind, list(elements), **dict(options))


def _fold(x: Any) -> Any:
    return x.lower() if isinstance(x, str) else x


def _hashable_label(x: Any) -> bool:
    return isinstance(x, (str, int)) and not isinstance(x, bool)


def _elements(cls: str, kind: str, elements: Any) -> tuple:
    """The characters, tokens or labels given, checked, as a tuple."""
    what = f"{cls}({kind!r})"
    if kind == "Characters" and isinstance(elements, str):
        elements = list(elements)
    if isinstance(elements, (str, bytes)) or not isinstance(elements, (list, tuple, range)):
        want = {"Characters": "a string or a list of single characters",
                "Tokens": "a list of tokens (strings)", "Class": "a list of labels"}[kind]
        raise NetError(f"{what} needs {want}, got {elements!r}")
    values = tuple(int(v) if isinstance(v, np.integer) else
                   str(v) if isinstance(v, np.str_) else v for v in elements)
    if not values:
        raise NetError(f"{what} needs at least one element")
    for v in values:
        if kind == "Class":
            if not _hashable_label(v):
                raise NetError(f"{what}: a label must be a string or an int, got {v!r}")
        elif not isinstance(v, str):
            raise NetError(f"{what}: every entry must be a string, got {v!r}")
        elif kind == "Characters" and len(v) != 1:
            raise NetError(f"{what}: every entry must be a single character, got {v!r}")
        elif kind == "Tokens" and not TOKEN_PATTERN.fullmatch(v):
            raise NetError(f"{what}: the token {v!r} can never occur: texts are split into "
                           f"words and punctuation marks ({TOKEN_PATTERN.pattern})")
    return values


def _table(cls: str, kind: str, values: tuple, ignore_case: bool) -> dict:
    """Element (lower-cased with ``ignore_case``) -> index; repeated entries are an error."""
    index: dict[Any, int] = {}
    for i, v in enumerate(values):
        key = _fold(v) if ignore_case else v
        if key in index:
            j = index[key]
            same = "equal up to case" if ignore_case and values[j] != v else "the same"
            raise NetError(f"{cls}({kind!r}): entries {j} ({values[j]!r}) and {i} ({v!r}) are "
                           f"{same}; every entry must be distinct")
        index[key] = i
    return index


class NetEncoder(_Coder):
    """An encoder for an input port (see the module docstring):
    ``NetEncoder("Characters", characters, *, ignore_case=False)``,
    ``NetEncoder("Tokens", tokens, *, ignore_case=False, unknown=True)``,
    ``NetEncoder("Class", labels)``."""

    __slots__ = ()
    role = "encoder"
    _kinds = _ENCODER_KINDS

    def parsed_spec(self) -> ParsedSpec:
        if self._kind == "Class":
            return ParsedSpec((), Index(self.size))
        return ParsedSpec((Dim(None, True),), Index(self.size))


class NetDecoder(_Coder):
    """A decoder for an output port of probability vectors (see the module docstring):
    ``NetDecoder("Class", labels)``, ``NetDecoder("Characters", characters)``."""

    __slots__ = ()
    role = "decoder"
    _kinds = _DECODER_KINDS

    def parsed_spec(self) -> ParsedSpec:
        n = self.size
        if self._kind == "Class":
            return ParsedSpec(None, tail=Tail(n, (1, 2), f"a vector of size {n} (a "
                                              "probability per label) or a sequence of them"))
        return ParsedSpec(None, tail=Tail(n, (2,), f"a sequence of vectors of size {n} (a "
                                          "probability per character)"))

    # ----------------------------------------------------------------- decoding
    def decode(self, value: Any, is_batch: bool) -> Any:
        """The most probable label (a list of them for a sequence) or string, per example."""
        if is_batch:
            return [self._decode_one(v) for v in value]
        return self._decode_one(value)

    def _decode_one(self, value: Any) -> Any:
        best = np.asarray(value).argmax(axis=-1)
        if self._kind == "Characters":
            return "".join(self._elements[i] for i in best.tolist())
        if best.ndim == 0:
            return self._elements[int(best)]
        return [self._elements[i] for i in best.tolist()]

    def probabilities(self, value: Any, is_batch: bool) -> Any:
        """Per example a dict element -> probability (a list of dicts, one per position, for
        a sequence)."""
        if is_batch:
            return [self._probabilities_one(v) for v in value]
        return self._probabilities_one(value)

    def _probabilities_one(self, value: Any) -> Any:
        a = np.asarray(value)
        if a.ndim == 1:
            return dict(zip(self._elements, a.tolist()))
        return [dict(zip(self._elements, row)) for row in a.tolist()]

    def encode_targets(self, x: Any, port: str) -> Any:
        """Training targets for the output: a list of examples of which the raw ones (a
        string, a label, a list of labels) become indices."""
        return self.encode_examples(x, port, batch=True)


def coder_from_json(data: dict) -> _Coder:
    """The coder of a saved file's JSON form (``to_json``); ``NetError`` for anything else."""
    cls = {"NetEncoder": NetEncoder, "NetDecoder": NetDecoder}.get(data.get("coder"))
    if cls is None:
        raise NetError(f"unknown coder {data.get('coder')!r} (NetEncoder or NetDecoder)")
    version = data.get("version")
    if version != CODER_JSON_VERSION:
        raise NetError(f"{cls.__name__} of version {version!r}: this netgraph reads version "
                       f"{CODER_JSON_VERSION}")
    return cls(data.get("kind"), list(data.get("elements") or []), **dict(data.get("options")
                                                                           or {}))
