"""Rare positives: plain BCE vs pos_weight vs sigmoid focal loss, on breast-cancer data.

    python examples/imbalanced.py            # 10 seeds
    python examples/imbalanced.py --quick    # 1 seed, fewer steps (smoke test)

scikit-learn's bundled Wisconsin breast-cancer data (569 tumours, 30
features); "malignant" is the positive class, subsampled in both the training
and the test split so that positives are about 5% of each. A logistic
regression (one Flax NNX `Linear`) is trained full-batch with three jaxloss
losses, and each is scored on held-out data: precision and recall at the 0.5
threshold, and average precision (area under the PR curve, threshold-free).
Several seeds, because a 5% test split holds only a handful of positives.
Saves the PR curves of the first seed to examples/out/imbalanced_pr.png.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _util import out_path, table
from flax import nnx
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import average_precision_score, precision_recall_curve
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

import jaxloss

POSITIVE_SHARE = 0.05


def losses(pos_weight):
    """The three contenders, as functions of (logits, labels)."""
    return {
        "plain BCE": lambda z, y: jaxloss.sigmoid_binary_cross_entropy(z, y, reduction="mean"),
        f"pos_weight={pos_weight:.0f}": lambda z, y: jaxloss.sigmoid_binary_cross_entropy(
            z, y, pos_weight=pos_weight, reduction="mean"
        ),
        "focal (alpha=0.75, gamma=2)": lambda z, y: jaxloss.sigmoid_focal_loss(
            z, y, alpha=0.75, gamma=2.0, reduction="mean"
        ),
    }


def subsample(x, y, rng):
    """Keep every negative and enough positives to make them POSITIVE_SHARE."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n_pos = max(2, round(POSITIVE_SHARE * len(neg) / (1 - POSITIVE_SHARE)))
    keep = np.concatenate([neg, rng.choice(pos, n_pos, replace=False)])
    return x[keep], y[keep]


def split(seed):
    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), (data.target == 0).astype(np.float32)  # malignant
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    x_tr, y_tr = subsample(x_tr, y_tr, rng)
    x_te, y_te = subsample(x_te, y_te, rng)
    scaler = StandardScaler().fit(x_tr)
    return scaler.transform(x_tr), y_tr, scaler.transform(x_te), y_te


def fit(loss_fn, x, y, steps, seed):
    model = nnx.Linear(x.shape[1], 1, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x)[:, 0], y))(model)
        optimizer.update(model, grads)
        return loss

    for _ in range(steps):
        step(model, optimizer)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="1 seed, 20 steps")
    args = parser.parse_args(argv)
    seeds, steps = (1, 20) if args.quick else (args.seeds, args.steps)

    results: dict[str, list] = {}
    curves = {}
    with tqdm(total=3 * seeds, desc="imbalanced", unit="model") as bar:
        for seed in range(seeds):
            x_tr, y_tr, x_te, y_te = split(seed)
            pos_weight = float((y_tr == 0).sum() / (y_tr == 1).sum())
            for name, loss_fn in losses(pos_weight).items():
                name = name.split("=")[0] if name.startswith("pos_weight") else name
                model = fit(loss_fn, x_tr, y_tr, steps, seed)
                score = np.asarray(model(jnp.asarray(x_te, jnp.float32))[:, 0])
                hit = score > 0
                tp = float((hit & (y_te == 1)).sum())
                precision = tp / max(hit.sum(), 1)
                recall = tp / (y_te == 1).sum()
                ap = average_precision_score(y_te, score)
                results.setdefault(name, []).append((precision, recall, ap))
                if seed == 0:
                    curves[name] = precision_recall_curve(y_te, score)[:2]
                bar.update()

    rows = []
    for name, r in results.items():
        m, s = np.mean(r, 0), np.std(r, 0)
        rows.append([name] + [f"{m[i]:.3f} ± {s[i]:.3f}" for i in range(3)])
    print(table(["loss", "precision @0.5", "recall @0.5", "average precision"], rows))
    print(f"mean ± sd over {seeds} seed(s); positives ~{POSITIVE_SHARE:.0%} of train and test")

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (p, r) in curves.items():
        ax.step(r, p, where="post", label=name)
    ax.set(xlabel="recall", ylabel="precision", title="breast cancer, 5% positives (seed 0)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    path = out_path("imbalanced_pr.png")
    fig.savefig(path, dpi=100)
    print(f"PR curves saved to {path}")
    return results


if __name__ == "__main__":
    main()
