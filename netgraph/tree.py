"""The tree of nets: walking it, naming a child, rebuilding it along a path.

The path helpers every surgery and inspection module shares (NetExtract/NetReplacePart,
NetInitialize, applying, info, save/load, training); they know only :class:`Net`, so they sit
below all of those modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .errors import PortError, where
from .net import Net

__all__ = ["walk", "resolve_child", "update_at"]


def walk(net: Net, path: tuple = ()) -> Iterator[tuple[tuple, Net]]:
    """Every net in the tree below ``net`` (itself first), with its path."""
    yield path, net
    for name, child in net.children().items():
        yield from walk(child, path + (name,))


def resolve_child(net: Net, step: Any, walked: tuple = ()) -> Any:
    """The key of child ``step`` of ``net`` (resolving int positions), or None."""
    try:
        hash(step)
    except TypeError:
        raise PortError(f"invalid part {step!r} at {where(walked)}: a part is a name, an int or "
                        "All (a path is one list or tuple of parts)") from None
    kids = net.children()
    if step in kids and not isinstance(step, bool):
        return step
    if isinstance(step, int) and not isinstance(step, bool) and kids:
        names = list(kids)
        if -len(names) <= step < len(names):
            return names[step]
        raise PortError(f"part {step} does not exist at {where(walked)}: it has {len(names)} parts "
                        f"(positions {-len(names)}..{len(names) - 1}), {names}")
    return None


def update_at(net: Net, path: tuple, fn: Callable[[Net], Net], walked: tuple = ()) -> Net:
    """A copy of ``net`` with the sub-net at ``path`` replaced by ``fn(sub-net)``."""
    if not path:
        return fn(net)
    key = resolve_child(net, path[0], walked)
    if key is None:
        if path[0] in net._arrays() or path[0] in net.input_ports + net.output_ports:
            raise PortError(f"part {path[0]!r} at {where(walked)} is not a net, so it has no part "
                            f"{path[1]!r}" if len(path) > 1 else
                            f"part {path[0]!r} at {where(walked)} is not a net")
        raise PortError(f"part {path[0]!r} does not exist at {where(walked)}; sub-nets are "
                        f"{list(net.children())}")
    child = net.children()[key]
    return net.with_children({key: update_at(child, path[1:], fn, walked + (key,))})
