"""Train a small MLP on scikit-learn's bundled digits with jaxloss, Flax NNX and optax.

    python examples/train_digits.py                 # cross-entropy, 30 epochs
    python examples/train_digits.py --loss smooth   # label smoothing 0.1
    python examples/train_digits.py --loss focal    # softmax focal loss, gamma 2
    python examples/train_digits.py --quick         # 2 epochs (the test suite's smoke test)

The 8x8 digit images ship with scikit-learn, so nothing is downloaded. Prints
the training loss and test accuracy per epoch and saves the curves to
examples/out/train_digits_<loss>.png.
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
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import jaxloss

LOSSES = {
    "ce": lambda logits, y: jaxloss.softmax_cross_entropy_with_integer_labels(
        logits, y, reduction="mean"
    ),
    "smooth": lambda logits, y: jaxloss.softmax_cross_entropy_with_integer_labels(
        logits, y, label_smoothing=0.1, reduction="mean"
    ),
    "focal": lambda logits, y: jaxloss.softmax_focal_loss_with_integer_labels(
        logits, y, gamma=2.0, reduction="mean"
    ),
}


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, hidden: int = 128, classes: int = 10):
        self.l1 = nnx.Linear(64, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.l1(x))
        x = nnx.relu(self.l2(x))
        return self.out(x)


def load(seed: int = 0):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return train_test_split(
        x, digits.target.astype(np.int32), test_size=0.25, stratify=digits.target, random_state=seed
    )


def train(loss_name: str, epochs: int, batch: int = 64, lr: float = 2e-3, seed: int = 0):
    x_tr, x_te, y_tr, y_te = load(seed)
    model = MLP(nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    loss_fn = LOSSES[loss_name]

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def accuracy(model, x, y):
        return jnp.mean(jnp.argmax(model(x), -1) == y)

    rng = np.random.default_rng(seed)
    history = []
    bar = tqdm(range(1, epochs + 1), desc=f"digits ({loss_name})", unit="epoch")
    for epoch in bar:
        order = rng.permutation(len(x_tr))
        losses = [
            step(model, optimizer, x_tr[idx], y_tr[idx])
            for idx in np.array_split(order, len(order) // batch)
        ]
        train_loss = float(np.mean(jax.device_get(losses)))
        acc = float(accuracy(model, x_te, y_te))
        history.append((epoch, train_loss, acc))
        bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{acc:.3f}")
    return history


def plot(history, loss_name):
    epochs, losses, accs = zip(*history, strict=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, losses)
    a.set(xlabel="epoch", ylabel="training loss", title=f"digits, loss={loss_name}")
    b.plot(epochs, accs)
    b.set(xlabel="epoch", ylabel="test accuracy", ylim=(0.8, 1.0))
    fig.tight_layout()
    path = out_path(f"train_digits_{loss_name}.png")
    fig.savefig(path, dpi=100)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=sorted(LOSSES), default="ce")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 epochs, for smoke tests")
    args = parser.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    start = time.perf_counter()
    history = train(args.loss, epochs)
    seconds = time.perf_counter() - start
    shown = [h for h in history if h[0] % 5 == 0 or h[0] in (1, epochs)]
    print(table(["epoch", "train loss", "test accuracy"], [list(h) for h in shown]))
    final = history[-1][2]
    print(f"final test accuracy {final:.3f} ({args.loss}, {epochs} epochs, {seconds:.0f} s)")
    print(f"curves saved to {plot(history, args.loss)}")
    return history


if __name__ == "__main__":
    main()
