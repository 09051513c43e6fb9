"""Generating sequences with a trained decoder: greedy decoding and beam search.

``generate(net, data, *, start, stop, max_length, beam_size, prop)`` (the SPEC's "Generating
sequences"). ``net`` takes a sequence of tokens at ``"Input"`` (``Index(n)`` elements, or an
encoder) and gives at ``"Output"`` a probability vector over the same ``n`` tokens per
position; its other inputs come from ``data`` and stay fixed. Two forms:

* a *prefix net* (no state ports): step ``t`` feeds the whole prefix ``start, y_1, ..,
  y_{t-1}`` and reads the next token's probabilities at its last position;
* a *step net*: the port names that are both inputs and outputs (other than Input and
  Output) are states; each step feeds the last token alone (a length-1 Input) and the states
  the previous step returned (the first step: those in ``data``).

A hypothesis ``y_1 .. y_m`` scores ``log P = sum_t log p_t(y_t)`` over every generated token,
the stop token that ended it included. Beam search with ``k = beam_size`` keeps, per example
and step, the ``k`` best one-token extensions of its live hypotheses; an extension ending in
``stop``, or reaching ``max_length`` tokens, is finished and leaves the batch. An example is
done when it has no live hypothesis or ``k`` finished ones that no live hypothesis can beat
(scores only fall as tokens are added), and its rows leave the batch too. Every step runs all
live hypotheses of all examples as one batch, gathering the fixed inputs' rows. With
``k >= n ** (L - 1)`` (``L = max_length``) no hypothesis is ever pruned before the last step,
so the result is the most probable sequence of at most ``L`` tokens; ``k = 1`` is greedy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .apply import (
    _fill_shapes_from_data,
    _split_data,
    collect_arrays,
    underflow_ignored,
    uninitialized,
)
from .batch import split_examples, to_batch
from .coding import encode_inputs
from .compile import Plan, compile_net
from .errors import NetError
from .execute import RunContext, forward
from .net import Net
from .ports import NetPort
from .shapes import Index

__all__ = ["generate"]

PROPS = ("Sequence", "All")


def _positive_int(x: Any, name: str) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) or x < 1:
        raise NetError(f"generate: {name} must be a positive int, got {x!r}")
    return int(x)


def _token(x: Any, name: str, n: int, encoder: Any) -> int:
    """``start``/``stop`` as a token index: an index ``0..n-1``, or an element of the Input's
    encoder (a character, or a token)."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        if not 0 <= x < n:
            raise NetError(f"generate: {name}={x!r} is outside the tokens 0..{n - 1} of port "
                           "'Input'")
        return int(x)
    if encoder is not None and isinstance(x, str):
        return encoder.index_of(x, "Input", f"{name}={x!r}")
    what = " or an element of its encoder" if encoder is not None else ""
    raise NetError(f"generate: {name} must be a token index of port 'Input'{what}, got {x!r}")


@dataclass
class _Model:
    """The net prepared for generation: its plan, ports and the fixed inputs of every example."""

    net: Net
    plan: Plan
    n: int
    states: list[str]
    fixed: dict[str, np.ndarray]            # the other inputs but states, padded
    initial_states: dict[str, np.ndarray]
    fixed_lengths: dict[Any, np.ndarray]    # their lengths by length key
    is_batch: bool
    size: int
    arrays: dict[tuple, np.ndarray] = field(default_factory=dict)

    #: (rows, the fixed inputs' rows, their lengths, their full dims) of the last step
    _rows_cache: tuple | None = None
    #: (hypotheses, length) -> the Input's lengths (see _input_lengths)
    _lengths_made: dict = field(default_factory=dict)

    def _fixed_rows(self, rows: np.ndarray) -> tuple[dict, dict, dict]:
        """The fixed inputs' rows for the hypotheses ``rows``, their lengths, and the
        ``RunContext._full`` entries of their length keys (whether a padded size is reached
        by every row); kept while the search passes the same ``rows`` object (greedy
        decoding, and any step that kept every hypothesis in order)."""
        cache = self._rows_cache
        if cache is not None and cache[0] is rows:
            return cache[1:]
        feed = {p: a[rows] for p, a in self.fixed.items()}
        lengths = {k: v[rows] for k, v in self.fixed_lengths.items()}
        full = {}
        for p, a in feed.items():
            for axis, key in enumerate(self.plan.inputs[p].keys):
                if key is not None and key in lengths:
                    size = a.shape[1 + axis]
                    full[(key, size)] = bool((lengths[key] >= size).all())
        self._rows_cache = (rows, feed, lengths, full)
        return feed, lengths, full

    def _input_lengths(self, hypotheses: int, t: int) -> np.ndarray:
        """The Input's lengths, ``t`` for each hypothesis (made once per pair; read-only)."""
        made = self._lengths_made.get((hypotheses, t))
        if made is None:
            made = np.full(hypotheses, t, np.int64)
            made.flags.writeable = False
            self._lengths_made[(hypotheses, t)] = made
        return made

    def step(self, rows: np.ndarray, tokens: np.ndarray,
             states: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One batched step for the hypotheses ``rows`` (their examples), ``tokens`` (H, t):
        the next token's log-probabilities (H, n) and the new states."""
        fixed, fixed_lengths, full = self._fixed_rows(rows)
        x = tokens[:, -1:] if self.states else tokens
        t = x.shape[1]
        key = self.plan.inputs["Input"].keys[0]
        feed = {**fixed, "Input": x, **states}
        lengths = {**fixed_lengths, key: self._input_lengths(len(rows), t)}
        # every hypothesis has the Input's one length: nothing there is padded
        run = RunContext(arrays=self.arrays, dtype=np.float32, lengths=lengths,
                         inputs_zero_padded=True, length_owners=self.plan.length_owners,
                         _full={**full, (key, t): True})
        tape = forward(self.plan, feed, run)
        out = self.plan.outputs["Output"]
        probs = tape.values[out.slot]
        if out.keys[0] is None or out.keys[0] == key:  # one last position for all
            p = probs[:, probs.shape[1] - 1 if out.keys[0] is None else t - 1]
        else:
            p = probs[np.arange(len(rows)), run.lengths[out.keys[0]] - 1]
        p = p.astype(np.float64)
        lowest = np.minimum.reduce(p, axis=None)  # NaN if any is NaN
        if not lowest >= 0:
            raise NetError("generate: port 'Output' must give probabilities, but it gave "
                           f"{p[~(p >= 0)][0]!r} (end it with a SoftmaxLayer)")
        if lowest > 0:
            logp = np.log(p)
        else:
            with np.errstate(divide="ignore"):  # log 0 = -inf
                logp = np.log(p)
        return logp, {s: tape.values[self.plan.outputs[s].slot] for s in self.states}


def _check_ports(net: Net, plan: Plan, states: list[str]) -> int:
    """The token count ``n``; ``NetError`` unless Input is a sequence of ``Index(n)`` and Output
    a sequence of ``n``-vectors, and every state has one fixed shape on both sides."""
    inp, out = plan.inputs["Input"], plan.outputs["Output"]
    if inp.rank != 1 or inp.keys[0] is None or not isinstance(inp.elem, Index):
        raise NetError(f"generate: port 'Input' must take a varying-length sequence of token "
                       f"indices (\"Varying\", Index(n)), but it has shape "
                       f"{net.port_shape('Input')!r}")
    n = inp.elem.n
    if out.rank != 2 or out.dims[1] != n or out.integer:
        raise NetError(f"generate: port 'Output' must give a probability vector over the {n} "
                       f"tokens of port 'Input' per position, (\"Varying\", {n}), but it has "
                       f"shape {net.port_shape('Output')!r}")
    for key in inp.keys[:1]:
        others = [p for p, m in plan.inputs.items() if p != "Input" and key in m.keys]
        if others:
            raise NetError(f"generate: the length of port 'Input' is tied to that of port "
                           f"{others[0]!r}; a generating net must let Input grow alone")
    for s in states:
        a, b = plan.inputs[s], plan.outputs[s]
        if a.varying or b.varying or a.dims != b.dims:
            raise NetError(f"generate: state port {s!r} must have one fixed shape as input and "
                           f"as output, but it is {net.port_shape(s)!r} in and "
                           f"{net._specs.get(net.output_key(s))!r} out")
    return n


def _other_data(net: Net, data: Any) -> dict[str, Any]:
    """``data`` as a dict of the inputs other than Input, raw values encoded."""
    others = [p for p in net.input_ports if p != "Input"]
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        if len(others) != 1:
            raise NetError(f"generate: the net's inputs other than 'Input' are {others}; give "
                           "data as a dict port -> value")
        data = {others[0]: data}
    data = {k.port if isinstance(k, NetPort) and k.layer is None else k: v
            for k, v in data.items()}
    if "Input" in data:
        raise NetError("generate: data must not hold 'Input': the generated tokens go there")
    return encode_inputs(net, data)


def _prepare(net: Net, data: Any) -> _Model:
    """The net with its open input shapes filled from ``data``, checked, compiled, and the
    fixed inputs of every example validated and padded once."""
    for port, side, what in (("Input", net.input_ports, "an input"),
                             ("Output", net.output_ports, "an output")):
        if port not in side:
            raise NetError(f"generate: the net needs {what} port {port!r}; it has inputs "
                           f"{list(net.input_ports)} and outputs {list(net.output_ports)}")
    other = _other_data(net, data)
    one = np.zeros(1, np.int64)  # stands for the tokens while the batch form is not known
    _split_data(net, {**other, "Input": one})  # unknown and missing ports
    net = _fill_shapes_from_data(net, {**other, "Input": one})
    plan = compile_net(net)
    states = [p for p in net.input_ports if p in net.output_ports and p not in ("Input", "Output")]
    n = _check_ports(net, plan, states)
    missing = uninitialized(net)
    if missing:
        raise NetError(f"generate: the net has uninitialized arrays ({list(missing[0])}"
                       f"{', ...' if len(missing) > 1 else ''}); call NetInitialize or NetTrain "
                       "first")
    is_batch, size = False, 1
    for p, v in other.items():
        examples, is_batch = split_examples(v, plan.inputs[p], p, values=False)
        size = len(examples)
        break
    tokens = np.zeros((size, 1), np.int64) if is_batch else one
    batch = to_batch({**other, "Input": tokens}, plan.inputs, np.float32)
    keys = {k for p, m in plan.inputs.items() if p != "Input" for k in m.keys if k is not None}
    return _Model(net=net, plan=plan, n=n, states=states,
                  fixed={p: a for p, a in batch.arrays.items() if p != "Input" and
                         p not in states},
                  initial_states={p: batch.arrays[p] for p in states},
                  fixed_lengths={k: v for k, v in batch.lengths.items() if k in keys},
                  is_batch=batch.is_batch, size=batch.size,
                  arrays=collect_arrays(net, np.float32))


@underflow_ignored
def generate(net: Net, data: Any = None, *, start: Any, stop: Any = None, max_length: int,
             beam_size: int = 1, prop: str = "Sequence") -> Any:
    """Generate sequences with ``net`` (module docstring; the SPEC's "Generating sequences").

    Parameters
    ----------
    net
        Input: a sequence of tokens (``Index(n)`` or an encoder); Output: per position a
        probability vector over the same ``n`` tokens. State ports (names both input and
        output) make it a step net.
    data
        The other inputs (a dict port -> value, or a bare value when there is one other
        input), one example or a batch; None when Input is the only input.
    start, stop
        Token indices, or characters/tokens of Input's encoder. ``start`` is fed first and
        never returned; ``stop`` ends a sequence and is not returned (None: no stop token).
    max_length
        The most tokens generated per sequence (a generated stop counts).
    beam_size
        1: greedy; ``k``: beam search with ``k`` hypotheses per example.
    prop
        ``"Sequence"``: the best finished sequence per example; ``"All"``: the ``beam_size``
        best finished ``(sequence, log_probability)`` pairs, best first.

    Returns
    -------
    Per example a list of token indices (a string, or a list of labels, when Output has a
    decoder) or, with ``prop="All"``, a list of pairs; a list of those for a batch.

    Raises
    ------
    NetError
        For a net without the ports above, bad options or tokens, uninitialized arrays;
        ``InputDataError`` for bad data.
    """
    max_length = _positive_int(max_length, "max_length")
    beam_size = _positive_int(beam_size, "beam_size")
    if prop not in PROPS:
        raise NetError(f"generate: prop must be one of {list(PROPS)}, got {prop!r}")
    if not isinstance(net, Net):
        raise NetError(f"generate needs a net, got {type(net).__name__}")
    model = _prepare(net, data)
    encoder = model.net.port_coders()[0].get("Input")
    start_id = _token(start, "start", model.n, encoder)
    stop_id = None if stop is None else _token(stop, "stop", model.n, encoder)
    finished = _search(model, start_id, stop_id, max_length, beam_size)
    decoder = model.net.port_coders()[1].get("Output")
    results = []
    for hyps in finished:
        ranked = sorted(hyps, key=lambda h: -h[1])[:beam_size]
        shown = [(_shown(seq, decoder), score) for seq, score in ranked]
        results.append(shown if prop == "All" else shown[0][0])
    return results if model.is_batch else results[0]


def _shown(seq: list[int], decoder: Any) -> Any:
    if decoder is None:
        return seq
    chars = [decoder.elements[i] for i in seq]
    return "".join(chars) if decoder.kind == "Characters" else chars


@dataclass
class _Live:
    """The live hypotheses of all examples, grouped by example: each one's example (``rows``),
    tokens (start first), log-probability and states."""

    rows: np.ndarray
    tokens: np.ndarray
    scores: np.ndarray
    states: dict[str, np.ndarray]

    def blocks(self) -> list[tuple[int, int]]:
        """``(lo, hi)``: the rows of each example still searching."""
        cuts = (np.flatnonzero(self.rows[1:] != self.rows[:-1]) + 1).tolist()
        return list(zip([0] + cuts, cuts + [len(self.rows)], strict=True))

    def advance(self, keep: list[tuple[int, int, float]],
                states: dict[str, np.ndarray]) -> _Live:
        """The hypotheses ``keep`` (parent row, token, score), their states from ``states``.
        When every hypothesis is kept in order (greedy decoding), the rows array is the same
        object (so the step reuses its fixed inputs' rows) and the states are not copied."""
        parents = np.array([h for h, _, _ in keep])
        tokens = np.array([v for _, v, _ in keep])[:, None]
        scores = np.array([s for _, _, s in keep])
        if len(parents) == len(self.rows) and (parents == np.arange(len(parents))).all():
            return _Live(self.rows, np.concatenate([self.tokens, tokens], axis=1), scores,
                         dict(states))
        return _Live(self.rows[parents], np.concatenate([self.tokens[parents], tokens], axis=1),
                     scores, {name: v[parents] for name, v in states.items()})


def _search(model: _Model, start: int, stop: int | None, max_length: int,
            k: int) -> list[list[tuple[list[int], float]]]:
    """Beam search over all examples at once; per example its finished ``(tokens, log P)``."""
    B = model.size
    live = _Live(np.arange(B), np.full((B, 1), start, np.int64), np.zeros(B),
                 dict(model.initial_states))
    finished: list[list[tuple[list[int], float]]] = [[] for _ in range(B)]
    for t in range(1, max_length + 1):
        logp, states = model.step(live.rows, live.tokens, live.states)
        candidates = live.scores[:, None] + logp                          # (H, n)
        keep: list[tuple[int, int, float]] = []
        for lo, hi in live.blocks():
            keep += _extend(candidates[lo:hi], lo, live.tokens, finished[int(live.rows[lo])],
                            stop, t == max_length, k)
        if not keep:
            break
        live = live.advance(keep, states)
    return finished


def _extend(candidates: np.ndarray, lo: int, tokens: np.ndarray, finished: list, stop: Any,
            last: bool, k: int) -> list[tuple[int, int, float]]:
    """One example's step: its ``k`` best extensions (``candidates[h, v]``: the score of
    hypothesis ``lo + h`` followed by token ``v``). Those ending in ``stop``, or reaching the
    last step, join ``finished``; the others are returned as (row, token, score) — none when
    ``k`` finished ones can no longer be beaten (a score only falls as tokens are added)."""
    n = candidates.shape[1]
    flat = candidates.ravel()
    keep = []
    for c in _best(flat, k):
        h, v, score = lo + c // n, c % n, float(flat[c])
        if v == stop or last:
            finished.append((tokens[h, 1:].tolist() + ([] if v == stop else [v]), score))
        else:
            keep.append((h, v, score))
    if keep and len(finished) >= k:
        kth = sorted((score for _, score in finished), reverse=True)[k - 1]
        if max(score for _, _, score in keep) <= kth:
            return []
    return keep


def _best(flat: np.ndarray, k: int) -> list[int]:
    """The positions of the ``k`` largest of ``flat``, largest first, ties by position (a
    stable sort of ``-flat``; NaN last). ``k = 1`` without NaN: the first maximum, the same
    position ``argmax`` finds without sorting."""
    if k == 1:
        c = int(np.argmax(flat))
        if flat[c] == flat[c]:  # argmax stops at a NaN: then sort
            return [c]
    return np.argsort(-flat, kind="stable")[:k].tolist()
