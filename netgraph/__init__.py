"""netgraph: Wolfram-style neural nets (NetGraph, NetChain, SequenceAttentionLayer, NetTrain)
on NumPy, with static shape inference and exact handling of varying-length sequences.

``from netgraph import *`` gives every public name, the layer library included.

Importing netgraph changes no process-wide setting. ``netgraph.tune_malloc()`` (or
``NETGRAPH_MALLOC_TUNING=1`` in the environment at import) is the opt-in allocator tuning
described in :mod:`netgraph._memory`.
"""

from ._memory import tune_malloc, tune_malloc_if_asked
from .checks import check_padding, gradcheck
from .errors import InputDataError, NetError, PortError, ShapeError, SpecificationError
from .extract import NetExtract, NetReplacePart
from .graph import NetChain, NetGraph
from .info import NetInformation
from .initialize import NetInitialize
from .io import load, save
from .layer import Layer, Params
from .net import Net
from .onnx import export_onnx
from .ports import NetArrayGradient, NetPort, NetPortGradient
from .shapes import All, Automatic, Index, Varying
from .take import NetTake
from .train import NetTrain

_CORE = [
    "NetError", "ShapeError", "PortError", "InputDataError", "SpecificationError",
    "NetGraph", "NetChain", "NetPort", "NetPortGradient", "NetArrayGradient", "NetExtract",
    "NetReplacePart", "NetInitialize", "Automatic", "All", "Varying", "Index", "Net", "Layer",
    "Params", "gradcheck", "check_padding", "NetTrain", "save", "load",
    "NetInformation", "NetTake", "tune_malloc", "export_onnx",
]

tune_malloc_if_asked()

# the layer library, last: it is built on the core above (and is the only core import of it)
from . import layers
from .layers import *

__all__ = _CORE + list(layers.__all__)
