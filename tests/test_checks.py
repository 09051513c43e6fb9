"""``gradcheck`` and ``check_padding`` catch deliberately broken layers and pass correct ones."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import randomized

import netgraph.layers as layers
from netgraph import (
    Layer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetGraph,
    NetInitialize,
    NetPortGradient,
    check_padding,
    gradcheck,
)
from netgraph.extend import where
from netgraph.numdiff import central_differences


class Scale(Layer):
    """``y = s * x`` for a vector ``x`` and an array ``Scale``; subclasses break a gradient."""

    array_init = {"Scale": "weights"}
    input_bug = array_bug = False

    def __init__(self, **ports):
        super().__init__({}, ports)

    def rules(self, S, path, ports):
        n = S.new_dim()
        S.constrain(ports["Input"], (n,), None, where(path, "Input"), "Scale takes a vector")
        S.unify(ports["Input"], ports["Output"], where(path, "Input"), where(path, "Output"))
        return {"Scale": (n,)}

    def forward(self, ins, arrays, ctx):
        x, s = ins["Input"], arrays["Scale"]

        def backward(g):
            gy = g["Output"]
            gx = gy if self.input_bug else gy * s
            gs = (gy * x).sum(0) * (1.01 if self.array_bug else 1)
            return {"Input": gx}, {"Scale": gs}

        return {"Output": x * s}, backward


class WrongInputGradient(Scale):
    input_bug = True


class WrongArrayGradient(Scale):
    array_bug = True


class _SequenceLayer(Layer):
    """A layer on ``("Varying",)`` sequences with the output shaped like the input."""

    def __init__(self, **ports):
        super().__init__({}, ports)

    def rules(self, S, path, ports):
        S.unify(ports["Input"], ports["Output"], where(path, "Input"), where(path, "Output"))
        return {}


class SoftmaxIgnoringLengths(_SequenceLayer):
    """Softmax over the whole padded axis: padded positions get weight."""

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
        return {"Output": y}, lambda g: (
            {"Input": y * (g["Output"] - (g["Output"] * y).sum(-1, keepdims=True))}, {})


class DirtyPadding(_SequenceLayer):
    """``y = x + 1`` that claims ``pad_clean`` (its padded outputs are 1, not 0)."""

    pad_clean = True

    def forward(self, ins, arrays, ctx):
        return {"Output": ins["Input"] + 1}, lambda g: ({"Input": g["Output"]}, {})


class DirtyGradient(_SequenceLayer):
    """``y = 3 x`` that claims ``pad_clean`` but sends gradient into padded positions."""

    pad_clean = True

    def forward(self, ins, arrays, ctx):
        return {"Output": 3 * ins["Input"]}, lambda g: ({"Input": 3 * g["Output"] + 1}, {})


class BatchMixer(_SequenceLayer):
    """``y = x - mean over the batch``: a fine function, but not one example at a time."""

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        y = x - x.mean(0, keepdims=True)
        return {"Output": y}, lambda g: ({"Input": g["Output"] - g["Output"].mean(0)}, {})


def _sequences(lengths=(3, 1, 5), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(T) for T in lengths]


@pytest.mark.parametrize("data", [np.linspace(-1, 2, 7), np.arange(28.0).reshape(4, 7) / 9])
def test_gradcheck_passes_a_correct_layer_and_reports_every_part(data):
    net = NetGraph({"layer": Scale(Input=7)}, [])
    report = gradcheck(randomized(net), data)
    assert set(report) == {NetPortGradient("Input"), NetArrayGradient(("layer", "Scale"))}
    assert report.ok and report[NetPortGradient("Input")]["size"] == data.size
    assert report[NetArrayGradient(("layer", "Scale"))]["size"] == 7
    assert "max abs error" in str(report)


def test_gradcheck_names_the_port_with_a_wrong_gradient():
    net = randomized(NetChain([WrongInputGradient(Input=7)]))
    with pytest.raises(NetError, match="input port 'Input'"):
        gradcheck(net, np.linspace(-1, 2, 7))


def test_gradcheck_names_the_array_with_a_wrong_gradient():
    net = randomized(NetGraph({"layer": WrongArrayGradient(Input=7)}, []))
    with pytest.raises(NetError, match=r"array \['layer', 'Scale'\]"):
        gradcheck(net, np.linspace(-1, 2, 7))


def test_gradcheck_finds_a_wrong_gradient_deep_in_a_net_over_a_batch():
    inner = NetChain([layers.LinearLayer(7), WrongArrayGradient(), layers.ElementwiseLayer("Tanh")])
    net = randomized(NetChain({"map": layers.NetMapOperator(inner)}, Input=("Varying", 5)))
    with pytest.raises(NetError, match=r"\['map', 'Net', 1, 'Scale'\]"):
        gradcheck(net, [np.ones((T, 5)) / T for T in (3, 1, 4)])


def test_gradcheck_is_not_fooled_by_the_truncation_error_of_central_differences():
    # sin(x^4) at x ~ 17: the first derivative ~2e4, the third ~1e13, so central differences
    # of step 1e-6 are off by h^2 f3 / 6 ~ 2, far beyond rtol; the analytic gradient is right
    # (found by the property tests on a Sin of a loss ~2e4)
    net = NetChain([layers.ElementwiseLayer("Square"), layers.ElementwiseLayer("Square"),
                    layers.ElementwiseLayer("Sin")], Input=3)
    for x in (np.array([15.0, 17.0, 19.0]), np.array([35.0, 37.0, 39.0])):
        # at x ~ 37 even the extrapolation of steps 1e-6 and 2e-6 is off: a tenth of the step
        g = net(x, NetPortGradient("Input"), dtype=np.float64)
        np.testing.assert_allclose(g, 4 * x ** 3 * np.cos(x ** 4), rtol=1e-9)
        report = gradcheck(net, x)
        assert report.ok and report[NetPortGradient("Input")]["max_rel_error"] < 1e-5


def test_gradcheck_samples_large_arrays():
    net = randomized(layers.LinearLayer(11, Input=7))
    report = gradcheck(net, np.ones(7), max_entries=5)
    assert report[NetArrayGradient("Weights")]["size"] == 5
    assert report[NetPortGradient("Input")]["size"] == 5


def test_gradcheck_needs_initialized_arrays():
    with pytest.raises(NetError, match="NetInitialize"):
        gradcheck(layers.LinearLayer(3, Input=5), np.ones(5))


def test_check_padding_passes_correct_sequence_nets():
    chain = NetChain([layers.NetMapOperator(layers.LinearLayer(3)), layers.SoftmaxLayer(0),
                      layers.SequenceReverseLayer(), layers.SummationLayer()],
                     Input=("Varying", 2))
    report = check_padding(NetInitialize(chain, seed=1),
                           [np.ones((T, 2)) * T for T in (3, 1, 5)])
    assert report.ok and NetPortGradient("Input") in report


def test_check_padding_catches_a_layer_ignoring_lengths():
    with pytest.raises(NetError, match="output port 'Output' of example 0 changed"):
        check_padding(SoftmaxIgnoringLengths(Input="Varying"), _sequences())


def test_check_padding_catches_dirty_padding_in_values():
    with pytest.raises(NetError, match="value at port 'Output'.*not exactly 0 at padded"):
        check_padding(DirtyPadding(Input="Varying"), _sequences())
    # and what it does to a layer downstream that relies on clean padding
    chain = NetChain([DirtyPadding(), layers.SummationLayer()], Input="Varying")
    with pytest.raises(NetError, match="output port 'Output' of example 0 changed"):
        check_padding(chain, _sequences())


def test_check_padding_catches_dirty_padding_in_gradients():
    with pytest.raises(NetError, match="gradient for port 'Input'.*not exactly 0 at padded"):
        check_padding(DirtyGradient(Input="Varying"), _sequences())
    chain = NetChain({"map": layers.NetMapOperator(layers.LinearLayer(1)), "dirty": DirtyGradient()},
                     Input=("Varying", 2))
    with pytest.raises(NetError, match="gradient for port 'Input' of node 'dirty'"):
        check_padding(NetInitialize(chain, seed=0), [np.ones((T, 2)) for T in (3, 1, 5)])


def test_check_padding_catches_mixing_across_the_batch():
    data = _sequences((4, 4, 4))
    gradcheck(BatchMixer(Input="Varying"), data)  # a correct gradient of a batch function...
    with pytest.raises(NetError, match="example 0 changed"):  # ...but not per example
        check_padding(BatchMixer(Input="Varying"), data)


# -------------------------------------------------------------- the central-difference routine
def test_central_differences_values_entries_and_restore():
    """``(f(x + h e_i) - f(x - h e_i)) / 2h`` of ``f = sum(c * sin(x))`` against ``c * cos(x)``
    within the truncation bound ``h²/6 · |c|`` (``|sin'''| <= 1``) plus round-off; only the
    entries asked for, ``fill`` elsewhere; ``x`` restored bit for bit."""
    rng = np.random.default_rng(4)
    x, c = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    before = x.copy()
    h = 1e-4
    num = central_differences(lambda: float(np.sum(c * np.sin(x))), x, h=h)
    bound = h**2 / 6 * np.abs(c) + 4 * np.finfo(float).eps * np.sum(np.abs(c)) / h
    assert np.all(np.abs(num - c * np.cos(x)) <= bound)
    assert x.tobytes() == before.tobytes()
    part = central_differences(lambda: float(np.sum(c * np.sin(x))), x, h=h, at=[0, 7], fill=-3.0)
    assert np.array_equal(part.ravel()[[0, 7]], num.ravel()[[0, 7]])
    assert np.all(np.delete(part.ravel(), [0, 7]) == -3.0)
    assert np.isnan(central_differences(lambda: 0.0, x, h=h, at=[])).all()


def test_central_differences_restores_x_when_f_raises_and_refuses_a_copy():
    x = np.arange(7.0)

    def boom() -> float:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        central_differences(boom, x, h=0.5)
    assert np.array_equal(x, np.arange(7.0))
    with pytest.raises(NetError, match="contiguous"):
        central_differences(lambda: 0.0, np.ones((3, 5))[:, ::2], h=0.5)
