"""Short text for nets, shared by ``summary``/``NetInformation`` and ``net.plot()``: node paths,
one-line type labels and the inferred shape of a port."""

from __future__ import annotations

from typing import Any

from .errors import NetError
from .layer import Layer
from .net import Net
from .shapes import Automatic

__all__ = ["require_net", "port_spec", "show_path", "type_label"]


def require_net(net: Any, who: str) -> None:
    """Raise ``NetError`` unless ``net`` is a net (``who`` names the caller)."""
    if not isinstance(net, Net):
        raise NetError(f"{who} needs a net (a layer, NetGraph or NetChain), got "
                       f"{type(net).__name__}")


def port_spec(net: Net, port: str, out: bool) -> Any:
    """The inferred shape of input (or, with ``out``, output) ``port`` of ``net``."""
    return net._specs.get(net.output_key(port) if out else port, Automatic)


def show_path(path: tuple) -> str:
    """``("attend", "ScoringNet", "Linear")`` -> ``attend/ScoringNet/Linear``."""
    return "/".join(map(str, path)) if path else "(net)"


def type_label(net: Net, limit: int = 34) -> str:
    """``LinearLayer(n=4, biases=True)``, ``NetChain[3]`` (3 nodes): short and one line."""
    name = type(net).__name__
    if isinstance(net, Layer):
        text = f"{name}({net.params_text()})"
        if len(text) > limit:  # fall back to the non-default parameters
            params = net.params.model_dump(exclude_defaults=True)
            text = f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
        text = text if len(text) <= limit else text[: limit - 4] + "...)"
        return name if text == f"{name}()" else text
    kids = net.children()
    return f"{name}[{len(kids)}]" if kids else name
