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
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
import jaxloss  # noqa: E402
from tests.losses import FUSED, REGISTRY  # noqa: E402


def check(name, loss):
    args = loss.make(np.random.default_rng(0), (6, 5))
    opts = dict(loss.options(5), reduction="mean")

    def total(first, *rest):
        return loss.fn(first, *rest, **opts)

    value, grad = jax.jit(jax.value_and_grad(total))(*args)
    assert np.isfinite(value) and np.isfinite(grad).all(), name
    return float(value)


def main():
    print(f"jax {jax.__version__}, jaxlib {jax.lib.__version__}, numpy {np.__version__}")
    passed = failed = 0
    for name, loss in {**REGISTRY, "linear_softmax_cross_entropy": FUSED}.items():
        try:
            print(f"{name}: {check(name, loss):.6f}")
            passed += 1
        except Exception as err:  # report every loss, then fail
            print(f"{name}: FAILED {type(err).__name__}: {err}")
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
