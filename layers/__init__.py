"""The netgraph layer library, installed as ``netgraph.layers`` (its source is the repository's
top-level ``layers/`` folder), built on netgraph's public layer API."""

if __name__ != "netgraph.layers":  # a source checkout's top level is not the package
    raise ImportError("the layer library is the package netgraph.layers: use "
                      "`import netgraph.layers` or `from netgraph import *`, not `import layers`")

import difflib
import inspect

from netgraph.extend import register_shorthand_hint

from .attention import AttentionLayer, SequenceAttentionLayer
from .elementwise import (
    ELEMENTWISE_FUNCTIONS,
    THREADING_FUNCTIONS,
    ElementwiseLayer,
    ThreadingLayer,
)
from .fold import NetFoldOperator
from .linear import DotLayer, LinearLayer
from .loss import CrossEntropyLossLayer, MeanAbsoluteLossLayer, MeanSquaredLossLayer
from .operators import NetMapOperator
from .recurrent import BasicRecurrentLayer, GatedRecurrentLayer, LongShortTermMemoryLayer
from .sequence import (
    EmbeddingLayer,
    SequenceLastLayer,
    SequenceMostLayer,
    SequenceRestLayer,
    SequenceReverseLayer,
)
from .structure import (
    CatenateLayer,
    DropoutLayer,
    ReshapeLayer,
    SoftmaxLayer,
    SummationLayer,
    TotalLayer,
)

__all__ = [
    "LinearLayer", "DotLayer", "ElementwiseLayer", "ThreadingLayer", "TotalLayer",
    "CatenateLayer", "SummationLayer", "ReshapeLayer", "SoftmaxLayer", "DropoutLayer",
    "EmbeddingLayer", "SequenceLastLayer", "SequenceMostLayer", "SequenceRestLayer",
    "SequenceReverseLayer", "NetMapOperator", "SequenceAttentionLayer", "AttentionLayer",
    "CrossEntropyLossLayer", "MeanSquaredLossLayer", "MeanAbsoluteLossLayer",
    "BasicRecurrentLayer", "GatedRecurrentLayer", "LongShortTermMemoryLayer", "NetFoldOperator",
]

_FUNCTION_NAMES = set(ELEMENTWISE_FUNCTIONS) | {"ReLU", "Sigmoid"}


def _call(name: str) -> str:
    """``Name()`` when the class can be built without arguments, else ``Name(...)``."""
    params = inspect.signature(globals()[name]).parameters.values()
    needs = any(p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                for p in params)
    return f"{name}(...)" if needs else f"{name}()"


def _hint(x: object) -> str | None:
    """What a NetChain/NetGraph entry that is no net was probably meant to be: ``"Softmax"``
    -> ``SoftmaxLayer()``, ``"Plus"`` -> ``ThreadingLayer("Plus")``, ``"tanh"`` -> ``"Tanh"``."""
    if not isinstance(x, str):
        return None
    key = x.replace(" ", "").lower()
    for name in __all__:
        short = name.lower().removesuffix("layer").removesuffix("operator")
        if key in (name.lower(), short, "net" + short):
            return _call(name)
    for f in THREADING_FUNCTIONS:
        if key == f.lower():
            return f"ThreadingLayer({f!r}) (or TotalLayer() for a sum)" if f == "Plus" else \
                f"ThreadingLayer({f!r})"
    names = sorted(_FUNCTION_NAMES)
    lower = {f.lower(): f for f in names}
    close = [lower[key]] if key in lower else difflib.get_close_matches(x, names, n=1)
    return f"the function name {close[0]!r} (an ElementwiseLayer)" if close else None


register_shorthand_hint(_hint)
