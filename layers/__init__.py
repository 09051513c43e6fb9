"""The netgraph layer library, built on netgraph's public layer API."""

from netgraph.graph import SHORTHANDS

from .attention import AttentionLayer, SequenceAttentionLayer
from .elementwise import ELEMENTWISE_FUNCTIONS, ElementwiseLayer, ThreadingLayer
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
SHORTHANDS[:] = [
    (lambda x: isinstance(x, int) and not isinstance(x, bool), LinearLayer),
    (lambda x: isinstance(x, tuple) and all(isinstance(k, int) for k in x), LinearLayer),
    (lambda x: isinstance(x, str) and x in _FUNCTION_NAMES, ElementwiseLayer),
]
