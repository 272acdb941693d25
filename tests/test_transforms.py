"""Every loss, every option on, under jit, vmap, grad, jacfwd, hessian, checkpoint."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.losses import BINARY, LOSSES, all_options

NAMES = list(LOSSES)
SHAPE = (4, 3)


def _inputs(name, dtype=np.float32, seed=0):
    fn, make = LOSSES[name]
    x, y = make(np.random.default_rng(seed), SHAPE, dtype)
    return fn, x, y, all_options(name, SHAPE[-1])


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager(name):
    fn, x, y, kw = _inputs(name)
    chex.assert_trees_all_close(jax.jit(lambda x: fn(x, y, **kw))(x), fn(x, y, **kw), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_equals_batched(name):
    fn, x, y, kw = _inputs(name)
    if name in BINARY:  # elementwise weights follow the example under vmap
        kw = {k: v for k, v in kw.items() if k != "weight"}
    f = lambda x, y: fn(x, y, **kw)  # noqa: E731
    batched, mapped = jax.jit(lambda x, y: (f(x, y), jax.vmap(f)(x, y)))(x, y)
    chex.assert_trees_all_close(mapped, batched, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_jacfwd_equals_grad_and_hessian_symmetric(name):
    fn, x, y, kw = _inputs(name)
    f = lambda x: fn(x, y, **{**kw, "reduction": "sum"})  # noqa: E731
    fwd, rev, h = jax.jit(lambda x: (jax.jacfwd(f)(x), jax.grad(f)(x), jax.hessian(f)(x)))(x)
    chex.assert_trees_all_close(fwd, rev, rtol=1e-5, atol=1e-7)
    h = h.reshape(x.size, x.size)
    chex.assert_tree_all_finite(h)
    chex.assert_trees_all_close(h, h.T, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_gives_same_gradient(name):
    fn, x, y, kw = _inputs(name)
    f = lambda x: fn(x, y, **{**kw, "reduction": "mean"})  # noqa: E731
    remat, plain = jax.jit(lambda x: (jax.grad(jax.checkpoint(f))(x), jax.grad(f)(x)))(x)
    chex.assert_trees_all_close(remat, plain, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_traced_without_retracing(name):
    chex.clear_trace_counter()  # the counter is keyed by code, shared across params
    fn, x, y, kw = _inputs(name)
    traced = {k: v for k, v in kw.items() if isinstance(v, float)}

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, hyper):
        return fn(x, y, **{**kw, **hyper, "reduction": "mean"})

    outs = [f(x, {k: jnp.float32(v * s) for k, v in traced.items()}) for s in (0.5, 1.0)]
    if traced:  # and the values do change the loss
        assert outs[0] != outs[1]
    chex.assert_tree_all_finite(outs)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_equals_float32_on_rounded_inputs(name, dtype):
    fn, x, y, kw = _inputs(name)
    xh = x.astype(dtype)
    f = lambda x: fn(x, y, **{**kw, "reduction": "sum"})  # noqa: E731
    half, up, grad = jax.jit(lambda xh: (f(xh), f(xh.astype(jnp.float32)), jax.grad(f)(xh)))(xh)
    assert half.dtype == jnp.float32
    chex.assert_trees_all_close(half, up, rtol=1e-6)
    assert grad.dtype == dtype
