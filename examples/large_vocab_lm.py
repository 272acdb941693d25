"""A word-level language model with a 32768-token vocabulary, trained with the fused loss.

    python examples/large_vocab_lm.py            # 300 steps on the standard library's sources
    python examples/large_vocab_lm.py --quick    # a few files, 3 steps (smoke test)

The text is the Python standard library's own `.py` files (shipped with every
Python), tokenised by a regex into identifiers, numbers and single symbols;
the vocabulary is the 32768 most frequent tokens (the rest map to <unk>).
A Flax NNX model embeds the previous 8 tokens, mixes them with an MLP and
predicts the next token through an output layer whose `[D, V]` kernel goes
straight into `jaxloss.linear_softmax_cross_entropy`, so the `[N, V]` logits
never exist. Prints the compiled memory of the fused loss against the naive
matmul + cross-entropy at the model's shapes, tokens per second and the
held-out perplexity, and saves the loss curve to examples/out/large_vocab_lm.png.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _util import out_path, table
from flax import nnx
from tqdm import tqdm

import jaxloss

TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|\S")
CONTEXT = 8


def corpus(max_files: int | None):
    root = pathlib.Path(os.__file__).parent
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    text = []
    for path in files[:max_files]:
        try:
            text.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return TOKEN.findall("\n".join(text)), len(files[:max_files])


def encode(tokens, vocab_size):
    counts = collections.Counter(tokens)
    vocab = ["<unk>"] + [t for t, _ in counts.most_common(vocab_size - 1)]
    index = {t: i for i, t in enumerate(vocab)}
    return np.fromiter((index.get(t, 0) for t in tokens), np.int32, len(tokens)), vocab


class LM(nnx.Module):
    def __init__(self, vocab: int, rngs: nnx.Rngs, embed: int = 64, hidden: int = 128):
        self.embed = nnx.Embed(vocab, embed, rngs=rngs)
        self.mix = nnx.Linear(CONTEXT * embed, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, vocab, rngs=rngs)  # kernel [hidden, V]

    def features(self, context):  # [B, CONTEXT] token ids -> [B, hidden]
        e = self.embed(context).reshape(context.shape[0], -1)
        return nnx.gelu(self.mix(e))

    def loss(self, context, target, **kw):
        return jaxloss.linear_softmax_cross_entropy(
            self.features(context),
            self.head.kernel[...],
            target,
            bias=self.head.bias[...],
            reduction="mean",
            **kw,
        )


def windows(ids, starts):
    offsets = np.arange(CONTEXT + 1)
    w = ids[starts[:, None] + offsets]
    return jnp.asarray(w[:, :CONTEXT]), jnp.asarray(w[:, CONTEXT])


def memory_report(model, batch):
    """Compiled temporary memory of value-and-grad: fused vs naive, these shapes."""
    h = jax.ShapeDtypeStruct((batch, model.mix.out_features), jnp.float32)
    w = jax.ShapeDtypeStruct(model.head.kernel.shape, jnp.float32)
    b = jax.ShapeDtypeStruct(model.head.bias.shape, jnp.float32)
    y = jax.ShapeDtypeStruct((batch,), jnp.int32)

    def fused(h, w, b, y):
        return jaxloss.linear_softmax_cross_entropy(h, w, y, bias=b, reduction="mean")

    def naive(h, w, b, y):
        return optax.losses.softmax_cross_entropy_with_integer_labels(h @ w + b, y).mean()

    out = {}
    for name, f in (("fused", fused), ("naive", naive)):
        exe = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2))).lower(h, w, b, y).compile()
        out[name] = exe.memory_analysis().temp_size_in_bytes
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1024, help="tokens per step")
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--quick", action="store_true", help="40 files, 3 steps")
    args = parser.parse_args(argv)
    steps, max_files = (3, 40) if args.quick else (args.steps, None)

    tokens, n_files = corpus(max_files)
    ids, vocab = encode(tokens, args.vocab)
    split = int(0.95 * len(ids))
    train_ids, held_ids = ids[:split], ids[split:]
    coverage = float(np.mean(ids != 0))
    print(
        f"{len(ids):,} tokens from {n_files} files; vocabulary {len(vocab):,} "
        f"({coverage:.1%} of tokens in vocabulary)"
    )

    model = LM(len(vocab), nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, context, target):
        loss, grads = nnx.value_and_grad(lambda m: m.loss(context, target))(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def evaluate(model, context, target):
        return model.loss(context, target)

    rng = np.random.default_rng(0)
    history, start = [], None
    for i in tqdm(range(steps), desc="language model", unit="step"):
        starts = rng.integers(0, len(train_ids) - CONTEXT - 1, args.batch)
        loss = float(step(model, optimizer, *windows(train_ids, starts)))
        history.append(loss)
        if i == 0:
            start = time.perf_counter()  # after the first step's compilation
    per_second = args.batch * (steps - 1) / (time.perf_counter() - start) if steps > 1 else 0.0

    held_starts = np.arange(0, len(held_ids) - CONTEXT - 1, max(1, len(held_ids) // 8192))
    held = float(evaluate(model, *windows(held_ids, held_starts[:8192])))
    memory = memory_report(model, args.batch)
    logits = args.batch * len(vocab) * 4
    print(
        table(
            ["quantity", "value"],
            [
                ["tokens per step", args.batch],
                [
                    "training loss: first step / mean of the last 10",
                    f"{history[0]:.3f} / {np.mean(history[-10:]):.3f}",
                ],
                ["held-out loss (perplexity)", f"{held:.3f} ({np.exp(held):,.0f})"],
                ["training tokens / second", f"{per_second:,.0f}"],
                ["logits N*V*4 per step", f"{logits / 2**20:,.1f} MiB"],
                ["loss temp memory, naive", f"{memory['naive'] / 2**20:,.1f} MiB"],
                ["loss temp memory, fused", f"{memory['fused'] / 2**20:,.1f} MiB"],
            ],
        )
    )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history, lw=0.8)
    ax.axhline(held, color="k", ls="--", label=f"held-out {held:.2f}")
    ax.set(xlabel="step", ylabel="cross-entropy (nats)", title=f"word LM, V={len(vocab)}")
    ax.legend()
    fig.tight_layout()
    path = out_path("large_vocab_lm.png")
    fig.savefig(path, dpi=100)
    print(f"loss curve saved to {path}")
    return history, held, memory


if __name__ == "__main__":
    main()
