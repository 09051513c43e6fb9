"""SequenceAttentionLayer, the documentation's basic examples in Python.

Creates a layer with Input size 2 and Query size 1, initializes it, applies it to one
example and to a batch of sequences of different lengths, extracts the scoring net and
rebuilds one output by hand, and saves a heat map of the attention weights.

    python examples/attention_basics.py [--out attention_weights.png]
"""

from __future__ import annotations

import argparse

import numpy as np

from netgraph import NetExtract, NetInitialize, NetPort, SequenceAttentionLayer


def main(out: str = "attention_weights.png") -> dict:
    # A randomly initialized layer: sequences of input vectors of size 2, query vectors of size 1
    attend = NetInitialize(SequenceAttentionLayer(Input=("Varying", 2), Query=("Varying", 1)),
                           seed=1234)
    print(attend)

    # Apply it to one example: 3 input vectors, 4 queries -> 4 output vectors of size 2
    inputs = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    queries = np.array([[1.0], [0.0], [-1.0], [2.0]])
    output = attend({"Input": inputs, "Query": queries})
    print("one example:\n", output)

    # The layer threads across a batch of sequences of different lengths
    batch = attend({"Input": [inputs, inputs[:1], np.vstack([inputs, -inputs])],
                    "Query": [queries, queries[:2], queries[1:]]})
    print("a batch:", [o.shape for o in batch])

    # The scoring net, extracted and applied on its own, rebuilds the first output row
    scoring = NetExtract(attend, "ScoringNet")
    scores = np.array([scoring({"Input": e, "Query": queries[0]}) for e in inputs])
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    by_hand = weights @ inputs
    print("first row by hand:", by_hand, "  by the layer:", output[0])
    assert np.allclose(by_hand, output[0], atol=1e-5)

    # The attention weights are one call away (Wolfram users rebuild them by hand)
    w = attend({"Input": inputs, "Query": queries}, NetPort("AttentionWeights"))
    print("attention weights (queries x inputs):\n", w)
    save_heatmap(w, out)
    print(f"heat map saved to {out}")
    return {"output": output, "weights": w, "by_hand": by_hand, "net": attend,
            "inputs": inputs, "queries": queries}


def save_heatmap(w: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    im = ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("input position i")
    ax.set_ylabel("query position j")
    ax.set_xticks(range(w.shape[1]))
    ax.set_yticks(range(w.shape[0]))
    for (j, i), v in np.ndenumerate(w):
        ax.text(i, j, f"{v:.2f}", ha="center", va="center",
                color="white" if v < 0.5 else "black", fontsize=8)
    ax.set_title("SequenceAttentionLayer weights $w_{ji}$")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="attention_weights.png")
    main(ap.parse_args().out)
