"""The losses beyond cross-entropy and focal: NLL, PolyLoss, the KL
divergences, the margin losses, sparsemax, Dice and Tversky. Against optax,
float64 formulas and their own definitions; the golden values from PyTorch,
Keras, optax, entmax and MONAI are fixtures (tests/data)."""

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


# --------------------------------------------------------------------------
# KL divergence, the margin losses, sparsemax, Dice and Tversky. Their values
# and gradients against PyTorch, Keras, optax, entmax and MONAI are fixtures
# (tests/data); here: their edge cases against float64 formulas.


def test_kl_zero_targets_give_zero_and_finite_gradients():
    log_p = jnp.log(jnp.array([[0.5, 0.3, 0.2], [0.0, 0.6, 0.4]]))  # a -inf log-probability
    t = jnp.array([[0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])
    f = lambda lp, t: jaxloss.kl_divergence(lp, t).sum()  # noqa: E731
    value = jaxloss.kl_divergence(log_p, t)
    want = [np.sum([0.5 * np.log(0.5 / 0.3), 0.5 * np.log(0.5 / 0.2)]),
            np.sum([0.5 * np.log(0.5 / 0.6), 0.5 * np.log(0.5 / 0.4)])]  # fmt: skip
    np.testing.assert_allclose(value, want, rtol=1e-5)
    g_lp, g_t = jax.grad(f, argnums=(0, 1))(log_p, t)
    chex.assert_tree_all_finite((g_lp, g_t))
    np.testing.assert_allclose(g_lp, -t)
    # d/dt at t = 0: the derivative at t = 1e-12, log(1e-12) + 1 - log p.
    np.testing.assert_allclose(g_t[0, 0], np.log(1e-12) + 1 - np.log(0.5), rtol=1e-6)
    # Mass where log p = -inf: +inf.
    assert jaxloss.kl_divergence(log_p, jnp.array([[0.2, 0.4, 0.4], [0.2, 0.4, 0.4]]))[1] == jnp.inf
    # Log targets of -inf: 0 with zero gradients (optax and PyTorch: NaN).
    g = jax.grad(lambda lt: jaxloss.kl_divergence_with_log_targets(log_p[:1], lt).sum())(
        jnp.log(t[:1])
    )
    chex.assert_tree_all_finite(g)
    assert g[0, 0] == 0
    np.testing.assert_allclose(
        jaxloss.kl_divergence_with_log_targets(log_p[:1], jnp.log(t[:1])), value[:1], rtol=1e-6
    )


def test_kl_class_mask_is_optax_where():
    rng = np.random.default_rng(3)
    log_p = jax.nn.log_softmax(jnp.asarray(rng.normal(size=(4, 5)), jnp.float32))
    t = jnp.asarray(rng.dirichlet(np.ones(5), size=4), jnp.float32)
    keep = jnp.asarray(rng.uniform(size=(4, 5)) > 0.3)
    want = optax.losses.kl_divergence(log_p, t, where=keep)
    np.testing.assert_allclose(jaxloss.kl_divergence(log_p, t, where=keep), want, rtol=1e-6)


def test_binary_margin_labels_zero_reads_as_minus_one():
    s = jnp.array([2.0, 0.3, -0.5, -3.0, 0.7])
    signs = jnp.array([1.0, -1.0, 1.0, -1.0, -1.0])
    for fn in (jaxloss.hinge_loss, jaxloss.squared_hinge_loss, jaxloss.perceptron_loss):
        chex.assert_trees_all_close(fn(s, (signs + 1) / 2), fn(s, signs))
    m = np.asarray(signs * s, np.float64)
    np.testing.assert_allclose(jaxloss.squared_hinge_loss(s, signs), np.maximum(0, 1 - m) ** 2,
                               rtol=1e-6)  # fmt: skip


def test_multiclass_hinge_one_hot_equals_integer_labels():
    rng = np.random.default_rng(4)
    s = jnp.asarray(rng.normal(size=(6, 5)) * 2, jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, size=6), jnp.int32)
    for fn in (jaxloss.multiclass_hinge_loss, jaxloss.multiclass_perceptron_loss):
        chex.assert_trees_all_close(fn(s, jax.nn.one_hot(y, 5)), fn(s, y), rtol=1e-6)


def test_margin_losses_with_absent_classes():
    inf = jnp.inf
    s = jnp.array([[2.0, -inf, 0.5], [1.0, 0.0, -inf]])
    y = jnp.array([0, 2])
    for fn in (jaxloss.multiclass_hinge_loss, jaxloss.multiclass_perceptron_loss,
               jaxloss.multi_margin_loss, jaxloss.multiclass_sparsemax_loss):  # fmt: skip
        out = fn(s, y)
        assert np.isfinite(out[0]) and out[1] == inf, fn.__name__
        g = jax.grad(lambda s, fn=fn: fn(s, y)[0])(s)
        chex.assert_tree_all_finite(g)
        assert g[0, 1] == 0, fn.__name__  # an absent class gets no gradient
    # Absent classes leave the max and the sum: the loss of the classes left.
    np.testing.assert_allclose(jaxloss.multiclass_hinge_loss(s[:1], y[:1]), [0.0])  # 2 > 0.5 + 1
    np.testing.assert_allclose(jaxloss.multi_margin_loss(s[:1], y[:1], margin=2.0), [0.5 / 3])


def _sparsemax64(z):
    """The simplex projection by sorting (Martins and Astudillo, Algorithm 1)."""
    zs = np.sort(z)[::-1]
    k = np.arange(1, z.size + 1)
    top = k[1 + k * zs > np.cumsum(zs)][-1]
    tau = (np.cumsum(zs)[top - 1] - 1) / top
    return np.maximum(z - tau, 0)


def test_sparsemax_loss_is_the_fenchel_formula_with_a_sparse_gradient():
    rng = np.random.default_rng(5)
    for scale in (0.1, 1.0, 10.0, 1e4):
        s = np.asarray(rng.normal(size=(8, 7)) * scale, np.float32)
        y = rng.integers(0, 7, size=8)
        loss, g = jax.value_and_grad(lambda s, y=y: jaxloss.multiclass_sparsemax_loss(s, y).sum())(
            jnp.asarray(s)
        )
        want, want_g = [], []
        for z, label in zip(s.astype(np.float64), y, strict=True):
            p = _sparsemax64(z)
            want.append(p @ z + (1 - p @ p) / 2 - z[label])
            want_g.append(p - np.eye(7)[label])
        np.testing.assert_allclose(loss, np.sum(want), rtol=1e-5)
        np.testing.assert_allclose(g, np.asarray(want_g), atol=1e-5)


def test_dice_where_masks_pixels_and_empty_classes_are_a_match():
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)  # [B, H, C]
    t = jax.nn.one_hot(jnp.asarray(rng.integers(0, 3, size=(2, 6))), 3)
    keep = jnp.asarray(rng.uniform(size=(2, 6)) > 0.4).at[:, 0].set(True)
    got = jaxloss.dice_loss(x, t, where=keep)
    for b in range(2):  # the masked pixels removed
        k = np.asarray(keep[b])
        want = jaxloss.dice_loss(x[b : b + 1, k], t[b : b + 1, k])
        np.testing.assert_allclose(got[b], want[0], rtol=1e-6)
    # smooth=0 with a class neither predicted nor present: 0, not NaN.
    probs = jnp.array([[[1.0, 0.0], [1.0, 0.0]]])
    out, g = jax.value_and_grad(
        lambda p: jaxloss.dice_loss(p, probs, apply_softmax=False, smooth=0.0).sum()
    )(probs)
    np.testing.assert_allclose(out, 0.0)
    chex.assert_tree_all_finite(g)


def test_extreme_scores_give_finite_losses_and_gradients():
    """Scores of +-3e38 (6e4 in float16) where the true loss fits the dtype."""
    for dtype, big in ((jnp.float32, 3e38), (jnp.bfloat16, 3e38), (jnp.float16, 6e4)):
        s = jnp.array([[big, -big, 0.0], [-1e4, big, -big]], dtype)
        y = jnp.array([0, 1])
        cases = [
            (jaxloss.hinge_loss, (s, jnp.array([[1.0, 0, 1], [0, 1, 0]]))),
            (jaxloss.perceptron_loss, (s, jnp.array([[1.0, 0, 0], [1, 1, 0]]))),
            (jaxloss.multiclass_hinge_loss, (s, y)),
            (jaxloss.multiclass_perceptron_loss, (s, y)),
            (jaxloss.multi_margin_loss, (s, y)),
            (jaxloss.multiclass_sparsemax_loss, (s, y)),
            (jaxloss.dice_loss, (s, jax.nn.one_hot(y, 3))),
            (
                jaxloss.kl_divergence,
                (
                    jax.nn.log_softmax(s.astype(jnp.float32)).astype(dtype),
                    jnp.array([[1.0, 0, 0], [0, 1, 0]]),
                ),
            ),  # fmt: skip
        ]
        for fn, (a, b) in cases:
            value, g = jax.value_and_grad(lambda a, fn=fn, b=b: fn(a, b).sum())(a)
            chex.assert_tree_all_finite((value, g), custom_message=f"{fn.__name__} {dtype}")
            assert value.dtype == jnp.float32 and g.dtype == dtype


def test_errors_name_the_argument():
    s, y = jnp.zeros((2, 3)), jnp.array([0, 1])
    with pytest.raises(ValueError, match="`p` must be 1 or 2"):
        jaxloss.multi_margin_loss(s, y, p=3)
    with pytest.raises(ValueError, match="`axis` .* includes the class axis"):
        jaxloss.dice_loss(jnp.zeros((2, 4, 3)), jnp.zeros((2, 4, 3)), axis=(1, 2))
    with pytest.raises(ValueError, match="`labels` has shape \\(2, 1, 4\\) but `logits`"):
        jaxloss.dice_loss(jnp.zeros((2, 4, 3)), jnp.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match="`class_weights` must have shape \\(3,\\)"):
        jaxloss.tversky_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), class_weights=jnp.ones(2))
    with pytest.raises(TypeError, match="take per-class weights as `class_weight`"):
        jaxloss.softmax_cross_entropy(s, s, class_weights=jnp.ones(3))
    with pytest.raises(ValueError, match="`labels` must be -1 or 1"):
        jaxloss.checked(jaxloss.hinge_loss)(jnp.zeros(3), jnp.array([1.0, 2.0, -1.0]))
    with pytest.raises(ValueError, match="`log_targets` must be log-probabilities"):
        jaxloss.checked(jaxloss.kl_divergence_with_log_targets)(s, s.at[0, 0].set(0.5))
    with pytest.raises(ValueError, match="`targets` must lie in \\[0, 1\\]"):
        jaxloss.checked(jaxloss.kl_divergence)(s, s.at[0, 0].set(1.5))
    # Masked entries are not checked.
    jaxloss.checked(jaxloss.kl_divergence)(s, s.at[0, 0].set(1.5), where=jnp.array([False, True]))
