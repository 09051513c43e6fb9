"""Per-layer ONNX lowerings, one module per layer family (mirroring ``netgraph.layers``);
:mod:`netgraph.onnx.table` keys them by layer class."""
