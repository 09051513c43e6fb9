"""The error hierarchy: every error the library raises on purpose is a ``NetError``."""

from __future__ import annotations

__all__ = ["NetError", "ShapeError", "PortError", "InputDataError", "SpecificationError"]


class NetError(ValueError):
    """Base class of every error netgraph raises on purpose."""


class ShapeError(NetError):
    """Inferred shapes of two ports (or a port and an array) are inconsistent."""


class PortError(NetError):
    """A port or node named in connections, extraction or output selection does not exist."""


class InputDataError(NetError):
    """Data given to a net does not fit the port it was given to."""


class SpecificationError(NetError):
    """A net is not fully specified (an array shape or a port size is unknown)."""


def where(path: tuple, port: str | None = None) -> str:
    """Human-readable location of ``port`` of the node at ``path`` (``()`` is the net itself):
    ``port 'Input' of node 'enc'/'lin'``, ``node 'enc'``, ``port 'Output' of net``, ``net``.

    The one formatter of node paths in messages (the core's and the layers'; exported by
    ``netgraph.extend``)."""
    node = "net" if not path else "node " + "/".join(repr(p) for p in path)
    return f"port {port!r} of {node}" if port is not None else node
