"""Focal losses: reduction to cross-entropy, log-space numerics, traced gamma."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxloss
from tests import reference as ref
from tests.losses import jl, value_and_grad_of_sum

RNG = np.random.default_rng(2)
GAMMAS = [0.0, 0.25, 0.5, 1.0, 2.0, 3.5]


def test_gamma_zero_equals_cross_entropy():
    x = jnp.asarray(RNG.normal(size=(6, 5)) * 4, jnp.float32)
    p = jax.nn.sigmoid(x)
    yb = jnp.asarray(RNG.uniform(size=(6, 5)), jnp.float32)
    yi = jnp.asarray(RNG.integers(0, 5, size=(6,)), jnp.int32)
    yt = jnp.asarray(RNG.dirichlet(np.ones(5), size=6), jnp.float32)
    pairs = [
        (jl.sigmoid_focal_loss(x, yb, gamma=0.0), jl.sigmoid_binary_cross_entropy(x, yb)),
        (jl.binary_focal_loss(p, yb, gamma=0.0), jl.binary_cross_entropy(p, yb)),
        (jl.softmax_focal_loss(x, yt, gamma=0.0), jl.softmax_cross_entropy(x, yt)),
        (
            jl.softmax_focal_loss_with_integer_labels(x, yi, gamma=0.0),
            jl.softmax_cross_entropy_with_integer_labels(x, yi),
        ),
    ]
    for focal, ce in pairs:
        np.testing.assert_allclose(focal, ce, rtol=1e-6, atol=0)


def test_integer_focal_equals_one_hot_focal():
    x = jnp.asarray(RNG.normal(size=(7, 4)) * 3, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 4, size=(7,)), jnp.int32)
    alpha = jnp.array([0.1, 0.4, 0.7, 1.0])
    for g in (0.5, 2.0):
        chex.assert_trees_all_close(
            jl.softmax_focal_loss_with_integer_labels(x, y, gamma=g, alpha=alpha),
            jl.softmax_focal_loss(x, jax.nn.one_hot(y, 4), gamma=g, alpha=alpha),
            rtol=1e-5,
        )


@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_focal_reference(gamma):
    x = RNG.normal(size=(5, 6)).astype(np.float32) * 3
    t = RNG.dirichlet(np.ones(6), size=5).astype(np.float32)
    got = jl.softmax_focal_loss(x, t, gamma=gamma, alpha=0.3, label_smoothing=0.1)
    np.testing.assert_allclose(
        got, ref.softmax_focal(x, t, gamma=gamma, alpha=0.3, e=0.1), rtol=1e-5
    )


# Logits at every magnitude, hard and soft labels.
BIG = [0.0, 1.0, -3.0, 20.0, -20.0, 90.0, -90.0, 1e4, -1e4, 1e30, -1e30, 3e38, -3e38]


# Traced and vmapped over gamma: one compiled program covers all four.
FINITE_GAMMAS = jnp.array([0.0, 0.25, 0.5, 2.0])


def test_sigmoid_focal_grad_and_hessian_finite_everywhere():
    x = jnp.asarray(np.repeat(BIG, 3), jnp.float32)
    y = jnp.tile(jnp.array([0.0, 1.0, 0.4]), len(BIG))

    def at(gamma):
        f = lambda x: jaxloss.sigmoid_focal_loss(x, y, gamma=gamma, alpha=0.25)  # noqa: E731
        h = jax.vmap(jax.hessian(lambda xi, yi: jaxloss.sigmoid_focal_loss(xi, yi, gamma=gamma)))
        return value_and_grad_of_sum(f)(x), h(x, y)

    chex.assert_tree_all_finite(jax.jit(jax.vmap(at))(FINITE_GAMMAS))


def test_softmax_focal_grad_and_hessian_finite_everywhere():
    rows = []
    for big in (1.0, 20.0, 90.0, 1e4, 1e30):
        rows += [[big, -big, 0.0], [-big, big, 0.5], [big, big, -big]]
    x = jnp.asarray(rows, jnp.float32)
    yi = jnp.asarray(np.arange(len(rows)) % 3, jnp.int32)
    yt = jax.nn.one_hot(yi, 3)

    def at(gamma):
        out = []
        for fn, y in (
            (jaxloss.softmax_focal_loss_with_integer_labels, yi),
            (jaxloss.softmax_focal_loss, yt),
        ):
            f = lambda x, fn=fn, y=y: fn(x, y, gamma=gamma)  # noqa: E731
            h = jax.vmap(jax.hessian(lambda xi, yi, fn=fn: fn(xi, yi, gamma=gamma)))
            out.append((value_and_grad_of_sum(f)(x), h(x, y)))
        return out

    chex.assert_tree_all_finite(jax.jit(jax.vmap(at))(FINITE_GAMMAS))


@pytest.mark.parametrize(
    "name",
    [
        "sigmoid_focal_loss",
        "binary_focal_loss",
        "softmax_focal_loss",
        "softmax_focal_loss_with_integer_labels",
    ],
)
def test_gradients_match_reference_to_second_order_in_float64(name):
    """check_grads to order 2 in both modes at gamma=0.5, below 1, where the
    naive power's derivative blows up."""
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(4, 3)) * 2, jnp.float64)
        yb = jnp.asarray(rng.uniform(size=(4, 3)), jnp.float64)
        yi = jnp.asarray(rng.integers(0, 3, size=(4,)), jnp.int32)
        yt = jnp.asarray(rng.dirichlet(np.ones(3), size=4), jnp.float64)
        fns = {
            "sigmoid_focal_loss": (
                lambda x: jaxloss.sigmoid_focal_loss(x, yb, gamma=0.5, alpha=0.3),
                x,
            ),
            "binary_focal_loss": (
                lambda p: jaxloss.binary_focal_loss(p, yb, gamma=0.5, alpha=0.3),
                jax.nn.sigmoid(x),
            ),
            "softmax_focal_loss": (
                lambda x: jaxloss.softmax_focal_loss(x, yt, gamma=0.5, label_smoothing=0.1),
                x,
            ),
            "softmax_focal_loss_with_integer_labels": (
                lambda x: jaxloss.softmax_focal_loss_with_integer_labels(x, yi, gamma=0.5),
                x,
            ),
        }
        f, a = fns[name]
        check_grads(jax.jit(f), (a,), order=2, modes=("fwd", "rev"), eps=1e-6, atol=1e-5, rtol=1e-5)


def test_gamma_is_traced_and_differentiable():
    x = jnp.asarray(RNG.normal(size=(8,)) * 2, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 2, size=(8,)), jnp.float32)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(gamma, alpha):
        return jaxloss.sigmoid_focal_loss(x, y, gamma=gamma, alpha=alpha, reduction="sum")

    for gamma in (0.5, 1.0, 2.0, 3.0):
        f(jnp.float32(gamma), jnp.float32(0.25))  # no retrace when the values change
    # d/dgamma of sum_i a_t (1 - p_t)^gamma BCE = sum_i a_t (1 - p_t)^gamma log(1 - p_t) BCE.
    xd, yd = np.asarray(x, np.float64), np.asarray(y, np.float64)
    pd = 1 / (1 + np.exp(-xd))
    u = yd * (1 - pd) + (1 - yd) * pd
    a_t = 0.25 * yd + 0.75 * (1 - yd)
    want = np.sum(a_t * u**1.5 * np.log(u) * ref.bce_logits(xd, yd))
    np.testing.assert_allclose(jax.grad(f)(jnp.float32(1.5), jnp.float32(0.25)), want, rtol=1e-4)


def test_alpha_per_class_binary():
    x = jnp.asarray(RNG.normal(size=(5, 3)) * 2, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 2, size=(5, 3)), jnp.float32)
    alpha = np.array([0.1, 0.5, 0.9], np.float32)
    np.testing.assert_allclose(
        jl.sigmoid_focal_loss(x, y, alpha=alpha), ref.focal_logits(x, y, 2.0, alpha), rtol=1e-5
    )
