"""Raw data in, decoded results out: the encoders and decoders of a net's ports at work.

* :func:`encode_inputs` — the data of a call ``net(data)`` with the raw values (strings,
  labels, lists of them for a batch) of encoded input ports turned into indices;
* :func:`selection` — what one requested output becomes: ``"Output"`` of a decoded port is
  decoded, ``("Output", "Probabilities")`` gives per example a dict element -> probability,
  ``("Output", None)`` the raw array(s);
* :func:`encode_training_data` — NetTrain's columns: raw values of encoded inputs and raw
  targets (labels, strings) of decoded outputs as indices.

The coders of a net's ports are :meth:`netgraph.net.Net.port_coders`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import NetError
from .net import Net
from .ports import NetPort

__all__ = ["encode_inputs", "selection", "encode_training_data", "PROPERTIES"]

#: what ``(port, prop)`` may ask of a decoded output port
PROPERTIES = ("Decision", "Probabilities", None)

Post = Callable[[Any, bool], Any] | None


def _port_key(k: Any) -> Any:
    return k.port if isinstance(k, NetPort) and k.layer is None else k


def encode_inputs(net: Net, data: Any) -> Any:
    """``data`` (a dict port -> value, or a bare value for a single-input net) with the raw
    values of encoded ports encoded; anything else is left for the usual validation."""
    encoders = net.port_coders()[0]
    if not encoders:
        return data
    if not isinstance(data, dict):
        if len(net.input_ports) == 1 and net.input_ports[0] in encoders:
            port = net.input_ports[0]
            return encoders[port].encode_examples(data, port)
        return data
    out = dict(data)
    for k, v in data.items():
        port = _port_key(k)
        if isinstance(port, str) and port in encoders:
            out[k] = encoders[port].encode_examples(v, port)
    return out


def selection(net: Net, what: Any) -> tuple[Any, Post]:
    """``(target, post)`` for one requested output ``what``: the target as applying knows it
    (a port name, NetPort, gradient ...) and ``post(value, is_batch)`` turning its user-form
    value into the result (None: the value itself)."""
    decoders = net.port_coders()[1]
    if isinstance(what, tuple) and len(what) == 2 and isinstance(_port_key(what[0]), str):
        port, prop = _port_key(what[0]), what[1]
        if port not in net.output_ports:
            return what, None  # the caller reports the unknown port
        if prop is None:
            return port, None
        decoder = decoders.get(port)
        if decoder is None:
            raise NetError(f"({port!r}, {prop!r}): output port {port!r} has no decoder; "
                           f"ask for {port!r} itself")
        if prop == "Probabilities":
            return port, decoder.probabilities
        if prop == "Decision":
            return port, decoder.decode
        raise NetError(f"({port!r}, {prop!r}): unknown property of the decoder of port "
                       f"{port!r}; ask for one of {list(PROPERTIES)}")
    port = _port_key(what)
    if isinstance(port, str) and port in decoders and port in net.output_ports:
        return what, decoders[port].decode
    return what, None


def encode_training_data(net: Net, columns: dict[str, Any], targets: list[str]) -> dict:
    """NetTrain's ``port -> examples`` with raw examples encoded: inputs through their
    encoders, the targets of decoded outputs through their decoders (labels and strings
    become indices)."""
    encoders, decoders = net.port_coders()
    out = dict(columns)
    for port, x in columns.items():
        if port in encoders and port in net.input_ports:
            out[port] = encoders[port].encode_examples(x, port, batch=True)
        elif port in targets and port in decoders:
            out[port] = decoders[port].encode_targets(x, port)
    return out
