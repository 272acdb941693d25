"""Contrastive training of two encoders with SigLIP's and CLIP's losses, sharded.

    python examples/contrastive.py            # 1000 steps per loss
    python examples/contrastive.py --quick    # 30 steps (the test suite's smoke test)

An image-text setup in miniature, on data that ships with scikit-learn: each
8x8 digit image is paired with a "caption" in another modality, its row and
column ink profiles (16 numbers) measured on a differently noised copy
(fresh noise in every batch). Two
small Flax NNX encoders map images and captions to unit vectors; the task
is to find, for each held-out image, its own caption among all held-out
captions (retrieval, top-1 and top-5).

JAX presents the CPU as 8 devices. Each batch is split over a ("data",)
mesh; the encoders run under `nnx.jit` (GSPMD) and the loss inside
`jax.shard_map` with `axis_name="data"`: each device holds its rows of both
embeddings, and the blocks of caption embeddings travel the ring of devices,
so no device ever holds the global batch of the other side or more than its
own rows of the similarity matrix. The script checks that the compiled
train step has no all-gather of an embedding batch and that the sharded loss
equals the one-device loss.
"""

from __future__ import annotations

import argparse
import os
import re

import jax

jax.config.update("jax_num_cpu_devices", 8)  # before any computation

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _util import out_path, table  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
EMBED = 32


def views(clean, rng):
    """(images [n, 64], captions [n, 16]) of clean [n, 8, 8] digits: each
    caption the row and column ink of a noised copy, each image noised
    apart. Fresh noise every call: training never sees the same pair twice."""
    noisy = clean + 0.25 * rng.normal(size=clean.shape)
    captions = np.concatenate([noisy.sum(2), noisy.sum(1)], 1) / 4.0
    images = clean + 0.1 * rng.normal(size=clean.shape)
    return images.reshape(len(images), -1).astype(np.float32), captions.astype(np.float32)


class Encoder(nnx.Module):
    def __init__(self, din: int, rngs: nnx.Rngs, hidden: int = 128):
        self.l1 = nnx.Linear(din, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, EMBED, rngs=rngs)

    def __call__(self, v):
        e = self.l2(nnx.gelu(self.l1(v)))
        return e / jnp.linalg.norm(e, axis=-1, keepdims=True)


class TwoTower(nnx.Module):
    """Both encoders and the learned log-temperature and bias (SigLIP)."""

    def __init__(self, rngs: nnx.Rngs, log_t: float, bias: float):
        self.image = Encoder(64, rngs)
        self.caption = Encoder(16, rngs)
        self.log_t = nnx.Param(jnp.asarray(log_t))
        self.bias = nnx.Param(jnp.asarray(bias))


def ring_loss(kind: str, mesh):
    """The loss of a batch split over "data": jaxloss inside shard_map."""

    def local(ex, ey, t, b):
        if kind == "sigmoid":
            return jaxloss.sigmoid_pairwise_loss(
                ex, ey, temperature=t, bias=b, reduction="mean", axis_name="data"
            )
        return jaxloss.softmax_pairwise_loss(ex, ey, temperature=t, reduction="mean",
                                             axis_name="data")  # fmt: skip

    row = P("data")
    return jax.shard_map(local, mesh=mesh, in_specs=(row, row, P(), P()), out_specs=P())


def loss_of(model, loss, images, captions):
    ex, ey = model.image(images), model.caption(captions)
    return loss(ex, ey, jnp.exp(model.log_t[...]), model.bias[...])


def retrieval(model, images, captions):
    """Top-1 and top-5 accuracy of finding each image's own caption."""
    sim = np.asarray(model.image(images) @ model.caption(captions).T)
    rank = (sim > np.diag(sim)[:, None]).sum(1)  # captions scored above the right one
    return float(np.mean(rank < 1)), float(np.mean(rank < 5))


def embedding_gathers(hlo: str, batch: int) -> list[str]:
    """All-gathers in a compiled program whose result is an embedding batch."""
    found = re.findall(r"= \w+\[([\d,]*)\][^=]*? all-gather\(", hlo)
    return [dims for dims in found if dims.split(",")[:1] == [str(batch)]]


NAMES = {"sigmoid": "SigLIP (sigmoid_pairwise_loss)", "softmax": "CLIP (softmax_pairwise_loss)"}
INITS = {"sigmoid": (np.log(10.0), -10.0), "softmax": (np.log(1 / 0.07), 0.0)}  # the papers'


def train(kind, steps, batch_size, mesh, train_digits, test_pairs):
    """Train both encoders with one loss; returns the retrieval curve, the
    trained model and the checks (embedding all-gathers, sharded and
    one-device first loss)."""
    model = TwoTower(nnx.Rngs(0), *INITS[kind])
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    loss = ring_loss(kind, mesh)
    split = NamedSharding(mesh, P("data"))

    @nnx.jit
    def step(model, optimizer, xb, yb):
        value, grads = nnx.value_and_grad(lambda m: loss_of(m, loss, xb, yb))(model)
        optimizer.update(model, grads)
        return value

    rng = np.random.default_rng(1)

    def batch():
        idx = rng.choice(len(train_digits), batch_size, replace=False)
        return tuple(jax.device_put(a, split) for a in views(train_digits[idx], rng))

    xb, yb = batch()
    hlo = step.lower(model, optimizer, xb, yb).compile().as_text()
    sharded = float(nnx.jit(lambda m, x, y: loss_of(m, loss, x, y))(model, xb, yb))
    ex, ey = nnx.jit(lambda m, x, y: (m.image(x), m.caption(y)))(model, xb, yb)
    ex, ey, log_t, b = jax.device_put((ex, ey, model.log_t[...], model.bias[...]), jax.devices()[0])
    if kind == "sigmoid":
        single = jaxloss.sigmoid_pairwise_loss(
            ex, ey, temperature=jnp.exp(log_t), bias=b, reduction="mean"
        )
    else:
        single = jaxloss.softmax_pairwise_loss(ex, ey, temperature=jnp.exp(log_t), reduction="mean")
    checks = (len(embedding_gathers(hlo, batch_size)), sharded, float(single))

    curve, losses = [], []
    for i in tqdm(range(steps), desc=NAMES[kind], unit="step"):
        # One step in flight at a time: XLA:CPU runs the 8 virtual devices on
        # a few threads, and overlapping collectives of queued steps can stall.
        losses.append(float(step(model, optimizer, *batch())))
        if (i + 1) % max(1, steps // 10) == 0:
            curve.append((i + 1, retrieval(model, *test_pairs)[0]))
    return curve, model, checks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="30 steps per loss")
    args = parser.parse_args(argv)
    steps = 30 if args.quick else args.steps
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))
    digits = load_digits().images / 16.0  # [1797, 8, 8]
    test = np.arange(len(digits)) % 5 == 0  # 360 held-out digits, one fixed view each
    test_pairs = tuple(jnp.asarray(a) for a in views(digits[test], np.random.default_rng(0)))
    n_test, devices = int(test.sum()), jax.device_count()
    print(f"{int((~test).sum())} training digits, {n_test} held out, {devices} devices")

    untrained = TwoTower(nnx.Rngs(0), *INITS["sigmoid"])
    results = [["untrained encoders", *retrieval(untrained, *test_pairs), "-"]]
    curves, checks = {}, {}
    for kind in ("sigmoid", "softmax"):
        curves[kind], model, checks[kind] = train(
            kind, steps, args.batch, mesh, digits[~test], test_pairs
        )
        t = float(jnp.exp(model.log_t[...]))
        results.append([NAMES[kind], *retrieval(model, *test_pairs), f"t = {t:.1f}"])

    print(table(["model", "top-1", "top-5", "learned"], results))
    rows = [["all-gathers of an embedding batch", checks["sigmoid"][0], checks["softmax"][0]]]
    for i, what in ((1, "sharded"), (2, "one device")):
        rows.append([f"first loss, {what}", *(f"{checks[k][i]:.6f}" for k in checks)])
    print(table(["check", "sigmoid", "softmax"], rows))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for kind in ("sigmoid", "softmax"):
        s, acc = zip(*curves[kind], strict=True)
        ax.plot(s, acc, marker="o", label=NAMES[kind])
    ax.axhline(results[0][1], color="gray", linestyle=":", label="untrained")
    ax.set(xlabel="step", ylabel="held-out top-1 retrieval", ylim=(0, 1))
    ax.set_title(f"{n_test} held-out image-caption pairs, {devices}-device ring")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path("contrastive.png"), dpi=120)
    for gathers, sharded, single in checks.values():
        assert gathers == 0
        assert abs(sharded - single) <= 1e-5 * abs(single), (sharded, single)
    return results


if __name__ == "__main__":
    main()
