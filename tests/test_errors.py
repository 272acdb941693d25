"""Static errors name the arguments and shapes; checked() catches bad values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss

X2 = jnp.zeros((4, 3))
YI = jnp.zeros((4,), jnp.int32)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        # Shapes: named arguments and shapes, hints to the right function.
        (
            lambda: jaxloss.sigmoid_binary_cross_entropy(jnp.zeros((4, 1)), jnp.zeros((4,))),
            ValueError,
            r"`labels` has shape \(4,\), which does not broadcast to the shape \(4, 1\) of `logits`",
        ),
        (
            lambda: jaxloss.binary_cross_entropy(jnp.zeros(3), jnp.zeros(3), weight=jnp.ones(2)),
            ValueError,
            r"`weight` has shape \(2,\).*\(3,\) of `probs`",
        ),
        (
            lambda: jaxloss.sigmoid_binary_cross_entropy(X2, X2, pos_weight=jnp.ones(4)),
            ValueError,
            r"`pos_weight` has shape \(4,\)",
        ),
        (
            lambda: jaxloss.softmax_cross_entropy(X2, YI),
            ValueError,
            r"`labels` has shape \(4,\) but `logits` has shape \(4, 3\).*softmax_cross_entropy_with_integer_labels",
        ),
        (
            lambda: jaxloss.softmax_cross_entropy_with_integer_labels(
                X2, jnp.zeros((4, 3), jnp.int32)
            ),
            ValueError,
            r"`labels` has shape \(4, 3\) but `logits` has shape \(4, 3\); integer labels have the per-example shape \(4,\)",
        ),
        (
            lambda: jaxloss.softmax_cross_entropy_with_integer_labels(
                X2, YI, class_weight=jnp.ones(4)
            ),
            ValueError,
            r"`class_weight` must have shape \(3,\).*got shape \(4,\)",
        ),
        (
            lambda: jaxloss.softmax_focal_loss(X2, X2, alpha=jnp.ones((2, 3))),
            ValueError,
            r"`alpha` must have shape \(3,\)",
        ),
        (
            lambda: jaxloss.softmax_cross_entropy_with_integer_labels(
                X2, YI, where=jnp.ones(3, bool)
            ),
            ValueError,
            r"`where` has shape \(3,\).*per-example mask has shape \(4,\)",
        ),
        (
            lambda: jaxloss.softmax_cross_entropy_with_integer_labels(X2, YI, axis=2),
            ValueError,
            r"`axis`=2 is out of range for `logits` with 2 dimension",
        ),
        # Dtype kinds.
        (
            lambda: jaxloss.softmax_cross_entropy_with_integer_labels(X2, jnp.zeros(4)),
            TypeError,
            r"`labels` must hold integer class indices; got dtype float32.*softmax_cross_entropy",
        ),
        (
            lambda: jaxloss.softmax_cross_entropy_with_integer_labels(
                jnp.zeros((4, 3), jnp.int32), YI
            ),
            TypeError,
            r"`logits` must have a floating-point dtype; got int32",
        ),
        (
            lambda: jaxloss.sigmoid_binary_cross_entropy(jnp.zeros(3, jnp.int32), jnp.zeros(3)),
            TypeError,
            r"`logits` must have a floating-point dtype",
        ),
        (
            lambda: jaxloss.sigmoid_binary_cross_entropy(
                jnp.zeros(3), jnp.zeros(3), where=jnp.ones(3)
            ),
            TypeError,
            r"`where` must be a boolean mask; got dtype float32",
        ),
        # Static hyperparameters.
        (
            lambda: jaxloss.binary_cross_entropy(jnp.zeros(3), jnp.zeros(3), reduction="avg"),
            ValueError,
            r"`reduction` must be one of 'none', 'mean', 'sum'; got 'avg'",
        ),
        (
            lambda: jaxloss.sigmoid_focal_loss(jnp.zeros(3), jnp.zeros(3), label_smoothing=1.5),
            ValueError,
            r"`label_smoothing` must lie in \[0, 1\]; got 1.5",
        ),
        (
            lambda: jaxloss.softmax_cross_entropy(X2, X2, label_smoothing=-0.1),
            ValueError,
            r"`label_smoothing` must lie in \[0, 1\]; got -0.1",
        ),
        (
            lambda: jaxloss.softmax_focal_loss_with_integer_labels(X2, YI, gamma=-1.0),
            ValueError,
            r"`gamma` must be non-negative; got -1",
        ),
    ],
)
def test_static_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_static_errors_raise_under_jit_at_trace_time():
    f = jax.jit(lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(x, y))
    with pytest.raises(TypeError, match="integer class indices"):
        f(X2, jnp.zeros(4))
    g = jax.jit(lambda x: jaxloss.sigmoid_focal_loss(x, x[:2]))
    with pytest.raises(ValueError, match=r"`labels` has shape \(2,\)"):
        g(jnp.zeros(3))


def test_vmap_over_examples_keeps_shape_checks_relative():
    # Per-example calls under vmap see rank-1 logits and scalar labels.
    out = jax.vmap(jaxloss.softmax_cross_entropy_with_integer_labels)(X2, YI)
    assert out.shape == (4,)


@pytest.mark.parametrize(
    "fn,args,kwargs,match",
    [
        (
            jaxloss.binary_cross_entropy,
            (jnp.array([0.2, 1.5]), jnp.array([0.0, 1.0])),
            {},
            r"`probs` must lie in \[0, 1\]",
        ),
        (
            jaxloss.sigmoid_binary_cross_entropy,
            (jnp.zeros(2), jnp.array([0.0, 2.0])),
            {},
            r"`labels` must lie in \[0, 1\] \(found min 0.0, max 2.0\)",
        ),
        (
            jaxloss.sigmoid_focal_loss,
            (jnp.array([0.0, jnp.nan]), jnp.zeros(2)),
            {},
            r"`logits` contains NaN",
        ),
        (
            jaxloss.softmax_cross_entropy_with_integer_labels,
            (X2, jnp.array([0, 1, 3, 0])),
            {},
            r"`labels` must be a class index in \[0, 3\)",
        ),
        (
            jaxloss.softmax_cross_entropy_with_integer_labels,
            (X2, jnp.array([0, -1, 2, 0])),
            {"ignore_index": -100},
            r"`labels` must be a class index in \[0, 3\) or -100 \(found min -1",
        ),
        (
            jaxloss.softmax_focal_loss_with_integer_labels,
            (X2, jnp.array([0, 7, 2, 0])),
            {},
            r"`labels` must be a class index",
        ),
        (
            jaxloss.categorical_cross_entropy,
            (jnp.full((2, 2), -0.5), jnp.ones((2, 2)) / 2),
            {},
            r"`probs` must lie in \[0, 1\]",
        ),
        (
            jaxloss.softmax_cross_entropy,
            (X2, X2 + 0.5),
            {"class_weight": jnp.array([1.0, jnp.nan, 1.0])},
            r"`class_weight` contains NaN",
        ),
    ],
)
def test_checked_raises_naming_the_argument(fn, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxloss.checked(fn)(*args, **kwargs)


def test_checked_passes_valid_inputs_through():
    f = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
    y = jnp.array([0, -100, 2, 1])
    out = f(X2, y, ignore_index=-100, reduction="mean")
    assert out == jaxloss.softmax_cross_entropy_with_integer_labels(
        X2, y, ignore_index=-100, reduction="mean"
    )
    assert f.__name__ == "softmax_cross_entropy_with_integer_labels"


def test_checked_under_jit_raises_at_run_time():
    f = jax.jit(jaxloss.checked(jaxloss.sigmoid_binary_cross_entropy))
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"`labels` must lie in \[0, 1\]"):
        jax.block_until_ready(f(jnp.zeros(2), jnp.array([0.0, 3.0])))


def test_checked_rejects_other_functions():
    with pytest.raises(TypeError, match="not a jaxloss loss function"):
        jaxloss.checked(jnp.sum)


# `checked` never checks what `where` masks or `ignore_index` ignores.
MASKED_CASES = [
    (  # partially labelled multi-label data: -1 marks a missing label
        jaxloss.sigmoid_binary_cross_entropy,
        (jnp.zeros((2, 3)), jnp.array([[1.0, -1.0, 0.0], [-1.0, 0.0, 1.0]])),
        {"where": jnp.array([[True, False, True], [False, True, True]])},
    ),
    (  # a per-example mask of [N, C] logits with N == C: rows, not classes
        jaxloss.softmax_cross_entropy_with_integer_labels,
        (jnp.zeros((3, 3)).at[2].set(jnp.nan), jnp.array([0, 1, -1])),
        {"where": jnp.array([True, True, False])},
    ),
    (  # padding labels and their logits, named by ignore_index
        jaxloss.softmax_focal_loss_with_integer_labels,
        (jnp.zeros((3, 3)).at[2].set(jnp.nan), jnp.array([0, 1, 255])),
        {"ignore_index": 255},
    ),
    (  # probability targets of masked examples
        jaxloss.softmax_cross_entropy,
        (jnp.zeros((2, 3)), jnp.array([[1.0, 0.0, 0.0], [2.0, jnp.nan, -1.0]])),
        {"where": jnp.array([True, False])},
    ),
    (  # a class mask: the masked class's probability is not looked at
        jaxloss.categorical_cross_entropy,
        (jnp.array([[0.5, 0.5, -3.0]]), jnp.array([[1.0, 0.0, 0.0]])),
        {"where": jnp.array([[True, True, False]])},
    ),
    (  # distillation: a masked example's teacher logits
        jaxloss.softmax_kl_divergence,
        (jnp.zeros((2, 3)), jnp.zeros((2, 3)).at[1].set(jnp.nan)),
        {"where": jnp.array([True, False])},
    ),
    (  # the fused loss: masked tokens' features and labels
        jaxloss.linear_softmax_cross_entropy,
        (jnp.ones((2, 4)).at[1].set(jnp.nan), jnp.ones((4, 3)), jnp.array([0, 7])),
        {"where": jnp.array([True, False])},
    ),
]


@pytest.mark.parametrize("fn,args,kwargs", MASKED_CASES)
def test_checked_skips_masked_and_ignored_entries(fn, args, kwargs):
    got = jaxloss.checked(fn)(*args, **kwargs, reduction="sum")
    assert got == fn(*args, **kwargs, reduction="sum")
    assert np.isfinite(got)


def test_checked_still_checks_the_entries_that_count():
    bce = jaxloss.checked(jaxloss.sigmoid_binary_cross_entropy)
    y = jnp.array([[1.0, -1.0, 0.0], [-1.0, 0.0, 3.0]])
    keep = jnp.array([[True, False, True], [False, True, True]])
    # The message reports the entries that count: -1 is masked, 3 is not.
    with pytest.raises(
        ValueError, match=r"`labels` must lie in \[0, 1\] \(found min 0.0, max 3.0\)"
    ):
        bce(jnp.zeros((2, 3)), y, where=keep)
    ce = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
    with pytest.raises(ValueError, match=r"\[0, 3\) or 255 \(found min 1, max 7\)"):
        ce(jnp.zeros((3, 3)), jnp.array([7, 1, 255]), ignore_index=255)


def test_checked_with_checkify_under_jit_names_the_argument_first():
    f = jaxloss.checked(jaxloss.sigmoid_binary_cross_entropy, checkify=True)
    g = checkify.checkify(jax.jit(f))
    err, _ = g(jnp.zeros(2), jnp.array([0.0, 3.0]))
    with pytest.raises(ValueError) as info:
        err.throw()
    assert str(info.value).startswith("`labels` must lie in [0, 1] (found min 0.0, max 3.0).")
    # Masked entries are not checked here either, and valid inputs pass.
    err, out = g(jnp.zeros(2), jnp.array([0.0, 3.0]), where=jnp.array([True, False]))
    assert err.get() is None
    assert out[1] == 0.0
    # Under grad and vmap too.
    err, _ = checkify.checkify(jax.grad(lambda x: f(x, jnp.array([0.0, 3.0])).sum()))(jnp.zeros(2))
    assert err.get().startswith("`labels` must lie in [0, 1]")


@pytest.mark.parametrize(
    "fn,kw,match",
    [
        (
            jaxloss.softmax_cross_entropy,
            {"weight": jnp.ones(3)},
            r"'weight'\. .*are `class_weight`",
        ),
        (
            jaxloss.sigmoid_binary_cross_entropy,
            {"class_weight": jnp.ones(3)},
            r"with `weight` of shape \[C\]",
        ),
        (jaxloss.binary_cross_entropy, {"ignore_index": -1}, r"mask entries with `where`"),
    ],
)
def test_the_other_familys_option_name_gets_a_hint(fn, kw, match):
    with pytest.raises(TypeError, match=match):
        fn(jnp.full((2, 3), 0.5), jnp.full((2, 3), 1 / 3), **kw)


def test_per_example_array_of_multilabel_inputs_gets_a_hint():
    with pytest.raises(
        ValueError,
        match=r"one value per example needs shape \(4, 1\) \(e\.g\. `where\[:, None\]`\)",
    ):
        jaxloss.sigmoid_binary_cross_entropy(
            jnp.zeros((4, 3)), jnp.zeros((4, 3)), where=jnp.ones(4, bool)
        )
    with pytest.raises(
        ValueError, match=r"\(An `\[N\]` mask of `\[N, C\]` inputs is per example\.\)"
    ):
        jaxloss.softmax_cross_entropy(
            jnp.zeros((4, 3)), jnp.ones((4, 3)) / 3, where=jnp.ones(5, bool)
        )
