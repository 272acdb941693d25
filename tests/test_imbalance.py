"""Imbalance tools: the asymmetric loss, class-prior weights, logit adjustment.

Golden values of the asymmetric loss against timm are in tests/data
(test_fixtures.py); here: its limits and extremes against a float64
reference, and the helpers and logit adjustment against the papers'
formulas in float64.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests import reference as ref

RNG = np.random.default_rng(23)


# --------------------------------------------------------------------------
# Asymmetric loss.


def test_asl_without_focusing_or_clip_is_bce():
    x = jnp.asarray(RNG.normal(size=(5, 4)) * 3, jnp.float32)
    y = jnp.asarray(RNG.uniform(size=(5, 4)), jnp.float32)
    pw = jnp.array([0.5, 1.0, 2.0, 3.0])
    got = jaxloss.asymmetric_loss(x, y, gamma_neg=0.0, gamma_pos=0.0, clip=None, pos_weight=pw)
    want = jaxloss.sigmoid_binary_cross_entropy(x, y, pos_weight=pw)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_asl_exact_and_finite_at_any_logit(dtype):
    # Where timm clamps p at 1e-8 (|x| > 18.4) its loss saturates and its
    # gradient vanishes; here both follow the float64 formula.
    big = float(jnp.finfo(dtype).max) / 2
    x = jnp.asarray(
        [-big, -1e4 if dtype != jnp.float16 else -6e4, -30.0, -5.0, 0.0, 5.0, 30.0, big], dtype
    )
    for y in (0.0, 1.0, 0.3):
        labels = jnp.full(x.shape, y)

        def f(x, labels=labels):
            return jaxloss.asymmetric_loss(x, labels, gamma_neg=0.5, gamma_pos=0.25)

        loss, grad = jax.jit(lambda x, f=f: (f(x), jax.grad(lambda x: f(x).sum())(x)))(x)
        chex.assert_tree_all_finite((loss, grad))
        assert loss.dtype == jnp.float32 and grad.dtype == dtype
        want = ref.asl(np.asarray(x, np.float64)[2:-2], np.full(4, y), 0.5, 0.25)
        np.testing.assert_allclose(loss[2:-2], want, rtol=1e-5, atol=1e-7)
    # The positive's gradient at x = -30 is about -1, not 0 (timm's clamp).
    g = jax.grad(lambda x: jaxloss.asymmetric_loss(x, jnp.ones(1)).sum())(jnp.array([-30.0]))
    np.testing.assert_allclose(g, [-1.0], rtol=1e-6)


def test_asl_discards_easy_negatives():
    # A negative with p <= clip gives exactly 0, with zero gradient.
    x = jnp.array([-4.0, -2.9, -2.0])  # sigmoid: 0.018, 0.052, 0.12
    f = lambda x: jaxloss.asymmetric_loss(x, jnp.zeros(3), clip=0.05)  # noqa: E731
    loss, grad = f(x), jax.grad(lambda x: f(x).sum())(x)
    assert loss[0] == 0.0 and grad[0] == 0.0
    assert loss[1] > 0 and loss[2] > loss[1] and grad[2] > 0


def test_asl_stop_focal_gradient_treats_the_weight_as_constant():
    x = jnp.asarray(RNG.normal(size=(4, 3)) * 2, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 2, size=(4, 3)), jnp.float32)
    kw = dict(gamma_neg=3.0, gamma_pos=1.0, clip=0.1)
    with jax.enable_x64(True):
        x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        # Reference: the focusing weight at the current x, then d/dx of w * CE.
        w = ref.asl_focus(x64, y64, **kw)
        ce = lambda x: jaxloss.asymmetric_loss(x, y64, gamma_neg=0.0, gamma_pos=0.0, clip=0.1)  # noqa: E731
        want = jax.grad(lambda x: jnp.sum(jnp.asarray(w) * ce(x)))(x64)
        got = jax.grad(
            lambda x: jaxloss.asymmetric_loss(x, y64, stop_focal_gradient=True, **kw).sum()
        )(x64)
        np.testing.assert_allclose(got, want, rtol=1e-10)
        plain = jax.grad(lambda x: jaxloss.asymmetric_loss(x, y64, **kw).sum())(x64)
        assert not np.allclose(plain, want)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"clip": 1.0}, r"`clip` must lie in \[0, 1\)"),
        ({"clip": -0.1}, r"`clip` must lie"),
        ({"gamma_neg": -1.0}, r"`gamma_neg` must be non-negative"),
        ({"gamma_pos": -0.5}, r"`gamma_pos` must be non-negative"),
    ],
)
def test_asl_static_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        jaxloss.asymmetric_loss(jnp.zeros(3), jnp.zeros(3), **kw)


# --------------------------------------------------------------------------
# Class-prior helpers.


def test_pos_weight_from_counts():
    pos, neg = np.array([10.0, 1.0, 0.0, 50.0]), np.array([90.0, 99.0, 100.0, 0.0])
    got = jax.jit(jaxloss.pos_weight_from_counts)(pos, neg)
    # negatives / positives, a count of 0 counted as 1
    np.testing.assert_allclose(got, [9.0, 99.0, 100.0, 1 / 50], rtol=1e-6)
    assert got.dtype == jnp.float32


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number"])
def test_class_weights_from_counts_against_the_formulas(method):
    counts = np.array([1000.0, 200.0, 30.0, 4.0, 1.0])
    beta = 0.99
    raw = {
        "inverse": 1 / counts,
        "inverse_sqrt": 1 / np.sqrt(counts),
        "effective_number": (1 - beta) / (1 - beta**counts),  # Cui et al., eq. 2
    }[method]
    want = raw * len(counts) / raw.sum()
    with jax.enable_x64(True):
        got = jaxloss.class_weights_from_counts(jnp.asarray(counts), method=method, beta=beta)
        np.testing.assert_allclose(got, want, rtol=1e-12)
    got32 = jax.jit(lambda c: jaxloss.class_weights_from_counts(c, method=method, beta=beta))(
        counts
    )
    np.testing.assert_allclose(got32, want, rtol=1e-5)
    np.testing.assert_allclose(float(np.sum(got32)), len(counts), rtol=1e-6)


def test_class_weights_limits_zero_counts_and_traced_beta():
    # A balanced dataset: all ones. A zero count: as if seen once.
    np.testing.assert_allclose(
        jaxloss.class_weights_from_counts(jnp.full(4, 7)), np.ones(4), rtol=1e-6
    )
    zero = jaxloss.class_weights_from_counts(jnp.array([0, 1, 10]), method="inverse")
    np.testing.assert_allclose(zero[0], zero[1], rtol=1e-6)
    assert np.isfinite(zero).all()
    # beta is traced: 0 gives no re-weighting; near 1 it approaches "inverse".
    f = jax.jit(lambda b: jaxloss.class_weights_from_counts(jnp.array([500, 50, 5]), beta=b))
    np.testing.assert_allclose(f(0.0), np.ones(3), rtol=1e-6)
    inverse = jaxloss.class_weights_from_counts(jnp.array([500, 50, 5]), method="inverse")
    np.testing.assert_allclose(f(0.99999), inverse, rtol=1e-2)


@pytest.mark.parametrize(
    "args,kw,match",
    [
        ((jnp.ones((2, 3)),), {}, r"`counts` must have shape \[C\]"),
        ((jnp.ones(3),), {"method": "log"}, r"`method` must be one of"),
        ((jnp.ones(3),), {"beta": 1.0}, r"`beta` must lie in"),
    ],
)
def test_class_weights_static_errors(args, kw, match):
    with pytest.raises(ValueError, match=match):
        jaxloss.class_weights_from_counts(*args, **kw)


# --------------------------------------------------------------------------
# Logit adjustment.


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_logit_adjustment_is_the_loss_on_adjusted_logits(tau):
    x = RNG.normal(size=(6, 4)) * 2
    y = RNG.integers(0, 4, size=6)
    t = RNG.dirichlet(np.ones(4), size=6)
    prior = np.array([0.7, 0.2, 0.07, 0.03])
    adjusted = x + tau * np.log(prior)  # Menon et al. 2021, eq. 10
    f_int = jax.jit(jaxloss.softmax_cross_entropy_with_integer_labels)
    f_prob = jax.jit(jaxloss.softmax_cross_entropy)
    kw = dict(log_prior=jnp.log(jnp.asarray(prior, jnp.float32)), tau=tau, label_smoothing=0.1)
    np.testing.assert_allclose(
        f_int(jnp.asarray(x, jnp.float32), jnp.asarray(y), **kw),
        ref.ce_integer(adjusted, y, e=0.1), rtol=1e-5,
    )  # fmt: skip
    np.testing.assert_allclose(
        f_prob(jnp.asarray(x, jnp.float32), jnp.asarray(t, jnp.float32), **kw),
        ref.ce_probs(adjusted, t, e=0.1), rtol=1e-5,
    )  # fmt: skip


def test_logit_adjustment_pushes_towards_rare_classes():
    # The adjusted loss's gradient lowers a frequent class's logit more than
    # the plain loss does, so the unadjusted logits favour rare classes.
    x = jnp.zeros((1, 3))
    y = jnp.array([1])
    prior = jnp.log(jnp.array([0.9, 0.09, 0.01]))
    plain = jax.grad(lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, y).sum())(x)
    adj = jax.grad(
        lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, y, log_prior=prior).sum()
    )(x)
    assert adj[0, 0] > plain[0, 0] and adj[0, 2] < plain[0, 2]


def test_logit_adjustment_shape_error():
    with pytest.raises(ValueError, match=r"`log_prior` must have shape \(3,\)"):
        jaxloss.softmax_cross_entropy_with_integer_labels(
            jnp.zeros((2, 3)), jnp.array([0, 1]), log_prior=jnp.zeros(4)
        )
