"""NetTrain: training nets with Wolfram's semantics (see docs/training.md).

Modules: :mod:`.data` (data forms, validation, length bucketing), :mod:`.loss` (loss
attachment), :mod:`.params` (the flat parameter buffer, clipping, L2), :mod:`.optimizers`
(ADAM, SGD, RMSProp), :mod:`.options` (defaults and option checks), :mod:`.progress` (tqdm
bar), :mod:`.results` (``NetTrainResults``), :mod:`.state` (``TrainState``, what a run
changes as it goes) and :mod:`.loop` (``NetTrain`` itself, in named steps).
"""

from .loop import NetTrain
from .results import NetTrainResults

__all__ = ["NetTrain", "NetTrainResults"]
