"""nll_loss, the PolyLoss pair and softmax_kl_divergence: against optax and
their own definitions (golden values from PyTorch are in tests/data)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from tests import reference as ref


def test_poly_loss_equals_optax():
    RNG = np.random.default_rng(22)
    x = jnp.asarray(RNG.normal(size=(6, 5)) * 3, jnp.float32)
    keep = jnp.asarray(RNG.uniform(size=(6, 5)) > 0.3).at[:, 0].set(True)  # optax: a class mask
    t = np.where(keep, RNG.dirichlet(np.ones(5), size=6), 0.0)  # no mass on masked classes
    t = jnp.asarray(t / t.sum(-1, keepdims=True), jnp.float32)
    f = jax.jit(lambda x, t, e: jaxloss.poly_loss_cross_entropy(x, t, epsilon=e, where=keep))
    for eps in (2.0, -1.0, 0.5):
        want = optax.losses.poly_loss_cross_entropy(x, t, epsilon=eps, where=keep)
        np.testing.assert_allclose(f(x, t, jnp.float32(eps)), want, rtol=1e-5, atol=1e-6)


def test_poly_loss_integer_labels_equal_one_hot_and_reduce_to_ce():
    RNG = np.random.default_rng(22)
    x = jnp.asarray(RNG.normal(size=(6, 5)) * 3, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 5, size=6), jnp.int32)
    w = jnp.linspace(0.5, 2.0, 5)
    kw = dict(class_weight=w, label_smoothing=0.1, epsilon=1.5)
    got = jaxloss.poly_loss_cross_entropy_with_integer_labels(x, y, **kw)
    want = jaxloss.poly_loss_cross_entropy(x, jax.nn.one_hot(y, 5), **kw)
    chex.assert_trees_all_close(got, want, rtol=1e-5)
    # epsilon = 0: the cross-entropy, with PyTorch's weighted mean.
    ce = jaxloss.softmax_cross_entropy_with_integer_labels(
        x, y, class_weight=w, ignore_index=3, reduction="mean"
    )
    poly = jaxloss.poly_loss_cross_entropy_with_integer_labels(
        x, y, class_weight=w, ignore_index=3, epsilon=0.0, reduction="mean"
    )
    np.testing.assert_allclose(poly, ce, rtol=1e-6)
    # The polynomial term without weights or smoothing: 1 - p_y (float64 reference).
    p_y = np.exp(ref.log_softmax(np.asarray(x, np.float64)))[np.arange(6), np.asarray(y)]
    got = jaxloss.poly_loss_cross_entropy_with_integer_labels(x, y, epsilon=1.0)
    np.testing.assert_allclose(got, ref.ce_integer(x, y) + (1 - p_y), rtol=1e-5, atol=1e-6)


def test_nll_loss_is_cross_entropy_of_log_softmax():
    RNG = np.random.default_rng(22)
    x = jnp.asarray(RNG.normal(size=(3, 5, 4)), jnp.float32)  # (N, C, d), classes on axis 1
    y = jnp.asarray(RNG.integers(0, 5, size=(3, 4)), jnp.int32).at[0, 0].set(-100)
    kw = dict(axis=1, class_weight=jnp.linspace(0.5, 2, 5), ignore_index=-100, reduction="mean")
    got = jaxloss.nll_loss(jax.nn.log_softmax(x, 1), y, **kw)
    want = jaxloss.softmax_cross_entropy_with_integer_labels(x, y, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_distillation_absent_classes_and_teacher_gradient():
    inf = jnp.inf
    student = jnp.array([[1.0, 2.0, 0.5], [0.0, -inf, 1.0]])
    teacher = jnp.array([[0.5, -inf, 2.0], [1.0, 0.0, 0.0]])
    out = jaxloss.softmax_kl_divergence(student, teacher)
    # Row 0: the teacher's absent class gives 0; row 1: mass on the
    # student's absent class gives +inf.
    q = np.exp(ref.log_softmax(np.array([0.5, 2.0])))
    log_p = ref.log_softmax(np.array([1.0, 2.0, 0.5]))[[0, 2]]
    np.testing.assert_allclose(out[0], np.sum(q * (np.log(q) - log_p)), rtol=1e-6)
    assert out[1] == jnp.inf
    f = lambda s, t: jaxloss.softmax_kl_divergence(s, t, temperature=2.0).sum()  # noqa: E731
    gs, gt = jax.grad(f, argnums=(0, 1))(student[:1], teacher[:1])
    chex.assert_tree_all_finite((gs, gt))
    assert gs[0, 1] != 0 and gt[0, 1] == 0  # the teacher's absent class: no gradient
    # Student-only training: stop the teacher's gradient.
    g = jax.grad(
        lambda t: jaxloss.softmax_kl_divergence(student[:1], jax.lax.stop_gradient(t)).sum()
    )(teacher[:1])
    np.testing.assert_array_equal(g, 0.0)


def test_distillation_temperature_must_be_positive():
    with pytest.raises(ValueError, match="`temperature` must be positive"):
        jaxloss.softmax_kl_divergence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), temperature=0.0)
