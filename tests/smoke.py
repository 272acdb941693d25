"""Every public loss's value and gradient, with its options on: the smoke
test `.ci/run` runs in a virtualenv holding the declared minimum versions of
jax, jaxlib, numpy, optax, chex and flax (pyproject.toml's lower bounds).

    python tests/smoke.py

Needs only jaxloss and numpy (not pytest); prints one line per loss and a
closing 'N passed, N failed'.
"""

from __future__ import annotations

import pathlib
import sys

import jax

jax.config.update("jax_num_cpu_devices", 4)  # for the ring check, before any computation

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
import jaxloss  # noqa: E402
from tests.losses import FUSED, PAIRWISE, REGISTRY  # noqa: E402


def check(name, loss):
    args = loss.make(np.random.default_rng(0), (6, 5))
    opts = dict(loss.options(5), reduction="mean")

    def total(first, *rest):
        return loss.fn(first, *rest, **opts)

    value, grad = jax.jit(jax.value_and_grad(total))(*args)
    assert np.isfinite(value) and np.isfinite(grad).all(), name
    return float(value)


def ring_check(name):
    """The pairwise loss inside shard_map over 4 devices equals one device."""
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:  # JAX < 0.7
        from jax.experimental.shard_map import shard_map
    loss = PAIRWISE[name]
    x, y = loss.make(np.random.default_rng(0), (8, 5))
    opts = dict(loss.options(5), reduction="mean")
    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    ring = shard_map(
        lambda x, y: loss.fn(x, y, axis_name="data", **opts),
        mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(),
    )  # fmt: skip
    want = jax.jit(jax.value_and_grad(lambda x, y: loss.fn(x, y, **opts), (0, 1)))(x, y)
    got = jax.jit(jax.value_and_grad(ring, (0, 1)))(x, y)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


def main():
    print(f"jax {jax.__version__}, jaxlib {jax.lib.__version__}, numpy {np.__version__}")
    passed = failed = 0
    for name, loss in {**REGISTRY, "linear_softmax_cross_entropy": FUSED, **PAIRWISE}.items():
        try:
            print(f"{name}: {check(name, loss):.6f}")
            passed += 1
        except Exception as err:  # report every loss, then fail
            print(f"{name}: FAILED {type(err).__name__}: {err}")
            failed += 1
    for name in PAIRWISE:
        try:
            ring_check(name)
            print(f"{name} on a ring of 4 devices: equal to one device")
            passed += 1
        except Exception as err:
            print(f"{name} ring: FAILED {type(err).__name__}: {err}")
            failed += 1
    try:
        jaxloss.checked(jaxloss.binary_cross_entropy)(jnp.array([0.5]), jnp.array([2.0]))
        print("checked: FAILED (no error)")
        failed += 1
    except ValueError:
        passed += 1
    print(f"{passed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(main())
