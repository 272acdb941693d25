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

import inspect
import json
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
from tests.losses import REGISTRY  # noqa: E402

N, C, D = 32, 256, 16  # C (the vocabulary) appears in no other dimension
MESHES = [(8, 1), (2, 4), (1, 8)]
rng = np.random.default_rng(0)
inputs = jnp.asarray(rng.normal(size=(N, D)), jnp.float32)
kernel = jnp.asarray(rng.normal(size=(D, C)) * 0.3, jnp.float32)
bias = jnp.asarray(rng.normal(size=C), jnp.float32)
IGNORE = -100

# "none" (a cotangent per example) for the two vocabulary-parallel losses.
REDUCTIONS = {
    "softmax_cross_entropy_with_integer_labels": ("mean", "none"),
    "linear_softmax_cross_entropy": ("mean", "none"),
}
ROW, BOTH, VOCAB = P("data"), P("data", "model"), P(None, "model")


def registry_case(name):
    """A registry loss at [N, C] with its options on (ignore_index for integer
    labels): (function, arrays, their partition specs, options)."""
    loss = REGISTRY[name]
    x, y = loss.make(np.random.default_rng(1), (N, C))
    opts = loss.options(C)
    if y.ndim == 1 and "ignore_index" in inspect.signature(loss.fn).parameters:
        # integer labels: every fifth one ignored
        y = y.at[::5].set(IGNORE)
        opts = dict(opts, ignore_index=IGNORE)
    return loss.fn, (x, y), (BOTH, ROW if y.ndim == 1 else BOTH), opts


# name -> (function, arrays, their partition specs, options); gradients are
# taken for every array before the labels.
CASES = {name: registry_case(name) for name in REGISTRY}
CASES["linear_softmax_cross_entropy"] = (
    jaxloss.linear_softmax_cross_entropy,
    (inputs, kernel, bias, jnp.asarray(rng.integers(0, C, size=N), jnp.int32).at[::5].set(IGNORE)),
    (P("data", None), VOCAB, P("model"), ROW),
    dict(
        ignore_index=IGNORE,
        label_smoothing=0.1,
        z_loss=1e-3,
        logit_soft_cap=5.0,
        chunk_size=8,
        class_weight=jnp.linspace(0.5, 2.0, C),
        weight=jnp.linspace(0.0, 2.0, N),
    ),  # fmt: skip
)

# jaxloss and optax on the same loss, for the collective count.
PEERS = {
    "sigmoid_binary_cross_entropy": optax.losses.sigmoid_binary_cross_entropy,
    "sigmoid_focal_loss": optax.losses.sigmoid_focal_loss,
    "softmax_cross_entropy": optax.losses.softmax_cross_entropy,
    "softmax_cross_entropy_with_integer_labels": (
        optax.losses.softmax_cross_entropy_with_integer_labels
    ),
}


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


COLLECTIVE = re.compile(
    r"\b(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)(?:-start)?\("
)


def collective_counts():
    """Collectives in value-and-grad of the mean, jaxloss with the plain core
    forced (what GPUs and TPUs compile) and optax, on the 2x4 mesh."""
    from jaxloss._core import plain_core

    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
    out = {}
    for name, peer in PEERS.items():
        _, arrays, specs, _ = CASES[name]
        placed = [
            jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(arrays, specs, strict=True)
        ]
        ours = getattr(jaxloss, name)
        counts = {}
        for who, fn in (("jaxloss", ours), ("optax", peer)):

            def mean(x, y, fn=fn, who=who):
                out = fn(x, y, reduction="mean") if who == "jaxloss" else jnp.mean(fn(x, y))
                return out

            with plain_core():
                hlo = jax.jit(jax.value_and_grad(mean)).lower(*placed).compile().as_text()
            counts[who] = len(COLLECTIVE.findall(hlo))
        out[f"collectives/{name}"] = counts
    return out


# The pairwise losses: the ring inside shard_map (x, y, labels and masks
# split over the batch) against the same loss on one device.
PB, PD = 64, 8
PAIRWISE = {
    "sigmoid_pairwise_loss": dict(bias=-2.0, pos_weight=1.5, gamma=0.5),
    "softmax_pairwise_loss": dict(label_smoothing=0.1),
}
PAIR_AXES = {(8, 1): "data", (2, 4): ("data", "model")}


def pairwise_cases(results, report):
    r = np.random.default_rng(3)
    x = jnp.asarray(r.normal(size=(PB, PD)), jnp.float32)
    y = jnp.asarray(r.normal(size=(PB, PD)), jnp.float32)
    keep = jnp.asarray(r.uniform(size=PB) > 0.2)
    labels = jnp.asarray(r.integers(0, 6, size=PB), jnp.int32)  # several positives per row
    cot = jnp.linspace(0.5, 1.5, PB)
    for name, opts in PAIRWISE.items():
        fn = getattr(jaxloss, name)
        extra = {"labels": labels} if name.startswith("sigmoid") else {}
        for reduction in ("mean", "none"):

            def total(out, c, reduction=reduction):
                return out if reduction != "none" else jnp.sum(out * c)

            def plain(x, y, t, fn=fn, opts=opts, extra=extra, total=total, reduction=reduction):
                out = fn(x, y, temperature=t, reduction=reduction, where=keep, chunk_size=3,
                         **extra, **opts)  # fmt: skip
                return total(out, cot)

            want = jax.jit(jax.value_and_grad(plain, argnums=(0, 1, 2)))(x, y, 3.0)
            for shape, axis in PAIR_AXES.items():
                mesh = Mesh(np.array(jax.devices()).reshape(shape), ("data", "model"))
                row = P(axis)

                def local(x, y, t, k, c, lab, fn=fn, opts=opts, axis=axis, total=total,
                          reduction=reduction, name=name):  # fmt: skip
                    extra = {"labels": lab} if name.startswith("sigmoid") else {}
                    out = fn(x, y, temperature=t, reduction=reduction, where=k, chunk_size=3,
                             axis_name=axis, **extra, **opts)  # fmt: skip
                    return out if reduction != "none" else jax.lax.psum(total(out, c), axis)

                ring = jax.shard_map(local, mesh=mesh, in_specs=(row, row, P(), row, row, row),
                                     out_specs=P())  # fmt: skip

                def sharded(x, y, t, ring=ring):
                    return ring(x, y, t, keep, cot, labels)

                compiled = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 2)))
                compiled = compiled.lower(x, y, 3.0).compile()
                got = compiled(x, y, 3.0)
                key = f"{name}/{reduction}/{shape[0]}x{shape[1]}"
                for i, (a, b) in enumerate(
                    zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
                ):
                    results[f"{key}/{i}/sharded"] = np.asarray(a)
                    results[f"{key}/{i}/plain"] = np.asarray(b)
                hlo = compiled.as_text()
                report[key] = {
                    "gathers": gathered_shapes(hlo),
                    "permutes": len(re.findall(r"collective-permute(?:-start)?\(", hlo)),
                }


def sliced_case(report):
    """The fused loss where XLA:CPU accumulates its kernel gradient a slice of
    rows at a time (D=64 > the 32-row slice at V=65536), vocabulary over
    "model": the slices must not make the partitioner gather the vocabulary."""
    n, d, v = 32, 64, 65536
    r = np.random.default_rng(4)
    x = jnp.asarray(r.normal(size=(n, d)), jnp.float32)
    k = jnp.asarray(r.normal(size=(d, v)) * 0.1, jnp.float32)
    y = jnp.asarray(r.integers(0, v, size=n), jnp.int32)
    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
    placed = [
        jax.device_put(a, NamedSharding(mesh, s))
        for a, s in ((x, P("data", None)), (k, VOCAB), (y, ROW))
    ]

    def mean(x, k, y):
        return jaxloss.linear_softmax_cross_entropy(x, k, y, reduction="mean", chunk_size=8)

    grads = jax.jit(jax.value_and_grad(mean, argnums=(0, 1)))
    hlo = grads.lower(*placed).compile().as_text()
    report["sliced/2x4"] = {"gathers": gathered_shapes(hlo), "vocab": v}


def tiled_case(results, report):
    """The fused loss's vocabulary-tiled path on the 2x4 mesh, vocabulary
    over "model": forced at V=1024 (8 tiles of 8 runs of 16 columns, every
    option) for values and gradients against one device, and the default
    plan at V=131072 (64 tiles) for its HLO. Neither may gather the
    vocabulary."""
    from jaxloss import _linear

    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
    r = np.random.default_rng(5)

    def arrays(n, d, v):
        return (
            jnp.asarray(r.normal(size=(n, d)), jnp.float32),
            jnp.asarray(r.normal(size=(d, v)) * 0.1, jnp.float32),
            jnp.asarray(r.normal(size=(v,)), jnp.float32),
            jnp.asarray(r.uniform(0.5, 2.0, size=(v,)), jnp.float32),  # class weights
            jnp.asarray(r.integers(0, v, size=n), jnp.int32).at[::5].set(IGNORE),
        )

    def placed(a):
        specs = (P("data", None), VOCAB, P("model"), P("model"), ROW)
        return [jax.device_put(x, NamedSharding(mesh, s)) for x, s in zip(a, specs, strict=True)]

    def grads(x, k, b, w, y):
        def mean(x, k, b, w):
            return jaxloss.linear_softmax_cross_entropy(
                x, k, y, bias=b, ignore_index=IGNORE, label_smoothing=0.1, z_loss=1e-3,
                logit_soft_cap=5.0, class_weight=w, reduction="mean",
            )  # fmt: skip

        return jax.value_and_grad(mean, argnums=(0, 1, 2, 3))(x, k, b, w)

    saved = _linear._TILED_CHUNK, _linear._ROW_LOGITS, _linear._TILE_LOGITS
    _linear._TILED_CHUNK, _linear._ROW_LOGITS, _linear._TILE_LOGITS = 8, 8 * 64, 8 * 64
    try:
        assert _linear._plan(1024, 64, None) == (8, (8, 16))
        small = arrays(64, 16, 1024)
        plain = jax.jit(grads)(*small)
        compiled = jax.jit(grads).lower(*placed(small)).compile()
        sharded = compiled(*placed(small))
    finally:
        _linear._TILED_CHUNK, _linear._ROW_LOGITS, _linear._TILE_LOGITS = saved
    for i, (a, b) in enumerate(zip(jax.tree.leaves(sharded), jax.tree.leaves(plain), strict=True)):
        results[f"tiled/2x4/{i}/sharded"] = np.asarray(a)
        results[f"tiled/2x4/{i}/plain"] = np.asarray(b)
    report["tiled/2x4"] = {"gathers": gathered_shapes(compiled.as_text()), "vocab": 1024}
    assert _linear._plan(131072, 2048, None) == (2048, (64, 16))
    big = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=x.sharding)
           for a, x in zip(arrays(2048, 64, 131072), placed(arrays(8, 64, 131072)), strict=True)]  # fmt: skip
    hlo = jax.jit(grads).lower(*big).compile().as_text()
    report["tiled-default/2x4"] = {"gathers": gathered_shapes(hlo), "vocab": 131072}


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
    report.update(collective_counts())
    pairwise_cases(results, report)
    sliced_case(report)
    tiled_case(results, report)
    # A control that does gather the logits, so the HLO check can be seen to fail.
    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
    placed = jax.device_put(CASES["softmax_cross_entropy"][1][0], NamedSharding(mesh, BOTH))
    gather = jax.jit(lambda x: 2 * x, out_shardings=NamedSharding(mesh, P()))
    report["control/2x4"] = {"gathers": gathered_shapes(gather.lower(placed).compile().as_text())}
    np.savez(out_path, report=np.array(json.dumps(report)), **results)


if __name__ == "__main__":
    main(sys.argv[1])
