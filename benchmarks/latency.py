"""Latency of single-example calls of small nets, against the same PyTorch modules under
``torch.no_grad()`` in the same run (issue 10, target 2: ratio <= 1.5).

Three nets, each timed as users call it (``net(data)`` on one example, packing, validation
and unpacking included) and, for the decoder, also as ``netgraph.generate`` calls its step
net (the plan run on already validated, padded arrays):

* ``chain``: ``NetChain([LinearLayer(64), "Tanh", LinearLayer(10), SoftmaxLayer()])`` on one
  32-vector; PyTorch ``nn.Sequential(Linear, Tanh, Linear, Softmax)``.
* ``gru``: ``GatedRecurrentLayer(32)`` over one sequence of 10 16-vectors (all outputs);
  PyTorch ``nn.GRU`` (same equations: reset after the state matmul; ``bias_hh = 0``).
* ``decoder``: one step of an attention decoder: ``EmbeddingLayer(16, 30)`` -> GRU(32) with
  State in and out -> Bilinear ``SequenceAttentionLayer`` over 20 fixed 24-vector encoder
  states -> ``NetMapOperator(LinearLayer(30))`` -> ``SoftmaxLayer``; PyTorch: Embedding,
  GRU, ``softmax(q W E^T) E``, Linear, softmax (the same work: ``W E^T`` is recomputed every
  step on both sides). ``decoder (step)`` times netgraph's step as ``generate`` runs it
  (validation and padding of the fixed inputs done once, outside the loop) against the same
  PyTorch step; ``greedy 20`` a whole ``generate(..., max_length=20)`` against a PyTorch
  greedy loop of 20 steps (argmax per step; generate also sorts and keeps log-probabilities).

Both sides are checked to give the same numbers before they are timed.

    python benchmarks/latency.py [--repeat 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import describe_machine, machine, rounds_ms, write_json

from netgraph import (
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    NetChain,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    SequenceAttentionLayer,
    SoftmaxLayer,
    generate,
)
from netgraph.generate import _prepare

VOCAB, EMBED, HIDDEN, ENC_N, ENC_D = 30, 16, 32, 20, 24
GRU_ORDER = ("ResetGate", "InputGate", "MemoryGate")  # PyTorch's gate order (r, z, n)


def _tensor(torch, a):
    return torch.tensor(np.asarray(a, np.float32))


def _load_gru(torch, mod, arrays: dict) -> None:
    with torch.no_grad():
        mod.weight_ih_l0.copy_(_tensor(torch, np.concatenate(
            [arrays[f"{g}InputWeights"] for g in GRU_ORDER])))
        mod.weight_hh_l0.copy_(_tensor(torch, np.concatenate(
            [arrays[f"{g}StateWeights"] for g in GRU_ORDER])))
        mod.bias_ih_l0.copy_(_tensor(torch, np.concatenate(
            [arrays[f"{g}Biases"] for g in GRU_ORDER])))
        mod.bias_hh_l0.zero_()


def _gru_arrays(net, path) -> dict:
    layer = NetExtract(net, path) if path else net
    return {name: NetExtract(layer, name) for name in layer._arrays()}


# ------------------------------------------------------------------------ the three nets
def chain_case(torch, rng):
    net = NetInitialize(NetChain([LinearLayer(64), "Tanh", LinearLayer(10), SoftmaxLayer()],
                                 Input=32), seed=0)
    x = rng.standard_normal(32).astype(np.float32)
    mod = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10),
                              torch.nn.Softmax(dim=-1))
    with torch.no_grad():
        for i, layer in ((0, 0), (2, 2)):
            mod[i].weight.copy_(_tensor(torch, NetExtract(net, [layer, "Weights"])))
            mod[i].bias.copy_(_tensor(torch, NetExtract(net, [layer, "Biases"])))
    xt = torch.from_numpy(x)

    def theirs():
        with torch.no_grad():
            return mod(xt)

    return {"chain": (lambda: net(x), theirs, lambda a, b: (a, b.numpy()))}


def gru_case(torch, rng):
    net = NetInitialize(GatedRecurrentLayer(HIDDEN, Input=("Varying", EMBED)), seed=0)
    x = rng.standard_normal((10, EMBED)).astype(np.float32)
    mod = torch.nn.GRU(EMBED, HIDDEN, batch_first=True)
    _load_gru(torch, mod, _gru_arrays(net, None))
    xt = torch.from_numpy(x)[None]

    def theirs():
        with torch.no_grad():
            return mod(xt)[0]

    return {"gru (10 steps)": (lambda: net(x), theirs, lambda a, b: (a, b[0].numpy()))}


def decoder_net(seed: int = 0):
    """One step of an attention decoder: token, State, Encoded -> Output (probabilities),
    State."""
    net = NetGraph(
        {"embed": EmbeddingLayer(EMBED, VOCAB), "gru": GatedRecurrentLayer(HIDDEN),
         "attend": SequenceAttentionLayer("Bilinear"),
         "readout": NetMapOperator(LinearLayer(VOCAB)), "softmax": SoftmaxLayer()},
        [(NetPort("Input"), "embed", "gru"), (NetPort("State"), NetPort("gru", "State")),
         (NetPort("gru", "State"), NetPort("State")),
         (NetPort("Encoded"), NetPort("attend", "Input")),
         (NetPort("gru", "Output"), NetPort("attend", "Query")),
         ("attend", "readout", "softmax", NetPort("Output"))],
        Input=("Varying", Index(VOCAB)), Encoded=(ENC_N, ENC_D))
    return NetInitialize(net, seed=seed)


def decoder_case(torch, rng):
    net = decoder_net()
    encoded = rng.standard_normal((ENC_N, ENC_D)).astype(np.float32)
    state = (0.5 * rng.standard_normal(HIDDEN)).astype(np.float32)
    token = np.array([3])
    emb = torch.nn.Embedding(VOCAB, EMBED)
    gru = torch.nn.GRU(EMBED, HIDDEN, batch_first=True)
    readout = torch.nn.Linear(ENC_D, VOCAB)
    with torch.no_grad():
        emb.weight.copy_(_tensor(torch, NetExtract(net, ["embed", "Weights"])))
        readout.weight.copy_(_tensor(torch, NetExtract(net, ["readout", "Net", "Weights"])))
        readout.bias.copy_(_tensor(torch, NetExtract(net, ["readout", "Net", "Biases"])))
    _load_gru(torch, gru, _gru_arrays(net, "gru"))
    W = _tensor(torch, NetExtract(net, ["attend", "ScoringNet", "Linear", "Weights"]))
    E, tok_t = torch.from_numpy(encoded), torch.from_numpy(token)

    def torch_step(tok, h):
        """(1,) token, (1, 1, HIDDEN) state -> (1, VOCAB) probabilities, new state."""
        q, h = gru(emb(tok)[None], h)                      # (1, 1, HIDDEN)
        s = q[0] @ (E @ W.T).T                              # (1, ENC_N): s_i = q . (W e_i)
        ctx = torch.softmax(s, dim=-1) @ E                  # (1, ENC_D)
        return torch.softmax(readout(ctx), dim=-1), h

    h0 = torch.from_numpy(state)[None, None]

    def theirs():
        with torch.no_grad():
            return torch_step(tok_t, h0)

    data = {"Input": token, "State": state, "Encoded": encoded}
    model = _prepare(net, {"State": state, "Encoded": encoded})
    rows, tokens = np.arange(1), token[None]
    states = dict(model.initial_states)

    def step():
        return model.step(rows, tokens, states)

    def greedy():
        return generate(net, {"State": state, "Encoded": encoded}, start=3, max_length=20)

    def torch_greedy():
        with torch.no_grad():
            tok, h, out = tok_t, h0, []
            for _ in range(20):
                p, h = torch_step(tok, h)
                tok = p.argmax(-1)
                out.append(int(tok))
            return out

    def agree_call(a, b):
        return (np.concatenate([a["Output"][0], a["State"]]),
                np.concatenate([b[0][0].numpy(), b[1][0, 0].numpy()]))

    def agree_step(a, b):
        logp, new = a
        return (np.concatenate([np.exp(logp[0]), new["State"][0]]),
                np.concatenate([b[0][0].numpy(), b[1][0, 0].numpy()]))

    return {"decoder (net call)": (lambda: net(data), theirs, agree_call),
            "decoder (step)": (step, theirs, agree_step),
            "greedy 20 (generate)": (greedy, torch_greedy,
                                     lambda a, b: (np.array(a), np.array(b)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2000, help="calls per side and net")
    ap.add_argument("--rounds", type=int, default=10, help="alternating blocks per side")
    args = ap.parse_args()
    import torch

    info = machine()
    print(describe_machine(info))
    rng = np.random.default_rng(0)
    cases = {**chain_case(torch, rng), **gru_case(torch, rng), **decoder_case(torch, rng)}
    rows = []
    print(f"{'call':24s} {'netgraph us':>12s} {'torch us':>10s} {'ratio':>7s}")
    for name, (ours, theirs, agree) in cases.items():
        a, b = agree(ours(), theirs())
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)
        repeat = args.repeat // 20 if name.startswith("greedy") else args.repeat
        # rounds of short blocks, each side in turn; the ratio is the median of the rounds'
        (ms, tms), (_, ratio) = rounds_ms([ours, theirs], max(1, repeat // args.rounds),
                                          args.rounds, pause=0.02)
        rows.append({"call": name, "netgraph_us": round(1000 * ms, 1),
                     "torch_us": round(1000 * tms, 1), "ratio": round(ratio, 3)})
        print(f"{name:24s} {1000 * ms:12.1f} {1000 * tms:10.1f} {ratio:7.2f}", flush=True)
    path = write_json("latency", rows, info, target_ratio=1.5,
                      note="single-example calls; torch under no_grad; ratio = netgraph/torch")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
