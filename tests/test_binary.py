"""Binary and multi-label losses: seeds, optax, references, extremes, masks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from tests import reference as ref
from tests.losses import jl, value_and_grad_of_sum

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------
# Seed examples users compare with (values from PyTorch's documentation and
# forum threads, re-derived in tests/data by make_fixtures.py).


def test_seed_multilabel_mean_bce():
    x = jnp.array(
        [[-0.8858, 0.3241, 0.9456], [1.4887, 1.8076, -0.0565], [-1.6529, -1.8539, 0.6756]]
    )
    y = jnp.array([[0.0, 1, 1], [1, 1, 1], [0, 0, 0]])
    via_probs = jl.binary_cross_entropy(jax.nn.sigmoid(x), y, reduction="mean")
    via_logits = jl.sigmoid_binary_cross_entropy(x, y, reduction="mean")
    assert round(float(via_probs), 4) == 0.4114
    assert round(float(via_logits), 4) == 0.4114


def test_seed_bce_by_hand():
    p = jnp.array([[0.4963, 0.7682, 0.0885], [0.1320, 0.3074, 0.6341]])
    y = jnp.array([[0.0, 0, 1], [1, 0, 0]])
    expected = np.array([[0.6857, 1.4620, 2.4250], [2.0247, 0.3673, 1.0053]])
    # The published values came from unrounded inputs printed to 4 digits: they
    # agree to the inputs' rounding (the PyTorch fixture on these exact inputs
    # holds the values to rtol 1e-5).
    np.testing.assert_allclose(jl.binary_cross_entropy(p, y), expected, atol=3e-4)
    assert round(float(jl.binary_cross_entropy(p, y, reduction="mean")), 4) == 1.3283


def test_seed_pos_weight():
    # torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0]), reduction="none")
    x, y = jnp.array([2.0, -1.0, 0.5]), jnp.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        jl.sigmoid_binary_cross_entropy(x, y), [0.126928, 0.313262, 0.474077], rtol=1e-5
    )
    np.testing.assert_allclose(
        jl.sigmoid_binary_cross_entropy(x, y, pos_weight=jnp.array([3.0])),
        [0.380784, 0.313262, 1.422231],
        rtol=1e-5,
    )


# ---------------------------------------------------------------------------
# Drop-in for optax, and the float64 reference with every option.


def test_equals_optax():
    shape = (2, 3, 4)
    x = jnp.asarray(RNG.normal(size=shape) * 4, jnp.float32)
    y = jnp.asarray(RNG.uniform(size=shape), jnp.float32)
    optax_sbce = jax.jit(optax.losses.sigmoid_binary_cross_entropy)
    optax_focal = jax.jit(optax.losses.sigmoid_focal_loss)
    chex.assert_trees_all_close(jl.sigmoid_binary_cross_entropy(x, y), optax_sbce(x, y), rtol=1e-6)
    for kw in ({}, {"alpha": 0.25}, {"gamma": 0.5, "alpha": 0.9}):
        chex.assert_trees_all_close(
            jl.sigmoid_focal_loss(x, y, **kw), optax_focal(x, y, **kw), rtol=1e-5
        )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_reference_all_options(reduction):
    n, c = 6, 3
    x = RNG.normal(size=(n, c)).astype(np.float32) * 3
    p = (1 / (1 + np.exp(-x))).astype(np.float32)
    y = RNG.uniform(size=(n, c)).astype(np.float32)
    w = RNG.uniform(0.2, 2, size=(n, c)).astype(np.float32)
    pw = RNG.uniform(0.5, 3, size=(c,)).astype(np.float32)
    alpha = np.array([0.2, 0.5, 0.8], np.float32)
    mask = RNG.uniform(size=(n, c)) > 0.3
    e = 0.1
    got = {
        "bce": jl.binary_cross_entropy(
            p, y, weight=w, label_smoothing=e, reduction=reduction, where=mask
        ),
        "sbce": jl.sigmoid_binary_cross_entropy(
            x, y, weight=w, pos_weight=pw, label_smoothing=e, reduction=reduction, where=mask
        ),
        "bfl": jl.binary_focal_loss(
            p,
            y,
            gamma=1.5,
            alpha=alpha,
            weight=w,
            label_smoothing=e,
            reduction=reduction,
            where=mask,
        ),
        "sfl": jl.sigmoid_focal_loss(
            x,
            y,
            gamma=0.5,
            alpha=alpha,
            weight=w,
            label_smoothing=e,
            reduction=reduction,
            where=mask,
        ),
    }
    want = {
        "bce": ref.bce(p, y, w, e),
        "sbce": ref.bce_logits(x, y, w, pw, e),
        "bfl": w * ref.focal_probs(p, y, 1.5, alpha, e),
        "sfl": w * ref.focal_logits(x, y, 0.5, alpha, e),
    }
    for k in got:
        chex.assert_trees_all_close(
            got[k], ref.reduce(want[k], reduction, mask).astype(np.float32), rtol=1e-5
        )


# ---------------------------------------------------------------------------
# Extremes: finite loss and gradient at any magnitude, dtype rules.

EXTREMES = {
    jnp.float32: [1e4, -1e4, 3e38, -3e38, 0.0],
    jnp.bfloat16: [1e4, -1e4, 3e38, -3e38, 0.0],
    jnp.float16: [6e4, -6e4, 1e3, -1e3, 0.0],
}


@pytest.mark.parametrize("dtype", list(EXTREMES))
@pytest.mark.parametrize("name", ["sigmoid_binary_cross_entropy", "sigmoid_focal_loss"])
def test_extreme_logits_finite(name, dtype):
    fn = getattr(jaxloss, name)
    x = jnp.asarray(np.repeat(EXTREMES[dtype], 3), dtype)
    y = jnp.tile(jnp.array([0.0, 1.0, 0.3]), len(EXTREMES[dtype]))
    # (pos_weight < 1 keeps the true loss at -3e38 below float32's max)
    kw = {"gamma": 0.5} if "focal" in name else {"pos_weight": jnp.float32(0.5)}
    loss, g = jax.jit(value_and_grad_of_sum(lambda x: fn(x, y, **kw)))(x)
    assert loss.dtype == jnp.float32 and g.dtype == dtype
    chex.assert_tree_all_finite((loss, g))
    # The value at the extremes is the exact one, computed in float64.
    want = ref.focal_logits(np.asarray(x, np.float64), y, 0.5) if "focal" in name else None
    if want is not None:
        np.testing.assert_allclose(loss, want, rtol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss"])
def test_probabilities_at_0_and_1(name, dtype):
    fn = getattr(jaxloss, name)
    p = jnp.asarray([0.0, 1.0, 0.0, 1.0, 0.5, 1e-7], dtype)
    y = jnp.asarray([0.0, 0.0, 1.0, 1.0, 0.2, 1.0])
    kw = {"gamma": 0.25} if "focal" in name else {}
    loss, g = jax.jit(value_and_grad_of_sum(lambda p: fn(p, y, **kw)))(p)
    chex.assert_tree_all_finite((loss, g))
    assert loss.dtype == jnp.float32 and g.dtype == dtype
    # PyTorch's clamp of each log at -100; the focal factor is 1 there.
    np.testing.assert_allclose(loss[:4], [0.0, 100.0, 100.0, 0.0])


def test_exact_limits_at_infinity():
    x = jnp.array([jnp.inf, jnp.inf, -jnp.inf, -jnp.inf])
    y = jnp.array([1.0, 0.0, 1.0, 0.0])
    out = jl.sigmoid_binary_cross_entropy(x, y, pos_weight=jnp.array(2.0))
    np.testing.assert_array_equal(out, [0.0, jnp.inf, jnp.inf, 0.0])
    np.testing.assert_array_equal(jl.sigmoid_focal_loss(x, y), [0.0, jnp.inf, jnp.inf, 0.0])
    np.testing.assert_array_equal(
        jl.sigmoid_binary_cross_entropy(x, y), [0.0, jnp.inf, jnp.inf, 0.0]
    )


@pytest.mark.parametrize("pos_weight", [None, 2.5])
@pytest.mark.parametrize("mode", [jax.jacrev, jax.jacfwd])
def test_logit_gradient_at_zero_and_infinity(pos_weight, mode):
    # d/dx = (1 - y) sigmoid(x) - pw * y * sigmoid(-x), from the definition;
    # exact at the kink x = 0 and finite at x = +-inf in both AD modes.
    x = jnp.array([0.0, 0.0, 0.0, jnp.inf, jnp.inf, -jnp.inf, -jnp.inf, 1e30, -1e30])
    y = jnp.array([0.0, 1.0, 0.3, 1.0, 0.0, 1.0, 0.0, 0.7, 0.7])
    pw = 1.0 if pos_weight is None else pos_weight
    kw = {} if pos_weight is None else {"pos_weight": jnp.array(pos_weight)}
    g = jnp.diagonal(mode(lambda x: jl.sigmoid_binary_cross_entropy(x, y, **kw))(x))
    s = 0.5 * (1 + np.tanh(np.asarray(x, np.float64) / 2))  # sigmoid, no overflow
    want = (1 - np.asarray(y)) * s - pw * np.asarray(y) * (1 - s)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-7)


def test_half_precision_computed_in_float32():
    x32 = jnp.asarray(RNG.normal(size=(64,)) * 5, jnp.float32)
    y = jnp.asarray(RNG.uniform(size=(64,)), jnp.float32)
    for dtype in (jnp.bfloat16, jnp.float16):
        xh = x32.astype(dtype)
        got = jl.sigmoid_binary_cross_entropy(xh, y)
        # Same as float32 on the rounded inputs: the upcast happens first.
        chex.assert_trees_all_close(
            got, jl.sigmoid_binary_cross_entropy(xh.astype(jnp.float32), y), rtol=1e-6
        )


# ---------------------------------------------------------------------------
# where, weight and reduction rules.


def test_mean_over_nothing_is_zero_with_zero_grad():
    x = jnp.array([1.0, jnp.nan, -2.0])
    y = jnp.array([1.0, 0.0, 0.0])
    none = jnp.zeros(3, bool)
    for fn in (jl.sigmoid_binary_cross_entropy, jl.sigmoid_focal_loss):
        f = lambda x, fn=fn: fn(x, y, reduction="mean", where=none)  # noqa: E731
        assert f(x) == 0.0
        np.testing.assert_array_equal(jax.grad(f)(x), jnp.zeros(3))


def test_masked_nan_inputs_do_not_leak():
    x = jnp.array([1.0, jnp.nan, -2.0])
    p = jnp.array([0.3, jnp.nan, 0.9])
    y = jnp.array([1.0, 0.0, 0.0])
    keep = jnp.array([True, False, True])
    for fn, a in ((jl.sigmoid_binary_cross_entropy, x), (jl.binary_cross_entropy, p)):
        f = lambda a, fn=fn: fn(a, y, reduction="mean", where=keep)  # noqa: E731
        g = jax.grad(f)(a)
        chex.assert_tree_all_finite((f(a), g))
        assert g[1] == 0.0
        np.testing.assert_allclose(f(a), fn(a[keep], y[keep], reduction="mean"), rtol=1e-6)


def test_weight_mean_divides_by_count_as_pytorch():
    x, y = jnp.array([1.0, -1.0]), jnp.array([1.0, 1.0])
    w = jnp.array([2.0, 0.0])
    total = jl.sigmoid_binary_cross_entropy(x, y, weight=w, reduction="sum")
    assert jl.sigmoid_binary_cross_entropy(x, y, weight=w, reduction="mean") == total / 2


def test_zero_weight_removes_infinite_loss():
    x, y = jnp.array([jnp.inf, 0.0]), jnp.array([0.0, 1.0])
    out = jl.sigmoid_binary_cross_entropy(x, y, weight=jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(out, [0.0, np.log(2)], rtol=1e-6)


def test_label_smoothing_keras():
    # Keras: y * (1 - e) + e / 2, so e = 1 gives the constant target 1/2.
    x = jnp.asarray(RNG.normal(size=(5,)), jnp.float32)
    y = jnp.array([0.0, 1, 1, 0, 1])
    chex.assert_trees_all_close(
        jl.sigmoid_binary_cross_entropy(x, y, label_smoothing=1.0),
        jl.sigmoid_binary_cross_entropy(x, jnp.full(5, 0.5)),
    )


def test_integer_and_bool_labels_accepted():
    x = jnp.array([0.5, -0.5])
    want = jl.sigmoid_binary_cross_entropy(x, jnp.array([1.0, 0.0]))
    chex.assert_trees_all_close(jl.sigmoid_binary_cross_entropy(x, jnp.array([1, 0])), want)
    chex.assert_trees_all_close(jl.sigmoid_binary_cross_entropy(x, jnp.array([True, False])), want)


def test_pos_weight_per_class_broadcasts_over_batch():
    x = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
    y = jnp.asarray(RNG.integers(0, 2, size=(4, 3)), jnp.float32)
    pw = jnp.array([1.0, 2.0, 5.0])
    got = jl.sigmoid_binary_cross_entropy(x, y, pos_weight=pw)
    np.testing.assert_allclose(got, ref.bce_logits(x, y, pos_weight=np.asarray(pw)), rtol=1e-5)
