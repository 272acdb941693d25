"""Multi-class cross-entropy: seeds, PyTorch semantics, masks, -inf, precision."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from tests import reference as ref
from tests.losses import jl, value_and_grad_of_sum

RNG = np.random.default_rng(1)
CE = jl.softmax_cross_entropy_with_integer_labels


def test_seed_sklearn_log_loss():
    y = jnp.eye(3)[jnp.array([2, 1, 0])]
    p1 = jnp.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]])
    p2 = jnp.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]])
    # sklearn.metrics.log_loss([2, 1, 0], p) for each.
    np.testing.assert_allclose(
        jl.categorical_cross_entropy(p1, y, reduction="mean"), 1.3783888522474517, rtol=1e-6
    )
    np.testing.assert_allclose(
        jl.categorical_cross_entropy(p2, y, reduction="mean"), 0.6391075640678003, rtol=1e-6
    )


def test_seed_pytorch_cross_entropy():
    x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
    y = jnp.array([0, 2])
    # torch.nn.functional.cross_entropy(x, y, reduction="none") and with
    # label_smoothing=0.1, reduction="mean" (PyTorch 2.13.0).
    np.testing.assert_allclose(CE(x, y), [0.09514046, 2.4573412], rtol=1e-6)
    np.testing.assert_allclose(
        CE(x, y, label_smoothing=0.1, reduction="mean"), 1.3495741, rtol=1e-6
    )


def test_two_class_softmax_is_sigmoid():
    x = jnp.asarray(RNG.normal(size=(9,)) * 5, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 2, size=(9,)), jnp.int32)
    two = jnp.stack([x, jnp.zeros_like(x)], -1)
    chex.assert_trees_all_close(
        CE(two, y),
        jl.sigmoid_binary_cross_entropy(x, (y == 0).astype(jnp.float32)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_equals_optax_integer_and_class_mask():
    x = jnp.asarray(RNG.normal(size=(6, 5)) * 2, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 5, size=(6,)), jnp.int32)
    chex.assert_trees_all_close(
        CE(x, y), jax.jit(optax.losses.softmax_cross_entropy_with_integer_labels)(x, y), rtol=1e-6
    )
    mask = jnp.asarray(RNG.uniform(size=(6, 5)) > 0.4).at[jnp.arange(6), y].set(True)
    want = jax.jit(optax.losses.softmax_cross_entropy_with_integer_labels)(x, y, where=mask)
    chex.assert_trees_all_close(CE(x, y, where=mask), want, rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_all_ignored_mean_is_zero_with_zero_grads(weighted):
    x = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
    y = jnp.full((4,), -100)
    kw = dict(ignore_index=-100, reduction="mean", label_smoothing=0.1, z_loss=1e-3)
    if weighted:
        kw["class_weight"] = jnp.array([1.0, 2.0, 3.0])
    f = jax.jit(lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, y, **kw))
    assert f(x) == 0.0
    np.testing.assert_array_equal(jax.jit(jax.grad(f))(x), np.zeros((4, 3)))


def test_ignore_index_inside_class_range():
    x = jnp.asarray(RNG.normal(size=(5, 4)), jnp.float32)
    y = jnp.array([0, 1, 0, 3, 2])
    got = CE(x, y, ignore_index=0, reduction="mean")
    keep = np.asarray(y) != 0
    np.testing.assert_allclose(got, ref.ce_integer(x[keep], y[keep], reduction="mean"), rtol=1e-6)


@pytest.mark.parametrize("bad", [-1, 4, -100, 255])
def test_out_of_range_labels_give_nan(bad):
    x = jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)
    y = jnp.array([1, bad, 2])
    out = np.asarray(CE(x, y))
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()
    assert np.isnan(CE(x, y, reduction="mean"))
    assert np.isnan(jl.softmax_focal_loss_with_integer_labels(x, y)[1])
    # The same label as ignore_index is fine.
    assert np.isfinite(CE(x, y, ignore_index=bad, reduction="mean"))


@pytest.mark.parametrize("smoothing,z", [(0.0, 0.0), (0.1, 1e-3)])
def test_neg_inf_logits_are_absent_classes(smoothing, z):
    inf = jnp.inf
    x = jnp.array([[1.0, -inf, 2.0, 0.5], [-inf, -inf, 0.5, -1.0]])
    y = jnp.array([0, 2])
    f = lambda x: CE(x, y, label_smoothing=smoothing, z_loss=z).sum()  # noqa: E731
    loss = f(x)
    g_rev = jax.jit(jax.grad(f))(x)
    g_fwd = jax.jit(jax.jacfwd(f))(x)
    chex.assert_tree_all_finite((loss, g_rev, g_fwd))
    chex.assert_trees_all_close(g_rev, g_fwd, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(g_rev)[np.isinf(np.asarray(x))], 0.0)
    # Reference: the same loss over the classes present, smoothing share e / C.
    want = 0.0
    for row, target in zip(np.asarray(x, np.float64), np.asarray(y), strict=True):
        present = row[np.isfinite(row)]
        lse = np.log(np.exp(present).sum())
        want += (1 - smoothing) * (lse - row[target]) + smoothing / 4 * (lse - present).sum()
        want += z * lse**2
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_masked_target_class_is_infinite():
    x = jnp.array([[1.0, -jnp.inf, 2.0]])
    assert CE(x, jnp.array([1]))[0] == jnp.inf


def test_all_neg_inf_row_is_nan_unless_masked():
    x = jnp.array([[-jnp.inf, -jnp.inf], [0.0, 1.0]])
    y = jnp.array([0, 1])
    assert np.isnan(CE(x, y)[0])
    keep = jnp.array([False, True])
    f = lambda x: CE(x, y, where=keep, reduction="mean")  # noqa: E731
    chex.assert_tree_all_finite((f(x), jax.grad(f)(x)))


def test_class_axis_layout():
    x = jnp.asarray(RNG.normal(size=(2, 5, 3, 4)), jnp.float32)  # (N, C, H, W)
    y = jnp.asarray(RNG.integers(0, 5, size=(2, 3, 4)), jnp.int32)
    w = jnp.linspace(0.5, 2, 5)
    kw = dict(class_weight=w, label_smoothing=0.1, reduction="mean")
    chex.assert_trees_all_close(
        CE(x, y, axis=1, **kw), CE(jnp.moveaxis(x, 1, -1), y, **kw), rtol=1e-6
    )


def test_z_loss_reference():
    x = jnp.asarray(RNG.normal(size=(6, 5)) * 3, jnp.float32)
    y = jnp.asarray(RNG.integers(0, 5, size=(6,)), jnp.int32)
    w = np.linspace(0.5, 2, 5).astype(np.float32)
    got = CE(x, y, class_weight=w, label_smoothing=0.2, z_loss=1e-2, reduction="mean")
    want = ref.ce_integer(x, y, weight=w, e=0.2, z=1e-2, reduction="mean")
    np.testing.assert_allclose(got, want, rtol=1e-5)
    t = jax.nn.one_hot(y, 5)
    want_p = ref.ce_probs(x, t, weight=w, e=0.2) + 1e-2 * jax.nn.logsumexp(x, -1) ** 2
    np.testing.assert_allclose(
        jl.softmax_cross_entropy(x, t, class_weight=w, label_smoothing=0.2, z_loss=1e-2),
        want_p,
        rtol=1e-5,
    )


def test_per_example_where_equals_indexing():
    x = jnp.asarray(RNG.normal(size=(8, 4)), jnp.float32).at[2].set(jnp.nan)
    y = jnp.asarray(RNG.integers(0, 4, size=(8,)), jnp.int32)
    keep = jnp.array([True, True, False, True, False, True, True, True])
    w = jnp.array([1.0, 2.0, 0.5, 1.5])
    for fn, lab in ((CE, y), (jl.softmax_cross_entropy, jax.nn.one_hot(y, 4))):
        kw = dict(class_weight=w, label_smoothing=0.1, reduction="mean")
        f = lambda x, fn=fn, lab=lab, kw=kw: fn(x, lab, where=keep, **kw)  # noqa: E731
        np.testing.assert_allclose(f(x), fn(x[keep], lab[keep], **kw), rtol=1e-6)
        g = jax.grad(f)(x)
        chex.assert_tree_all_finite(g)
        np.testing.assert_array_equal(g[~np.asarray(keep)], 0.0)


EXTREME = {jnp.float32: 1e30, jnp.bfloat16: 1e30, jnp.float16: 6e4}


@pytest.mark.parametrize("dtype", list(EXTREME))
@pytest.mark.parametrize(
    "name",
    [
        "softmax_cross_entropy_with_integer_labels",
        "softmax_cross_entropy",
        "softmax_focal_loss",
        "softmax_focal_loss_with_integer_labels",
    ],
)
def test_extreme_logits_finite(name, dtype):
    big = EXTREME[dtype]
    x = jnp.asarray([[big, -big, 0.0], [-big, big, 1.0], [0.0, 1.0, 2.0]], dtype)
    y = jnp.array([1, 1, 2])
    labels = y if "integer" in name else jax.nn.one_hot(y, 3)
    kw = {"gamma": 0.5} if "focal" in name else {"label_smoothing": 0.1}
    fn = getattr(jaxloss, name)
    loss, g = jax.jit(value_and_grad_of_sum(lambda x: fn(x, labels, **kw)))(x)
    assert loss.dtype == jnp.float32 and g.dtype == dtype
    chex.assert_tree_all_finite((loss, g))


def test_categorical_clamps_and_grad_finite_at_zero():
    p = jnp.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    t = jnp.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(jl.categorical_cross_entropy(p, t), [100.0, 0.0])
    g = jax.grad(lambda p: jl.categorical_cross_entropy(p, t).sum())(p)
    chex.assert_tree_all_finite(g)
    assert g[0, 0] == -1e12  # PyTorch's floor for 1 / p


def test_z_loss_large_logits_and_traced_zero():
    x = jnp.full((2, 3), 1e20, jnp.float32)
    y = jnp.array([0, 1])
    f = jax.jit(lambda x, z: jaxloss.softmax_cross_entropy_with_integer_labels(x, y, z_loss=z))
    np.testing.assert_allclose(
        f(x, jnp.float32(0.0)), np.log(3.0), rtol=1e-6
    )  # traced 0: no 0 * inf
    # (z * lse) * lse: finite where lse ** 2 = 1e40 alone would overflow.
    np.testing.assert_allclose(f(x, jnp.float32(1e-4)), 1e-4 * 1e40, rtol=1e-5)


@pytest.mark.parametrize(
    "name",
    [
        "softmax_cross_entropy",
        "softmax_cross_entropy_with_integer_labels",
        "categorical_cross_entropy",
        "softmax_focal_loss",
        "softmax_focal_loss_with_integer_labels",
    ],
)
def test_class_mask_equals_dropping_the_class(name):
    # Class 1 masked everywhere; no target puts mass on it.
    x = jnp.asarray(RNG.normal(size=(6, 4)) * 3, jnp.float32)
    yi = jnp.array([0, 2, 3, 0, 2, 3])
    t = jnp.asarray(RNG.dirichlet(np.ones(4), size=6), jnp.float32).at[:, 1].set(0.0)
    t = t / t.sum(-1, keepdims=True)
    keep = np.array([0, 2, 3])
    mask = jnp.broadcast_to(jnp.array([True, False, True, True]), x.shape)
    kw = {"gamma": 0.5} if "focal" in name else {"class_weight": jnp.array([0.5, 1.0, 2.0, 1.5])}
    if name == "categorical_cross_entropy":
        x = jax.nn.softmax(x)
    fn = getattr(jl, name)
    if "integer" in name:
        labels, dropped = yi, jnp.searchsorted(jnp.asarray(keep), yi)
    else:
        labels, dropped = t, t[:, keep]
    kw_dropped = {**kw, "class_weight": kw["class_weight"][keep]} if "class_weight" in kw else kw
    got, g = jax.jit(value_and_grad_of_sum(lambda x: fn(x, labels, where=mask, **kw)))(x)
    want = fn(x[:, keep], dropped, **kw_dropped)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    chex.assert_tree_all_finite(g)
    np.testing.assert_array_equal(g[:, 1], 0.0)


def test_gradient_with_respect_to_soft_labels_equals_optax():
    # Distillation differentiates through the targets; a target of exactly 0
    # still has gradient lse - x_c (optax's -log_softmax is the reference).
    x = jax.random.normal(jax.random.key(3), (5, 7)) * 4
    t = jax.nn.softmax(jax.random.normal(jax.random.key(4), (5, 7)) * 3, -1)
    t = t.at[:, 2].set(0.0).at[1].set(jnp.eye(7)[4])  # exact zeros, a one-hot row

    def ours(x, t):
        return jaxloss.softmax_cross_entropy(x, t, reduction="sum")

    def theirs(x, t):
        return jnp.sum(optax.losses.softmax_cross_entropy(x, t))

    got = jax.jit(jax.grad(ours, argnums=(0, 1)))(x, t)
    want = jax.jit(jax.grad(theirs, argnums=(0, 1)))(x, t)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(got[1], -jax.nn.log_softmax(x), rtol=1e-5, atol=1e-6)


def test_gradient_with_respect_to_class_weights():
    # Both losses are linear in the weights, so d loss / d w_c is the
    # reference loss with the weights set to the c-th unit vector; reverse
    # and forward mode both.
    c = 6
    x = RNG.normal(size=(5, c)) * 3
    y = np.array([0, 5, 2, 2, 3])
    t = np.asarray(jax.nn.softmax(RNG.normal(size=(5, c)) * 2, -1))
    w = np.linspace(0.5, 2.0, c)

    def integer(w):
        return CE(x, y, class_weight=w, label_smoothing=0.2, reduction="sum")

    def probs(w):
        return jl.softmax_cross_entropy(x, t, class_weight=w, label_smoothing=0.1, reduction="sum")

    got = jax.jit(lambda w: [f(w) for g in (jax.grad, jax.jacfwd) for f in (g(integer), g(probs))])(
        jnp.asarray(w, jnp.float32)
    )
    unit = np.eye(c)
    want_integer = [ref.ce_integer(x, y, weight=u, e=0.2, reduction="sum") for u in unit]
    want_probs = [ref.ce_probs(x, t, weight=u, e=0.1, reduction="sum") for u in unit]
    want = [np.array(want_integer), np.array(want_probs)] * 2
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)


def test_neg_inf_rows_beside_finite_rows_with_weights_under_vmap():
    # The -inf guard runs only when a row needs it; rows with and without -inf
    # logits in one batch, with class weights and smoothing, batched and under
    # vmap, against the float64 loss over the classes present.
    inf, c, e = np.inf, 5, 0.2
    x = np.array(
        [[1.0, 3.0, 2.0, 0.5, -1.0], [2.0, -inf, 0.5, -inf, 1.0], [0.3, 0.1, -2.0, 4.0, 1.0]]
    )
    y = np.array([0, 4, 3])
    t = np.where(np.isfinite(x), np.exp(RNG.normal(size=x.shape)), 0.0)
    t = t / t.sum(-1, keepdims=True)  # no target mass on absent classes (that is +inf)
    w = np.linspace(0.5, 2.0, c)

    def integer(x, y):
        return CE(x, y, class_weight=w, label_smoothing=e)

    def probs(x, t):
        return jl.softmax_cross_entropy(x, t, class_weight=w, label_smoothing=e)

    @jax.jit
    def run(x):
        losses = [integer(x, y), jax.vmap(integer)(x, y), probs(x, t), jax.vmap(probs)(x, t)]
        grads = [
            jax.grad(lambda x: integer(x, y).sum())(x),
            jax.grad(lambda x: probs(x, t).sum())(x),
        ]
        return losses, grads

    losses, grads = run(jnp.asarray(x, jnp.float32))
    want_int, want_probs = [], []
    for row, target, tr in zip(x, y, t, strict=True):
        p = np.isfinite(row)
        lse = np.log(np.exp(row[p]).sum())
        smooth = e / c * (w[p] * (lse - row[p])).sum()
        want_int.append((1 - e) * w[target] * (lse - row[target]) + smooth)
        tt = (1 - e) * tr + e / c
        want_probs.append((w * tt)[p] @ (lse - row[p]))
    chex.assert_trees_all_close(
        losses, [np.array(v) for v in (want_int, want_int, want_probs, want_probs)], rtol=1e-5
    )
    chex.assert_tree_all_finite(grads)
    for g in grads:
        np.testing.assert_array_equal(np.asarray(g)[np.isinf(x)], 0.0)


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "softmax_focal_loss"])
@pytest.mark.parametrize("absent_by", ["neg_inf", "class_mask"])
def test_target_mass_on_an_absent_class_is_infinite(name, absent_by):
    # A prediction that gives the target probability 0 is never plausible:
    # +inf, as the integer-label loss (and PyTorch, optax) gives for a label
    # whose logit is -inf. Only the smoothing share of an absent class is dropped.
    fn = getattr(jl, name)
    x = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    t = jnp.array([[0.4, 0.3, 0.3], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    keep = jnp.array([False, True, True])[None, :] | (jnp.arange(3) == 1)[:, None]
    kw = {"where": keep} if absent_by == "class_mask" else {}
    if absent_by == "neg_inf":
        x = jnp.where(keep, x, -jnp.inf)
    for e in (0.0, 0.1):
        out = fn(x, t, label_smoothing=e, **kw)
        assert out[0] == jnp.inf and out[2] == jnp.inf, out
        assert np.isfinite(out[1])
    # Targets without mass there: finite, the smoothing share dropped.
    t_ok = jnp.array([[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    f = lambda x: fn(x, t_ok, label_smoothing=0.1, **kw).sum()  # noqa: E731
    loss, g_rev, g_fwd = jax.jit(lambda x: (f(x), jax.grad(f)(x), jax.jacfwd(f)(x)))(x)
    chex.assert_tree_all_finite((loss, g_rev, g_fwd))
    chex.assert_trees_all_close(g_rev, g_fwd, rtol=1e-5, atol=1e-7)
    batched = jax.jit(jax.vmap(lambda x, t, k: fn(x, t, where=k) if kw else fn(x, t)))(
        x, t, jnp.broadcast_to(keep, x.shape)
    )
    assert batched[0] == jnp.inf and np.isfinite(batched[1])


def test_issue_cases_reported_against_pytorch():
    # The reported row: 0.41589 and 0.0 before; +inf as the integer label gives.
    x = jnp.array([[-jnp.inf, 0.0, 0.0]])
    assert jaxloss.softmax_cross_entropy(x, jnp.array([[0.4, 0.3, 0.3]]))[0] == jnp.inf
    assert jaxloss.softmax_cross_entropy(x, jnp.array([[1.0, 0.0, 0.0]]))[0] == jnp.inf
    assert jaxloss.softmax_cross_entropy_with_integer_labels(x, jnp.array([0]))[0] == jnp.inf
    # d/dt of -sum t log p is -log p, also where t is exactly 0.
    p = jnp.array([0.2, 0.3, 0.5])
    g = jax.grad(lambda t: jaxloss.categorical_cross_entropy(p, t).sum())(
        jnp.array([0.0, 0.0, 1.0])
    )
    np.testing.assert_allclose(g, -np.log([0.2, 0.3, 0.5]), rtol=1e-6)
