"""Multi-label classification of the digits images: sigmoid BCE with and without pos_weight.

    python examples/multilabel.py            # 40 epochs, 3 seeds
    python examples/multilabel.py --quick    # 2 epochs, 1 seed (smoke test)

Each 8x8 digit image gets five binary labels derived from its digit: even,
>= 5, prime, has a closed loop (0, 6, 8, 9), and is a seven (10% positives).
A small Flax NNX network with five sigmoid outputs is trained with
`jaxloss.sigmoid_binary_cross_entropy`, once plain and once with PyTorch's
`pos_weight = negatives / positives` per label, which trades precision for
recall on the rare labels. Prints per-label precision / recall / F1 (means
over seeds) and saves a bar chart to examples/out/multilabel.png.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _util import out_path, table
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import jaxloss

NAMES = ["even", ">= 5", "prime", "closed loop", "is seven"]


def derive_labels(digit: np.ndarray) -> np.ndarray:
    columns = [
        digit % 2 == 0,
        digit >= 5,
        np.isin(digit, [2, 3, 5, 7]),
        np.isin(digit, [0, 6, 8, 9]),
        digit == 7,
    ]
    return np.stack(columns, -1).astype(np.float32)


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, hidden: int = 32):
        self.l1 = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, len(NAMES), rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.l1(x)))


def fit(x, y, pos_weight, epochs, seed, batch=64):
    model = Net(nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, xb, yb):
        def loss_fn(m):
            return jaxloss.sigmoid_binary_cross_entropy(
                m(xb), yb, pos_weight=pos_weight, reduction="mean"
            )

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for idx in np.array_split(order, len(order) // batch):
            step(model, optimizer, x[idx], y[idx])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 seed")
    args = parser.parse_args(argv)
    epochs, seeds = (2, 1) if args.quick else (args.epochs, args.seeds)

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = derive_labels(digits.target)
    scores = {"plain BCE": [], "pos_weight": []}
    with tqdm(total=2 * seeds, desc="multi-label", unit="model") as bar:
        for seed in range(seeds):
            x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed)
            positives = y_tr.sum(0)
            pos_weight = jnp.asarray((len(y_tr) - positives) / positives)
            for name, pw in (("plain BCE", None), ("pos_weight", pos_weight)):
                model = fit(x_tr, y_tr, pw, epochs, seed)
                predicted = np.asarray(model(x_te)) > 0  # sigmoid > 0.5
                p, r, f, _ = precision_recall_fscore_support(y_te, predicted, zero_division=0)
                scores[name].append(np.stack([p, r, f]))
                bar.update()

    means = {k: np.mean(v, 0) for k, v in scores.items()}  # [3 metrics, 5 labels]
    rows = []
    for j, label in enumerate(NAMES):
        rows.append(
            [label, f"{y[:, j].mean():.0%}"]
            + [float(means[k][m, j]) for k in means for m in range(3)]
        )
    header = ["label", "positives"] + [f"{k} {m}" for k in means for m in ("P", "R", "F1")]
    print(table(header, rows))
    print(f"means over {seeds} seed(s), {epochs} epochs; test split 30%")

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    for i, (k, v) in enumerate(means.items()):
        ax.bar(np.arange(len(NAMES)) + (i - 0.5) * width, v[1], width, label=f"{k}: recall")
        precision = "precision" if i == 0 else None  # one legend entry for the dashes
        ax.scatter(
            np.arange(len(NAMES)) + (i - 0.5) * width, v[0], color="k", marker="_", s=200,
            label=precision,
        )  # fmt: skip
    ax.set_xticks(np.arange(len(NAMES)), NAMES)
    ax.set(ylabel="recall (bars), precision (dashes)", ylim=(0, 1.05))
    # Below the axes, so that no bar (the rare "is seven" ones included) is hidden.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    fig.tight_layout()
    path = out_path("multilabel.png")
    fig.savefig(path, dpi=100)
    print(f"plot saved to {path}")
    return means


if __name__ == "__main__":
    main()
