"""The lowering table: layer class -> :class:`~netgraph.onnx.lower.Lowering`, in one place.

Classes are matched exactly (a user's subclass of a library layer may compute something
else, so it is not exported as its base class: it has no translation, a ``NetError``).
"""

from __future__ import annotations

from . import _library as L
from .lower import Lowering
from .ops import attention, elementwise, linear, loss, operators, recurrent, sequence, structure


def _always(ctx) -> bool:
    return True


TABLE: dict[type, Lowering] = {
    L.LinearLayer: Lowering(linear.lower_linear),
    L.DotLayer: Lowering(linear.lower_dot),
    L.ElementwiseLayer: Lowering(elementwise.lower_elementwise, elementwise.elementwise_clean),
    L.ThreadingLayer: Lowering(elementwise.lower_threading, elementwise.threading_clean),
    L.TotalLayer: Lowering(structure.lower_total, _always),
    L.CatenateLayer: Lowering(structure.lower_catenate, _always),
    L.SummationLayer: Lowering(structure.lower_summation),
    L.ReshapeLayer: Lowering(structure.lower_reshape),
    L.SoftmaxLayer: Lowering(structure.lower_softmax),
    L.DropoutLayer: Lowering(structure.lower_dropout, _always),
    L.EmbeddingLayer: Lowering(sequence.lower_embedding),
    L.SequenceLastLayer: Lowering(sequence.lower_sequence_last, _always),
    L.SequenceMostLayer: Lowering(sequence.lower_sequence_most),
    L.SequenceRestLayer: Lowering(sequence.lower_sequence_rest, _always),
    L.SequenceReverseLayer: Lowering(sequence.lower_sequence_reverse, _always),
    L.NetMapOperator: Lowering(operators.lower_map),
    L.NetFoldOperator: Lowering(operators.lower_fold),
    L.SequenceAttentionLayer: Lowering(attention.lower_attention, _always),
    L.AttentionLayer: Lowering(attention.lower_attention, _always),
    L.CrossEntropyLossLayer: Lowering(loss.lower_loss),
    L.MeanSquaredLossLayer: Lowering(loss.lower_loss),
    L.MeanAbsoluteLossLayer: Lowering(loss.lower_loss),
    L.BasicRecurrentLayer: Lowering(recurrent.lower_recurrent),
    L.GatedRecurrentLayer: Lowering(recurrent.lower_recurrent),
    L.LongShortTermMemoryLayer: Lowering(recurrent.lower_recurrent),
}
