"""netgraph.generate: greedy decoding and beam search, prefix nets and step nets.

Two kinds of model: a *bigram* net whose next-token probabilities are set exactly (an
EmbeddingLayer whose rows are the logarithms of chosen distributions, then a softmax: row
``v`` of ``P`` is the distribution after token ``v``), and GRU decoders with random arrays,
whose probabilities depend on the whole prefix and on an initial State given as data (the
same arrays as a prefix net and as a step net that also outputs its State).
"""

import importlib
import itertools

import numpy as np
import pytest
from helpers import randomized
from tolerance import assert_close

from netgraph import (
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    InputDataError,
    LinearLayer,
    NetChain,
    NetDecoder,
    NetEncoder,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetReplacePart,
    SoftmaxLayer,
    generate,
)

# the module (the package's attribute "generate" is the function)
generation = importlib.import_module("netgraph.generate")

N = 4           # tokens 0..3
STOP = 3


def chosen_probabilities(seed=0, n=N):
    """Distinct probabilities (no ties among sequences), every row a distribution."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(n, 0.8), size=n)


def bigram(P):
    net = NetChain([EmbeddingLayer(len(P), len(P)), SoftmaxLayer()],
                   Input=("Varying", Index(len(P))))
    return NetReplacePart(net, {(0, "Weights"): np.log(P)})


def gru_decoder(n=N, hidden=5, final_state=False, seed=1, scale=1.5):
    """Tokens + initial State -> next-token probabilities (and, as a step net, the State)."""
    connections = [(NetPort("Input"), "embed", "gru", "project", "softmax", NetPort("Output")),
                   (NetPort("State"), NetPort("gru", "State"))]
    if final_state:
        connections.append((NetPort("gru", "State"), NetPort("State")))
    net = NetGraph({"embed": EmbeddingLayer(3, n), "gru": GatedRecurrentLayer(hidden),
                    "project": NetMapOperator(LinearLayer(n)), "softmax": SoftmaxLayer()},
                   connections, Input=("Varying", Index(n)))
    net = randomized(net, seed)
    return NetReplacePart(net, {("project", "Net", "Weights"):
                                scale * NetExtract(net, ["project", "Net", "Weights"])})


def step_form(prefix_net):
    """The step net with the arrays of ``prefix_net`` (a gru_decoder)."""
    step = gru_decoder(final_state=True)
    parts = {}
    for node in ("embed", "gru", "project"):
        parts[node] = NetExtract(prefix_net, node)
    return NetGraph(parts | {"softmax": SoftmaxLayer()},
                    [(NetPort("Input"), "embed", "gru", "project", "softmax", NetPort("Output")),
                     (NetPort("State"), NetPort("gru", "State")),
                     (NetPort("gru", "State"), NetPort("State"))],
                    Input=step.port_shape("Input"))


def next_log_probs(net, prefix, data=None):
    """log p(. | prefix) from the prefix net in float64 (one example)."""
    out = net({**(data or {}), "Input": np.array(prefix)}, "Output", dtype=np.float64)
    return np.log(out[-1])


def sequence_log_prob(net, start, seq, stop, data=None):
    """sum of log p over the generated tokens (and the stop that ended it), float64."""
    tokens = [start]
    total = 0.0
    for v in list(seq) + ([stop] if stop is not None else []):
        total += next_log_probs(net, tokens, data)[v]
        tokens.append(v)
    return total


def all_sequences(n, stop, L):
    """Every complete hypothesis of at most L tokens: ended by the stop (counted in L), or L
    tokens long without it."""
    for m in range(1, L + 1):
        for seq in itertools.product(range(n), repeat=m):
            if stop in seq[:-1]:
                continue
            if seq[-1] == stop:
                yield list(seq[:-1]), True
            elif m == L:
                yield list(seq), False


def brute_force(net, start, stop, L, data=None):
    """All complete hypotheses ranked by log-probability (float64, recomputed by the net)."""
    scored = []
    for seq, stopped in all_sequences(N, stop, L):
        score = sequence_log_prob(net, start, seq, stop if stopped else None, data)
        scored.append((score, seq))
    scored.sort(key=lambda s: -s[0])
    return scored


# -------------------------------------------------------------------------- greedy
def test_greedy_equals_a_hand_written_greedy_loop_on_chosen_probabilities():
    P = chosen_probabilities()
    net = bigram(P)
    for start in range(N):
        want, token = [], start
        for _ in range(6):                       # the loop by hand, on the chosen table
            token = int(np.argmax(P[token]))
            if token == STOP:
                break
            want.append(token)
        assert generate(net, start=start, stop=STOP, max_length=6) == want
        assert generate(net, start=start, stop=STOP, max_length=6, beam_size=1) == want


def test_greedy_equals_a_hand_written_loop_over_the_net():
    net = gru_decoder()
    state = np.random.default_rng(5).standard_normal(5)
    tokens, want = [0], []
    for _ in range(7):
        v = int(np.argmax(net({"Input": np.array(tokens), "State": state}, "Output")[-1]))
        if v == STOP:
            break
        want.append(v)
        tokens.append(v)
    got = generate(net, {"State": state}, start=0, stop=STOP, max_length=7)
    assert got == want


# ------------------------------------------------------------------------ beam search
@pytest.mark.parametrize("L", [1, 2, 3])
def test_large_beam_equals_the_brute_force_most_probable_sequence(L):
    P = chosen_probabilities(seed=L)
    net = bigram(P)
    ranked = brute_force(net, 1, STOP, L)
    # the table's probabilities sum to one over the complete hypotheses
    assert_close(sum(np.exp(s) for s, _ in ranked), 1.0, dtype=np.float32, reduction=N ** L)
    k = N ** (L - 1)
    assert ranked[0][0] > ranked[1][0] + 1e-3      # one most probable sequence
    assert generate(net, start=1, stop=STOP, max_length=L, beam_size=k) == ranked[0][1]
    best = generate(net, start=1, stop=STOP, max_length=L, beam_size=k, prop="All")
    # a bigram model gives permutations of the same transitions equal probabilities, so the
    # k best are compared by score, and each sequence found by its own recomputed score
    assert len(best) == k and len({tuple(q) for q, _ in best}) == k
    assert_close(np.array([x for _, x in best]), np.array([x for x, _ in ranked[:k]]),
                 dtype=np.float32, reduction=4 * L)
    for seq, score in best:
        want = sequence_log_prob(net, 1, seq, STOP if len(seq) < L else None)
        assert_close(score, want, dtype=np.float32, reduction=4 * L)


def test_large_beam_equals_brute_force_on_a_recurrent_decoder():
    net = gru_decoder(seed=3)
    data = {"State": np.random.default_rng(2).standard_normal(5)}
    L = 3
    ranked = brute_force(net, 0, STOP, L, data)
    k = N ** (L - 1)
    got = generate(net, data, start=0, stop=STOP, max_length=L, beam_size=k, prop="All")
    assert len(got) == k
    assert [seq for seq, _ in got] == [seq for _, seq in ranked[:k]]
    for (_, score), (want, _) in zip(got, ranked):
        assert_close(score, want, dtype=np.float32, reduction=4 * L)


def test_beam_search_finds_what_greedy_misses():
    # after the start (0): token 1 is likelier than 2, but every continuation of 1 is poor
    P = np.array([[0.05, 0.5, 0.4, 0.05],
                  [0.35, 0.3, 0.15, 0.2],
                  [0.02, 0.02, 0.01, 0.95],
                  [0.25, 0.25, 0.25, 0.25]])
    net = bigram(P)
    assert generate(net, start=0, stop=STOP, max_length=4) == [1, 0, 1, 0]   # p = 0.0306
    assert generate(net, start=0, stop=STOP, max_length=4, beam_size=2) == [2]   # p = 0.38


def test_all_scores_equal_a_recomputation_and_are_ranked():
    net = gru_decoder(seed=4)
    data = {"State": np.random.default_rng(4).standard_normal(5)}
    got = generate(net, data, start=2, stop=STOP, max_length=5, beam_size=4, prop="All")
    assert len(got) == 4
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(seq) for seq, _ in got}) == 4
    for seq, score in got:
        ended = len(seq) < 5
        want = sequence_log_prob(net, 2, seq, STOP if ended else None, data)
        assert_close(score, want, dtype=np.float32, reduction=4 * len(seq) + 4)
    assert generate(net, data, start=2, stop=STOP, max_length=5, beam_size=4) == got[0][0]


# ------------------------------------------------------------------- stop, max_length
def test_stop_and_max_length_are_respected():
    P = chosen_probabilities(seed=7)
    P[:, STOP] = 1e-3                        # the stop is rare: sequences run to max_length
    P /= P.sum(axis=1, keepdims=True)
    net = bigram(P)
    for k in (1, 3):
        for L in (1, 4, 6):
            for seq, _ in generate(net, start=0, stop=STOP, max_length=L, beam_size=k,
                                   prop="All"):
                assert STOP not in seq and len(seq) <= L
            # without a stop every result has exactly max_length tokens, the stop token too
            for seq, _ in generate(net, start=0, max_length=L, beam_size=k, prop="All"):
                assert len(seq) == L
    certain = np.full((N, N), 1e-6)
    certain[:, STOP] = 1.0
    assert generate(bigram(certain / certain.sum(1, keepdims=True)), start=0, stop=STOP,
                    max_length=5) == []


def test_a_stop_counts_towards_max_length():
    P = np.full((N, N), 0.1)
    P[0, 1] = P[1, 2] = P[2, STOP] = 0.7       # 0 -> 1 -> 2 -> stop
    net = bigram(P)
    assert generate(net, start=0, stop=STOP, max_length=3, prop="All")[0][0] == [1, 2]
    # with max_length 2 the stop never fits: the two tokens end the sequence
    assert generate(net, start=0, stop=STOP, max_length=2) == [1, 2]
    (seq, score), = generate(net, start=0, stop=STOP, max_length=2, prop="All")
    assert_close(score, np.log(0.7) * 2, dtype=np.float32, reduction=4)


# ------------------------------------------------------------- step and prefix forms
@pytest.mark.parametrize("beam", [1, 3])
def test_step_form_and_prefix_form_give_the_same_sequences(beam):
    prefix = gru_decoder(seed=6)
    step = step_form(prefix)
    assert set(step.input_ports) == {"Input", "State"} and "State" in step.output_ports
    states = np.random.default_rng(6).standard_normal((5, 5))
    for s in states:
        a = generate(prefix, {"State": s}, start=1, stop=STOP, max_length=6, beam_size=beam,
                     prop="All")
        b = generate(step, {"State": s}, start=1, stop=STOP, max_length=6, beam_size=beam,
                     prop="All")
        assert [q for q, _ in a] == [q for q, _ in b]
        assert_close(np.array([x for _, x in b]), np.array([x for _, x in a]),
                     dtype=np.float32, reduction=40)


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("form", ["prefix", "step"])
def test_a_batch_equals_per_example_calls(beam, form):
    net = gru_decoder(seed=8)
    net = step_form(net) if form == "step" else net
    states = np.random.default_rng(8).standard_normal((7, 5))
    batch = generate(net, {"State": states}, start=0, stop=STOP, max_length=6, beam_size=beam,
                     prop="All")
    assert len(batch) == 7
    for s, got in zip(states, batch):
        alone = generate(net, {"State": s}, start=0, stop=STOP, max_length=6, beam_size=beam,
                         prop="All")
        assert [q for q, _ in got] == [q for q, _ in alone]
        assert_close(np.array([x for _, x in got]), np.array([x for _, x in alone]),
                     dtype=np.float32, reduction=40)
    firsts = generate(net, {NetPort("State"): list(states)}, start=0, stop=STOP, max_length=6,
                      beam_size=beam)
    assert firsts == [b[0][0] for b in batch]


def _recording(monkeypatch):
    """Record the number of rows of every forward pass generate runs."""
    sizes = []
    real = generation.forward

    def counting(plan, inputs, run):
        sizes.append(len(inputs["Input"]))
        return real(plan, inputs, run)

    monkeypatch.setattr(generation, "forward", counting)
    return sizes


def test_finished_hypotheses_and_done_examples_leave_the_batch(monkeypatch):
    sizes = _recording(monkeypatch)
    P = np.array([[0.04, 0.35, 0.31, 0.30],   # from the start: 1, 2 and the stop are the top 3
                  [0.1, 0.1, 0.1, 0.7],
                  [0.25, 0.2, 0.15, 0.4],
                  [0.25, 0.25, 0.25, 0.25]])
    got = generate(bigram(P), start=0, stop=STOP, max_length=8, beam_size=3, prop="All")
    # step 1 finishes [] (0.30) and keeps [1], [2]; step 2 finishes [1] (0.35 * 0.7) and
    # [2] (0.31 * 0.4); the best live one, [2, 0] (0.31 * 0.25), cannot beat the third
    # finished one: the search ends after two forward passes of 1 and 2 rows
    assert sizes == [1, 2]
    assert [q for q, _ in got] == [[], [1], [2]]
    assert_close(np.array([x for _, x in got]), np.log([0.30, 0.35 * 0.7, 0.31 * 0.4]),
                 dtype=np.float32, reduction=4)


def test_all_examples_and_beams_of_a_step_run_as_one_batch(monkeypatch):
    sizes = _recording(monkeypatch)
    net = step_form(gru_decoder(seed=9))
    states = np.random.default_rng(9).standard_normal((6, 5))
    generate(net, {"State": states}, start=0, stop=STOP, max_length=5, beam_size=3)
    assert 2 <= len(sizes) <= 5              # one forward pass per step, for all examples
    assert sizes[0] == 6 and max(sizes) <= 6 * 3
    sizes.clear()
    generate(net, {"State": states}, start=0, max_length=5, beam_size=3)
    assert sizes == [6] + [18] * 4           # no stop: nothing finishes before the end


# ------------------------------------------------------------------------ encoders
def test_encoded_input_and_decoded_output():
    chars = "^ab$"                               # start, two letters, stop
    P = np.array([[0.01, 0.6, 0.3, 0.09],
                  [0.01, 0.2, 0.7, 0.09],
                  [0.01, 0.1, 0.1, 0.79],
                  [0.25, 0.25, 0.25, 0.25]])
    net = NetChain([EmbeddingLayer(4, 4), SoftmaxLayer()],
                   Input=NetEncoder("Characters", chars), Output=NetDecoder("Characters", chars))
    net = NetReplacePart(net, {(0, "Weights"): np.log(P)})
    assert generate(net, start="^", stop="$", max_length=5) == "ab"
    assert generate(net, start=0, stop=3, max_length=5) == "ab"
    got = generate(net, start="^", stop="$", max_length=5, beam_size=2, prop="All")
    assert got[0][0] == "ab" and isinstance(got[1][0], str)
    assert_close(got[0][1], np.log(0.6 * 0.7 * 0.79), dtype=np.float32, reduction=6)
    labels = NetChain([EmbeddingLayer(4, 4), SoftmaxLayer()], Input=("Varying", Index(4)),
                      Output=NetDecoder("Class", ["s", "x", "y", "e"]))
    labels = NetReplacePart(labels, {(0, "Weights"): np.log(P)})
    assert generate(labels, start=0, stop=3, max_length=5) == ["x", "y"]


def test_fixed_inputs_with_encoders_and_varying_lengths():
    """A decoder started from a varying-length context (the last of its embedded characters),
    given as raw text, as indices, one example or a batch: the same sequences."""
    from netgraph import SequenceLastLayer

    context = NetEncoder("Characters", "xyz")
    net = NetGraph({"ctx": EmbeddingLayer(3, 3), "last": SequenceLastLayer(),
                    "embed": EmbeddingLayer(3, N), "gru": GatedRecurrentLayer(3),
                    "project": NetMapOperator(LinearLayer(N)),
                    "softmax": SoftmaxLayer()},
                   [(NetPort("Context"), "ctx", "last", NetPort("gru", "State")),
                    (NetPort("Input"), "embed", "gru", "project", "softmax")],
                   Context=context, Input=("Varying", Index(N)))
    net = randomized(net, 3)
    texts = ["xyzzy", "zx", "y"]
    batch = generate(net, {"Context": texts}, start=0, stop=STOP, max_length=4, beam_size=2)
    for text, got in zip(texts, batch):
        assert generate(net, {"Context": text}, start=0, stop=STOP, max_length=4,
                        beam_size=2) == got
        indices = np.array(["xyz".index(c) for c in text])
        assert generate(net, indices, start=0, stop=STOP, max_length=4, beam_size=2) == got


# --------------------------------------------------------------------------- errors
def test_mistakes_are_net_errors():
    net = bigram(chosen_probabilities())
    with pytest.raises(NetError, match="max_length"):
        generate(net, start=0, max_length=0)
    with pytest.raises(NetError, match="beam_size"):
        generate(net, start=0, max_length=3, beam_size=True)
    with pytest.raises(NetError, match="prop"):
        generate(net, start=0, max_length=3, prop="Best")
    with pytest.raises(NetError, match=r"start=4 is outside the tokens 0\.\.3"):
        generate(net, start=4, max_length=3)
    with pytest.raises(NetError, match="stop"):
        generate(net, start=0, stop="a", max_length=3)
    with pytest.raises(NetError, match="must not hold 'Input'"):
        generate(net, {"Input": [0]}, start=0, max_length=3)
    with pytest.raises(NetError, match="uninitialized"):
        generate(NetChain([EmbeddingLayer(4, 4), SoftmaxLayer()]), start=0, max_length=3)
    wrong = NetInitialize(NetChain([EmbeddingLayer(5, 4), SoftmaxLayer()]), seed=0)
    with pytest.raises(NetError, match=r"over the 4 tokens of port 'Input'"):
        generate(wrong, start=0, max_length=3)
    renamed = NetInitialize(NetGraph({"e": EmbeddingLayer(4, 4), "s": SoftmaxLayer()},
                                     [(NetPort("Tokens"), "e", "s")]), seed=0)
    with pytest.raises(NetError, match="needs an input port 'Input'"):
        generate(renamed, start=0, max_length=2)
    raw = NetInitialize(NetChain([EmbeddingLayer(4, 4)]), seed=0)
    with pytest.raises(NetError, match="probabilit"):
        generate(NetReplacePart(raw, {(0, "Weights"): -np.ones((4, 4))}), start=0,
                 max_length=2)
    with pytest.raises(NetError, match="generate needs a net"):
        generate("net", start=0, max_length=2)


def test_bad_data_is_an_input_data_error():
    net = gru_decoder()
    with pytest.raises(InputDataError, match="'State'"):
        generate(net, {"State": np.ones(4)}, start=0, max_length=2)
    with pytest.raises(InputDataError, match="'State'"):
        generate(net, start=0, max_length=2)
    with pytest.raises(InputDataError, match="unknown input port 'Other'"):
        generate(net, {"State": np.ones(5), "Other": 1}, start=0, max_length=2)
