"""Data + vocabulary parallel training with jaxloss on an 8-device CPU mesh.

    python examples/sharded_training.py            # 200 steps on a 2x4 mesh
    python examples/sharded_training.py --quick    # 3 steps (the test suite's smoke test)
    python examples/sharded_training.py --mesh 1x8

JAX is told to present the CPU as 8 devices (on GPUs / TPUs use the real
ones). The Flax NNX language model of `large_vocab_lm.py` is created on a
("data", "model") mesh: its output kernel `[D, V]` is split over "model" (the
vocabulary), its other weights are replicated, and each batch is split over
"data". `jaxloss.linear_softmax_cross_entropy` then runs under plain
`jax.jit` (GSPMD): every device holds a slice of the vocabulary and of the
batch, and only per-token statistics (the logsumexp pieces) cross devices.
The script checks that the compiled train step never all-gathers an array
with the vocabulary axis, and that the sharded loss equals the one-device
loss.
"""

from __future__ import annotations

import argparse
import os
import re
import time

import jax

jax.config.update("jax_num_cpu_devices", 8)  # before any computation

import numpy as np  # noqa: E402
import optax  # noqa: E402
from _util import table  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from large_vocab_lm import CONTEXT, corpus, encode  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class ShardedLM(nnx.Module):
    """Embeddings -> MLP -> a vocabulary-parallel output layer."""

    def __init__(self, vocab: int, rngs: nnx.Rngs, embed: int = 32, hidden: int = 64):
        self.embed = nnx.Embed(vocab, embed, rngs=rngs)
        self.mix = nnx.Linear(CONTEXT * embed, hidden, rngs=rngs)
        init = nnx.initializers.lecun_normal()
        self.head = nnx.Linear(
            hidden,
            vocab,
            kernel_init=nnx.with_partitioning(init, (None, "model")),  # [D, V/model]
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("model",)),
            rngs=rngs,
        )

    def loss(self, context, target):
        h = nnx.gelu(self.mix(self.embed(context).reshape(context.shape[0], -1)))
        return jaxloss.linear_softmax_cross_entropy(
            h, self.head.kernel[...], target, bias=self.head.bias[...], reduction="mean"
        )


def vocab_gathers(hlo: str, vocab: int) -> list[str]:
    """All-gathers in a compiled program whose result has the vocabulary axis."""
    found = re.findall(r"= \w+\[([\d,]*)\][^=]*? all-gather\(", hlo)
    return [dims for dims in found if str(vocab) in dims.split(",")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", default="2x4", help="data x model, 8 devices")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--quick", action="store_true", help="3 steps on 20 files")
    args = parser.parse_args(argv)
    steps, files = (3, 20) if args.quick else (args.steps, 200)

    shape = tuple(int(s) for s in args.mesh.split("x"))
    # Auto axes: jax.jit (GSPMD) propagates the shardings through the program.
    mesh = jax.make_mesh(shape, ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    ids, vocab = encode(corpus(files)[0], args.vocab)
    ids = ids[: len(ids) // 2]  # the first half is plenty here
    v = len(vocab) - len(vocab) % shape[1]  # V divisible by the model axis
    ids = np.where(ids < v, ids, 0)
    devices = jax.device_count()
    print(f"{len(ids):,} tokens, V={v}, mesh {shape} (data x model) on {devices} devices")

    with jax.set_mesh(mesh):  # variables with sharding annotations are created split
        model = ShardedLM(v, nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    batch_sharding = NamedSharding(mesh, P("data"))

    @nnx.jit
    def step(model, optimizer, context, target):
        loss, grads = nnx.value_and_grad(lambda m: m.loss(context, target))(model)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(0)

    def batch():
        starts = rng.integers(0, len(ids) - CONTEXT - 1, args.batch)
        w = ids[starts[:, None] + np.arange(CONTEXT + 1)]
        return [jax.device_put(a, batch_sharding) for a in (w[:, :CONTEXT], w[:, CONTEXT])]

    context, target = batch()
    hlo = step.lower(model, optimizer, context, target).compile().as_text()
    gathers = vocab_gathers(hlo, v)
    kernel_spec = model.head.kernel[...].sharding.spec
    # The sharded loss against the same model and batch on one device.
    one = jax.devices()[0]
    sharded_loss = float(nnx.jit(lambda m, c, t: m.loss(c, t))(model, context, target))
    local = jax.device_put(nnx.state(model), one)
    single = nnx.merge(nnx.graphdef(model), local)
    single_loss = float(single.loss(jax.device_put(context, one), jax.device_put(target, one)))

    history, start = [], None
    for i in tqdm(range(steps), desc=f"sharded LM {args.mesh}", unit="step"):
        history.append(float(step(model, optimizer, *batch())))
        if i == 0:
            start = time.perf_counter()
    rate = args.batch * (steps - 1) / (time.perf_counter() - start) if steps > 1 else 0.0
    print(
        table(
            ["quantity", "value"],
            [
                ["mesh (data x model)", args.mesh],
                ["output kernel sharding", str(kernel_spec)],
                ["all-gathers with the vocabulary axis", len(gathers)],
                ["loss sharded / one device", f"{sharded_loss:.6f} / {single_loss:.6f}"],
                ["first / last training loss", f"{history[0]:.3f} / {np.mean(history[-10:]):.3f}"],
                ["tokens / second", f"{rate:,.0f}"],
            ],
        )
    )
    assert not gathers, gathers
    assert abs(sharded_loss - single_loss) <= 1e-5 * abs(single_loss), (sharded_loss, single_loss)
    return history


if __name__ == "__main__":
    main()
