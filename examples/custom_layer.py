"""A new layer from scratch: ScaleShiftLayer, ``y = x * Scale + Shift`` feature by feature.

Everything a layer needs comes from ``netgraph.extend`` (the walk-through is
docs/extending.md). The layer is checked like every library layer by the contract tests
(tests/layer_cases.py: NumPy reference, float64 gradients, batches, padding), and here it is
used in a chain, trained, saved and loaded.

    python examples/custom_layer.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from pydantic import field_validator

from netgraph.extend import Int, Layer, Params


class ScaleShiftParams(Params):
    n: Int | None = None  # the number of features; None (Automatic): inferred

    @field_validator("n")
    @classmethod
    def _positive(cls, v):
        if v is not None and v < 1:
            raise ValueError("must be a positive int")
        return v


class ScaleShiftLayer(Layer):
    """``y[..., i] = x[..., i] * Scale[i] + Shift[i]`` for each of the ``n`` features (the
    last axis) of an array or a sequence of any shape.

    Backward: ``dx = g * Scale``, ``dScale = sum(g * x)``, ``dShift = sum(g)``, the sums over
    every position of every example (padded positions add nothing: there ``x`` and ``g`` are
    exactly 0). Not ``pad_clean``: the shift makes padding nonzero, the executor re-zeroes it.
    """

    Params = ScaleShiftParams
    signature = "Input[...x, n] -> Output[...x, n]:Real; Scale[n], Shift[n]"
    array_init = {"Scale": "ones", "Shift": "zeros"}

    def __init__(self, n=None, **ports):
        super().__init__({"n": n}, ports)

    def forward(self, ins, arrays, ctx):
        x, scale, shift = ins["Input"], arrays["Scale"], arrays["Shift"]

        def backward(out_grads):
            g = out_grads["Output"]
            rows = (-1, x.shape[-1])  # one row per position, one column per feature
            return ({"Input": g * scale},
                    {"Scale": (g * x).reshape(rows).sum(0), "Shift": g.reshape(rows).sum(0)})

        return {"Output": x * scale + shift}, backward


def main(rounds: int = 200) -> dict:
    from netgraph import NetChain, NetExtract, NetTrain, gradcheck, load, save

    net = NetChain([ScaleShiftLayer(), "Tanh"], Input=("Varying", 3))  # n = 3 is inferred
    print(net)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(T), 3)) for T in rng.integers(1, 6, 64)]
    ys = [np.tanh(2 * x - 0.5) for x in xs]  # learn Scale = 2, Shift = -0.5
    trained = NetTrain(net, {"Input": xs, "Output": ys}, max_training_rounds=rounds,
                       learning_rate=0.05, seed=0, progress=False)
    scale, shift = NetExtract(trained, [0, "Scale"]), NetExtract(trained, [0, "Shift"])
    print("learned Scale", scale.round(3), "Shift", shift.round(3))
    with tempfile.TemporaryDirectory() as tmp:  # a module-level layer saves and loads
        save(trained, Path(tmp) / "model")
        back = load(Path(tmp) / "model")
    gradcheck(trained, {"Input": xs[:3]})
    return {"scale": scale, "shift": shift, "net": trained, "loaded": back, "inputs": xs}


if __name__ == "__main__":
    main()
