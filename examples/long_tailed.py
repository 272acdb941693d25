"""Long-tailed digits: plain CE vs class-balanced weights vs focal vs logit adjustment, and ASL.

    python examples/long_tailed.py            # 5 seeds
    python examples/long_tailed.py --quick    # 1 seed, fewer steps (smoke test)

scikit-learn's bundled digits (8x8 images, 10 classes). The training set is
exponentially imbalanced: class k keeps about 120 * 50 ** (-k / 9) images
(120 of digit 0 down to 2 of digit 9, an imbalance ratio of 50), as in the
long-tailed CIFAR benchmarks; the test set is balanced (the same number of
held-out images of every class). An MLP (Flax NNX) is trained full-batch
with each multi-class loss and scored by balanced accuracy (the mean of the
per-class recalls) and by the recall of the three rarest classes:

- plain cross-entropy;
- class-balanced cross-entropy (Cui et al. 2019): `class_weight` from
  `jaxloss.class_weights_from_counts(counts, beta=0.99)`;
- focal loss (gamma = 2);
- logit-adjusted cross-entropy (Menon et al. 2021): `log_prior` = the log of
  the training frequencies, tau = 1;
- post-hoc logit adjustment: the plain model, predicting
  `argmax(logits - log_prior)`.

And a multi-label task on the same images (even, >= 5, prime, closed loop,
is seven), trained with `sigmoid_binary_cross_entropy` and with
`asymmetric_loss` (timm's defaults), scored by mean average precision.
Saves per-class recalls to examples/out/long_tailed.png.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _util import out_path, table
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score
from tqdm import tqdm

import jaxloss

RATIO, HEAD, TEST_PER_CLASS = 50, 120, 40
ATTRIBUTES = {  # multi-label targets of a digit
    "even": lambda d: d % 2 == 0,
    ">= 5": lambda d: d >= 5,
    "prime": lambda d: np.isin(d, [2, 3, 5, 7]),
    "closed loop": lambda d: np.isin(d, [0, 4, 6, 8, 9]),
    "is seven": lambda d: d == 7,
}


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, outputs: int, hidden: int = 128):
        self.l1 = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, outputs, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.l1(x)))


def split(seed: int):
    """A long-tailed training set and a balanced test set."""
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for k in range(10):
        idx = rng.permutation(np.flatnonzero(y == k))
        keep = max(1, round(HEAD * RATIO ** (-k / 9)))
        test.append(idx[:TEST_PER_CLASS])
        train.append(idx[TEST_PER_CLASS : TEST_PER_CLASS + keep])
    tr, te = np.concatenate(train), np.concatenate(test)
    return x[tr], y[tr], x[te], y[te]


def multiclass_losses(counts):
    log_prior = jnp.log(counts / counts.sum())
    weights = jaxloss.class_weights_from_counts(counts, beta=0.99)
    ce = jaxloss.softmax_cross_entropy_with_integer_labels
    return {
        "plain CE": lambda z, y: ce(z, y, reduction="mean"),
        "class-balanced CE": lambda z, y: ce(z, y, class_weight=weights, reduction="mean"),
        "focal (gamma=2)": lambda z, y: jaxloss.softmax_focal_loss_with_integer_labels(
            z, y, gamma=2.0, reduction="mean"
        ),
        "logit-adjusted CE": lambda z, y: ce(z, y, log_prior=log_prior, reduction="mean"),
    }


MULTILABEL_LOSSES = {
    "BCE": lambda z, y: jaxloss.sigmoid_binary_cross_entropy(z, y, reduction="mean"),
    "ASL": lambda z, y: jaxloss.asymmetric_loss(z, y, reduction="mean"),
}


def fit(loss_fn, x, y, outputs, steps, seed, lr=3e-3):
    """Full-batch Adam; the trained model's logits function."""
    model = MLP(nnx.Rngs(seed), outputs)
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    for _ in range(steps):
        step(model, optimizer, x, y)
    return nnx.jit(lambda model, x: model(x)), model


def recalls(pred, y):
    return np.array([np.mean(pred[y == k] == k) for k in range(10)])


def run_seed(seed, steps):
    x_tr, y_tr, x_te, y_te = split(seed)
    counts = np.bincount(y_tr, minlength=10).astype(np.float32)
    log_prior = np.log(counts / counts.sum())
    out = {}
    for name, loss_fn in multiclass_losses(jnp.asarray(counts)).items():
        apply, model = fit(loss_fn, x_tr, y_tr, 10, steps, seed)
        logits = np.asarray(apply(model, x_te))
        out[name] = recalls(logits.argmax(-1), y_te)
        if name == "plain CE":
            out["plain CE, post-hoc adjusted"] = recalls((logits - log_prior).argmax(-1), y_te)
    targets = lambda y: np.stack([f(y) for f in ATTRIBUTES.values()], -1).astype(np.float32)  # noqa: E731
    for name, loss_fn in MULTILABEL_LOSSES.items():
        apply, model = fit(loss_fn, x_tr, targets(y_tr), len(ATTRIBUTES), steps, seed)
        scores = np.asarray(apply(model, x_te))
        pairs = zip(targets(y_te).T, scores.T, strict=True)
        out[name] = np.array([average_precision_score(t, s) for t, s in pairs])
    return counts, out


def plot(counts, per_class, path):
    fig, ax = plt.subplots(figsize=(9, 4))
    names = [n for n in per_class if n not in MULTILABEL_LOSSES]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        offset = (i - len(names) / 2 + 0.5) * width
        ax.bar(np.arange(10) + offset, per_class[name], width, label=name)
    ax.set_xticks(range(10), [f"{k}\n({int(c)})" for k, c in enumerate(counts)])
    ax.set(xlabel="digit (training images)", ylabel="test recall", ylim=(0, 1.05))
    ax.set_title("Long-tailed digits: per-class recall on a balanced test set (mean over seeds)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="1 seed, 60 steps (smoke test)")
    args = parser.parse_args(argv)
    seeds, steps = (1, 60) if args.quick else (args.seeds, args.steps)
    start = time.perf_counter()
    results = [run_seed(seed, steps) for seed in tqdm(range(seeds), desc="seeds", unit="seed")]
    counts = results[0][0]
    names = list(results[0][1])
    rows = []
    for name in names:
        runs = np.stack([r[1][name] for r in results])  # [seeds, classes or attributes]
        score = runs.mean(-1)  # balanced accuracy, or mean average precision
        if name in MULTILABEL_LOSSES:
            rows.append([name, "mAP", f"{score.mean():.3f} ± {score.std():.3f}", "", ""])
        else:
            tail = runs[:, -3:].mean(-1)
            rows.append(
                [
                    name, "balanced accuracy", f"{score.mean():.3f} ± {score.std():.3f}",
                    f"{tail.mean():.3f} ± {tail.std():.3f}", f"{runs[:, 0].mean():.3f}",
                ]
            )  # fmt: skip
    print(f"training images per class: {counts.astype(int).tolist()} (test: {TEST_PER_CLASS} each)")
    header = ["loss", "metric", f"score (mean ± sd, {seeds} seeds)", "recall, 3 rarest"]
    print(table([*header, "recall, 0"], rows))
    per_class = {n: np.stack([r[1][n] for r in results]).mean(0) for n in names}
    path = out_path("long_tailed.png")
    plot(counts, per_class, path)
    seconds = time.perf_counter() - start
    print(f"{seeds} seeds x {steps} steps in {seconds:.0f} s; plot saved to {path}")
    return rows


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")
    main()
