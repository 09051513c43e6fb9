"""The layer library as the exporter sees it: the one place that imports it (the exporter
is a consumer of netgraph.layers, as the tests are)."""

from netgraph.layers import (  # noqa: F401 - re-exported for netgraph.onnx.table and ops
    AttentionLayer,
    BasicRecurrentLayer,
    CatenateLayer,
    CrossEntropyLossLayer,
    DotLayer,
    DropoutLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    LinearLayer,
    LongShortTermMemoryLayer,
    MeanAbsoluteLossLayer,
    MeanSquaredLossLayer,
    NetFoldOperator,
    NetMapOperator,
    ReshapeLayer,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SequenceMostLayer,
    SequenceRestLayer,
    SequenceReverseLayer,
    SoftmaxLayer,
    SummationLayer,
    ThreadingLayer,
    TotalLayer,
)
from netgraph.layers.loss import EPS  # noqa: F401
from netgraph.layers.scoring import fast_kind  # noqa: F401
