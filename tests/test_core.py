"""The XLA:CPU fast path (jaxloss/_cpu.py) equals the plain core (_core.py).

GPUs and TPUs run the plain core; CPUs the fast path. Both must give the same
values and derivatives: compared here in value, `grad`, `jacfwd`, `hessian`
and under `vmap`, on random rows, rows with -inf logits, a row of all -inf,
and logits of +-1e30, in float32 and float64. Then every public loss, with
its options on, traced with the plain core forced equals the default (the
CPU program) in value and gradient.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import _core, _cpu
from tests.losses import REGISTRY, all_options, value_and_grad_of_sum

INF = np.inf
ROWS = np.array(
    [
        [0.3, -1.2, 2.0, 0.7, -0.4],  # random
        [1.5, -INF, 0.2, -INF, -2.0],  # two absent classes
        [-INF, -INF, -INF, -INF, -INF],  # no class at all
        [1e30, -1e30, 1e30, 0.0, -INF],  # a tie at 1e30
    ]
)
TARGETS = np.array(
    [
        [0.1, 0.2, 0.3, 0.25, 0.15],
        [0.5, 0.0, 0.3, 0.0, 0.2],  # no mass on the absent classes: finite
        [0.2, 0.2, 0.2, 0.2, 0.2],
        [0.4, 0.1, 0.3, 0.1, 0.1],  # mass on the -inf class: +inf when required
    ]
)


def _bundle(class_sum, dtype, axis, required):
    x = jnp.asarray(ROWS if axis == -1 else ROWS.T, dtype)
    v = jnp.asarray(TARGETS if axis == -1 else TARGETS.T, dtype)
    cot = jnp.asarray([0.7, -1.3, 0.4, 1.1], dtype)
    req = v if required else None

    def f(x, v):
        return jnp.sum(cot * class_sum(x, v, req, axis))

    def row(x, v):  # one example: its class axis is 0
        return class_sum(x, v, None if req is None else v, 0)

    bx = x if axis == -1 else x.T
    bv = v if axis == -1 else v.T
    return jax.jit(
        lambda x, v: (
            class_sum(x, v, req, axis),
            jax.grad(f, argnums=(0, 1))(x, v),
            jax.jacfwd(f, argnums=(0, 1))(x, v),
            jax.hessian(f)(x, v),
            jax.vmap(row)(bx, bv),
        )
    )(x, v)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("required", [False, True])
def test_class_sum_fast_path_equals_plain_core(dtype, axis, required):
    with jax.enable_x64(dtype == "float64"):
        dt = jnp.dtype(dtype)
        fast = _bundle(_cpu.class_sum, dt, axis, required)
        plain = _bundle(_core.plain_class_sum, dt, axis, required)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        chex.assert_trees_all_close(fast, plain, rtol=rtol, atol=rtol)
        # The row without classes gives 0 (its loss is NaN'd by the caller);
        # the row with target mass on an absent class (required) gives +inf.
        value = np.asarray(plain[0])
        assert value[2] == (np.inf if required else 0.0)  # mass on absent classes
        assert value[3] == (np.inf if required else value[3]) and value[1] < np.inf
        assert np.isfinite(np.asarray(plain[1][0])).all()


def _lse_bundle(fresh, dtype):
    x = jnp.asarray(ROWS, dtype)
    cot = jnp.asarray([0.7, -1.3, 0.4, 1.1], dtype)

    def f(x):
        r = _core.logsumexp(x, -1, fresh=fresh)
        return jnp.sum(cot * jnp.where(r.has_class, r.lse, 0))

    return jax.jit(
        lambda x: (
            f(x),
            jax.grad(f)(x),
            jax.jacfwd(f)(x),
            jax.hessian(f)(x),
            jax.vmap(f)(x[:, None]),
        )
    )(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fresh_logsumexp_gradient_equals_plain_core(dtype):
    with jax.enable_x64(dtype == "float64"):
        dt = jnp.dtype(dtype)
        fast = _lse_bundle(True, dt)  # on CPU: _cpu.log_s_fresh
        with _core.plain_core():
            plain = _lse_bundle(True, dt)
        reference = _lse_bundle(False, dt)  # no dispatch at all: the plain log_s
        rtol = 1e-5 if dtype == "float32" else 1e-12
        chex.assert_trees_all_close(fast, plain, rtol=rtol, atol=rtol)
        chex.assert_trees_all_close(plain, reference, rtol=rtol, atol=rtol)
        chex.assert_tree_all_finite(plain[1:4])


@pytest.mark.parametrize("name", [n for n, loss in REGISTRY.items() if loss.family == "multiclass"])
def test_every_loss_with_the_plain_core_equals_the_cpu_program(name):
    loss = REGISTRY[name]
    x, y = loss.make(np.random.default_rng(5), (6, 5))
    x = x.at[1, 2].set(-jnp.inf) if loss.first == "logits" else x
    opts = all_options(name, 5)
    f = value_and_grad_of_sum(lambda x: loss.fn(x, y, **opts))
    fast = jax.jit(f)(x)
    with _core.plain_core():
        plain = jax.jit(f)(x)
    chex.assert_trees_all_close(fast, plain, rtol=1e-5, atol=1e-6)
