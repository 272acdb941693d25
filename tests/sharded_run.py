"""Run every loss on 8 virtual CPU devices; write results for test_sharding.py.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharded_run.py OUT.npz

(test_sharding.py starts this in a fresh interpreter, because the device
count must be set before JAX is imported.) For each mesh (8x1, 2x4, 1x8 over
the axes "data" and "model") and each loss, with its options on, it saves
the value and gradients computed under `jax.jit` on inputs placed by
`NamedSharding` (batch over "data", classes / vocabulary over "model") next
to the same computation on one device, and the shapes of every all-gather in
the compiled program.
"""

from __future__ import annotations

import json
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

N, C, D = 32, 256, 16  # C (the vocabulary) appears in no other dimension
MESHES = [(8, 1), (2, 4), (1, 8)]
rng = np.random.default_rng(0)
logits = jnp.asarray(rng.normal(size=(N, C)) * 2, jnp.float32)
binary_labels = jnp.asarray(rng.uniform(size=(N, C)) > 0.7, jnp.float32)
probs = jax.nn.sigmoid(logits)
dist = jax.nn.softmax(jnp.asarray(rng.normal(size=(N, C)), jnp.float32))
simplex = jax.nn.softmax(logits)
labels = jnp.asarray(rng.integers(0, C, size=N), jnp.int32).at[::5].set(-100)
weights = jnp.asarray(rng.uniform(0.5, 2, size=C), jnp.float32)
inputs = jnp.asarray(rng.normal(size=(N, D)), jnp.float32)
kernel = jnp.asarray(rng.normal(size=(D, C)) * 0.3, jnp.float32)
bias = jnp.asarray(rng.normal(size=C), jnp.float32)

# "none" (a cotangent per example) for the two vocabulary-parallel losses.
REDUCTIONS = {
    "softmax_cross_entropy_with_integer_labels": ("mean", "none"),
    "linear_softmax_cross_entropy": ("mean", "none"),
}
ROW, BOTH, VOCAB = P("data"), P("data", "model"), P(None, "model")
CE = dict(ignore_index=-100, label_smoothing=0.1)
# name -> (function, arrays, their partition specs, options); gradients are
# taken for every array before the labels.
CASES = {
    "binary_cross_entropy": (
        jaxloss.binary_cross_entropy, (probs, binary_labels), (BOTH, BOTH),
        dict(weight=weights, label_smoothing=0.1)),
    "sigmoid_binary_cross_entropy": (
        jaxloss.sigmoid_binary_cross_entropy, (logits, binary_labels), (BOTH, BOTH),
        dict(pos_weight=weights, label_smoothing=0.1)),
    "binary_focal_loss": (
        jaxloss.binary_focal_loss, (probs, binary_labels), (BOTH, BOTH),
        dict(gamma=2.0, alpha=0.25, label_smoothing=0.1)),
    "sigmoid_focal_loss": (
        jaxloss.sigmoid_focal_loss, (logits, binary_labels), (BOTH, BOTH),
        dict(gamma=2.0, alpha=0.25, label_smoothing=0.1)),
    "softmax_cross_entropy": (
        jaxloss.softmax_cross_entropy, (logits, dist), (BOTH, BOTH),
        dict(class_weight=weights, label_smoothing=0.1, z_loss=1e-3)),
    "softmax_cross_entropy_with_integer_labels": (
        jaxloss.softmax_cross_entropy_with_integer_labels, (logits, labels), (BOTH, ROW),
        dict(CE, class_weight=weights, z_loss=1e-3)),
    "categorical_cross_entropy": (
        jaxloss.categorical_cross_entropy, (simplex, dist), (BOTH, BOTH),
        dict(class_weight=weights, label_smoothing=0.1)),
    "softmax_focal_loss": (
        jaxloss.softmax_focal_loss, (logits, dist), (BOTH, BOTH),
        dict(gamma=2.0, alpha=weights, label_smoothing=0.1)),
    "softmax_focal_loss_with_integer_labels": (
        jaxloss.softmax_focal_loss_with_integer_labels, (logits, labels), (BOTH, ROW),
        dict(gamma=2.0, alpha=weights, ignore_index=-100)),
    "linear_softmax_cross_entropy": (
        jaxloss.linear_softmax_cross_entropy, (inputs, kernel, bias, labels),
        (P("data", None), VOCAB, P("model"), ROW),
        dict(CE, z_loss=1e-3, logit_soft_cap=5.0, chunk_size=8)),
}  # fmt: skip


def program(name, reduction):
    fn, arrays, _, opts = CASES[name]
    n_diff = len(arrays) - 1  # gradients for every array but the labels (last)

    def call(*args):
        if name == "linear_softmax_cross_entropy":
            x, k, b, y = args
            return fn(x, k, y, bias=b, reduction=reduction, **opts)
        return fn(*args, reduction=reduction, **opts)

    def value_and_grads(*args):
        out = call(*args)
        cot = (
            jnp.ones_like(out)
            if reduction != "none"
            else jnp.linspace(0.5, 1.5, out.size).reshape(out.shape)
        )
        grads = jax.grad(
            lambda *d: jnp.sum(call(*d, *args[n_diff:]) * cot), argnums=tuple(range(n_diff))
        )(*args[:n_diff])
        return out, grads

    return value_and_grads, arrays


GATHER = re.compile(r"= (\w+)\[([\d,]*)\][^=]*? all-gather\(")


def gathered_shapes(hlo: str) -> list[list[int]]:
    """The result shape of every all-gather in a compiled program."""
    return [[int(d) for d in dims.split(",") if d] for _, dims in GATHER.findall(hlo)]


def main(out_path):
    assert jax.device_count() == 8, "set XLA_FLAGS before importing JAX"
    results, report = {}, {}
    for name in CASES:
        for reduction in REDUCTIONS.get(name, ("mean",)):
            fn, arrays = program(name, reduction)
            plain = jax.jit(fn)(*arrays)
            for shape in MESHES:
                mesh = Mesh(np.array(jax.devices()).reshape(shape), ("data", "model"))
                specs = CASES[name][2]
                placed = [
                    jax.device_put(a, NamedSharding(mesh, s))
                    for a, s in zip(arrays, specs, strict=True)
                ]
                compiled = jax.jit(fn).lower(*placed).compile()
                sharded = compiled(*placed)
                key = f"{name}/{reduction}/{shape[0]}x{shape[1]}"
                for i, (a, b) in enumerate(
                    zip(jax.tree.leaves(sharded), jax.tree.leaves(plain), strict=True)
                ):
                    results[f"{key}/{i}/sharded"] = np.asarray(a)
                    results[f"{key}/{i}/plain"] = np.asarray(b)
                report[key] = {"gathers": gathered_shapes(compiled.as_text())}
    # A control that does gather the logits, so the HLO check can be seen to fail.
    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
    placed = jax.device_put(logits, NamedSharding(mesh, BOTH))
    gather = jax.jit(lambda x: 2 * x, out_shardings=NamedSharding(mesh, P()))
    report["control/2x4"] = {"gathers": gathered_shapes(gather.lower(placed).compile().as_text())}
    np.savez(out_path, report=np.array(json.dumps(report)), **results)


if __name__ == "__main__":
    main(sys.argv[1])
