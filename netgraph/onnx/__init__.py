"""Export to ONNX: ``netgraph.export_onnx(net, path, *, opset=Automatic)``.

The net's compiled plan is lowered step by step to standard ONNX operators
(:mod:`netgraph.onnx.lower`, per-layer lowerings in :mod:`netgraph.onnx.ops`, the table in
:mod:`netgraph.onnx.table`). The model takes padded batches plus ``<port>_lengths`` for every
varying port and gives ``net(batch)``'s values at the valid positions whatever the padding
holds; see docs/onnx.md for the interface, the op mapping per layer and the opset.

This module imports nothing heavy: ``onnx`` is imported when a net is exported (the optional
extra ``pip install "netgraph[onnx]"``).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import NetError
from ..shapes import Automatic

__all__ = ["export_onnx"]

INSTALL_HINT = 'pip install "netgraph[onnx]"'


def export_onnx(net: Any, path: str | os.PathLike, *, opset: Any = Automatic) -> None:
    """Write the initialized ``net`` as an ONNX model at exactly ``path``.

    ``opset=Automatic`` writes the lowest opset the net needs (13 for every net of
    netgraph.layers); an explicit opset at least that (up to the newest the installed onnx
    knows) is accepted.

    Raises
    ------
    NetError
        If onnx is not installed, the net is uninitialized or holds a layer with no ONNX
        translation (the message names the node), the opset is too low or unknown, or the
        file cannot be written.
    """
    try:
        import onnx
    except ImportError:
        raise NetError(f"export_onnx needs the onnx package: {INSTALL_HINT}") from None
    from ..io import _atomic_write, _fspath
    from .export import build_model, resolve_opset

    name = _fspath(path)
    model, needed, reason = build_model(net)
    version = resolve_opset(opset, needed, reason)
    model.opset_import[0].version = version
    model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    try:
        onnx.checker.check_model(model)
        data = model.SerializeToString()
    except ValueError as e:  # protobuf's limit: one ONNX file holds at most 2 GB
        raise NetError(f"export_onnx: the model does not fit in one ONNX file ({e})") from None
    _atomic_write(name, lambda f: f.write(data))
