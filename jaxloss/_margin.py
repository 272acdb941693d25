"""Margin losses: the hinge family, the perceptron and sparsemax.

Scores here are unnormalised, as logits are, but the losses are piecewise
linear (or quadratic) in them rather than logarithmic. The binary losses are
elementwise; the multi-class ones compare the label's score with the others
along a class axis, where a score of -inf (or a class that ``where`` masks)
is a class that does not exist.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._binary import _finish
from ._binary import _prepare as _binary_prepare
from ._common import (
    INDEX,
    SIGN,
    Reduction,
    hyper,
    reduce,
    value_checks,
    xmul,
)
from ._core import finish_integer, is_class, pick, row_max
from ._softmax import (
    Prepared,
    _class_vector,
    _dist_setup,
    _integer_setup,
    _num_classes,
)

ArrayLike = jax.typing.ArrayLike

# --------------------------------------------------------------------------
# Binary: labels in {-1, 1}, or {0, 1} with 0 read as -1.


def _binary_margin(scores, labels, weight, reduction, where):
    """`(y * s, prepared)`: the margin of each entry, with 0 labels read as -1."""
    b = _binary_prepare("scores", scores, labels, weight, 0.0, reduction, where, 0.0)
    return jnp.where(b.y == 0, -1, b.y) * b.x, b


_BINARY_DOC = """

    Labels are -1 or 1; labels in {0, 1} work too (each 0 is read as -1, as
    Keras does for binary labels), so ``y`` below is the sign.

    Shape:
      - scores: any shape.
      - labels, weight, where: broadcastable to ``scores``.
      - output: ``scores``' shape for ``reduction="none"``, else a scalar.

    Args:
      scores: raw decision values, floating dtype.
      labels: -1 or 1 (or 0 for -1), broadcastable to ``scores``.
      weight: elementwise weight, broadcastable to ``scores``.
      reduction: ``"none"``, ``"mean"`` (over unmasked entries) or ``"sum"``.
      where: elementwise mask; masked entries give 0 and leave the mean.

    Returns:
      The loss, float32 for half-precision scores.

    Raises:
      TypeError: non-floating ``scores``.
      ValueError: shapes that do not broadcast to ``scores``, bad ``reduction``.
"""


def _with_binary_doc(fn):
    head, examples = fn.__doc__.split("\n    Examples:")
    fn.__doc__ = head.rstrip() + "\n" + _BINARY_DOC + "\n    Examples:" + examples
    return fn


@value_checks({"labels": SIGN})
@_with_binary_doc
def hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Hinge loss of a binary (or multi-label) classifier, elementwise.

        loss = w * max(0, 1 - y * s)

    ``optax.losses.hinge_loss`` (labels in {-1, 1}); Keras' ``hinge`` is its
    mean over the last axis.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> s = jnp.array([2.0, 0.3, -0.5, -3.0])
      >>> print(np.asarray(jaxloss.hinge_loss(s, jnp.array([1, 1, 1, 0]))))  # optax's
      [0.  0.7 1.5 0. ]
    """
    m, b = _binary_margin(scores, labels, weight, reduction, where)
    return _finish(jnp.maximum(0, 1 - m), b, reduction)


@value_checks({"labels": SIGN})
@_with_binary_doc
def squared_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Squared hinge loss of a binary (or multi-label) classifier, elementwise.

        loss = w * max(0, 1 - y * s) ** 2

    Keras' ``squared_hinge`` is its mean over the last axis.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> s = jnp.array([2.0, 0.3, -0.5, -3.0])
      >>> print(np.asarray(jaxloss.squared_hinge_loss(s, jnp.array([1, 1, 1, 0]))).round(4))
      [0.   0.49 2.25 0.  ]
    """
    m, b = _binary_margin(scores, labels, weight, reduction, where)
    return _finish(jnp.square(jnp.maximum(0, 1 - m)), b, reduction)


@value_checks({"labels": SIGN})
@_with_binary_doc
def perceptron_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Perceptron loss of a binary (or multi-label) classifier, elementwise.

        loss = w * max(0, -y * s)

    ``optax.losses.perceptron_loss`` (labels in {-1, 1}).

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> s = jnp.array([2.0, 0.3, -0.5, -3.0])
      >>> print(np.asarray(jaxloss.perceptron_loss(s, jnp.array([1, 1, 1, 0]))))  # optax's
      [0.  0.  0.5 0. ]
    """
    m, b = _binary_margin(scores, labels, weight, reduction, where)
    return _finish(jnp.maximum(0, -m), b, reduction)


# --------------------------------------------------------------------------
# Multi-class: Crammer-Singer and the perceptron, integer or one-hot labels.


def _labels_setup(scores, labels, axis, reduction, where) -> tuple[Prepared, jax.Array]:
    """Integer labels (the per-example shape) or one-hot / soft labels
    (`scores`' shape): `(prepared, t)` with `t` the targets over the classes."""
    if jnp.ndim(labels) == jnp.ndim(scores):
        p = _dist_setup("scores", scores, labels, axis, reduction, 0.0, where)
        return p, p.targets
    p = _integer_setup(scores, labels, axis, reduction, 0.0, where, None, "scores")
    return p, is_class(p.target_index, p.x, p.axis).astype(p.x.dtype)


def _crammer_singer(scores, labels, axis, reduction, where, margin: float):
    """`max_c (s_c + margin (1 - t_c)) - sum_c t_c s_c`, reduced."""
    p, t = _labels_setup(scores, labels, axis, reduction, where)
    s = p.x
    best = jnp.max(s + margin * (1 - t), p.axis)
    loss = best - jnp.sum(xmul(t, s), p.axis)  # 0 * -inf = 0: absent classes
    if p.target_index is None:
        return reduce(loss, reduction, p.example_mask)
    return finish_integer(loss, p.labels, p.num_classes, None, p.example_mask, reduction)


_CS_DOC = """

    Labels are integer class indices (the per-example shape) or one-hot
    targets (the shape of ``scores``; soft targets give the same formula).
    A class whose score is -inf (or that ``where`` masks) does not exist; a
    label on it gives +inf.

    Shape:
      - scores: ``[..., C, ...]`` with the classes on ``axis``.
      - labels: the per-example shape (integers) or ``scores.shape``.
      - where: the per-example shape, or ``scores.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      scores: raw scores, floating dtype.
      labels: integer class indices in ``[0, C)`` (others give NaN), or
        one-hot targets.
      axis: the class axis.
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision scores.

    Raises:
      TypeError: non-floating ``scores``, or float labels of the
        per-example shape.
      ValueError: ``labels`` of neither shape, ``axis`` out of range, bad
        ``reduction``.
"""


def _with_cs_doc(fn):
    head, examples = fn.__doc__.split("\n    Examples:")
    fn.__doc__ = head.rstrip() + "\n" + _CS_DOC + "\n    Examples:" + examples
    return fn


@value_checks({"labels": INDEX}, _num_classes)
@_with_cs_doc
def multiclass_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Multi-class hinge loss (Crammer and Singer 2001).

    The unreduced loss per example, with ``t`` the one-hot label:

        loss = max_c (s[c] + 1 - t[c]) - s[y] = max(0, 1 + max_{c != y} s[c] - s[y])

    ``optax.losses.multiclass_hinge_loss``. Keras' ``categorical_hinge``
    (one-hot labels) differs where every wrong score is negative: it takes
    ``max(0, max_{c != y} s[c])`` as the runner-up, so its loss there is
    ``max(0, 1 - s[y])``.

    References:
      Crammer and Singer, On the Algorithmic Implementation of Multiclass
      Kernel-based Vector Machines, JMLR 2001.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> s = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> print(np.asarray(jaxloss.multiclass_hinge_loss(s, jnp.array([0, 2]))).round(4))
      [0.  3.2]
    """
    return _crammer_singer(scores, labels, axis, reduction, where, 1.0)


@value_checks({"labels": INDEX}, _num_classes)
@_with_cs_doc
def multiclass_perceptron_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Multi-class perceptron loss (Collins 2002).

    The unreduced loss per example: ``max_c s[c] - s[y]``.
    ``optax.losses.multiclass_perceptron_loss``.

    References:
      Collins, Discriminative Training Methods for Hidden Markov Models:
      Theory and Experiments with Perceptron Algorithms, EMNLP 2002.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> s = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> print(np.asarray(jaxloss.multiclass_perceptron_loss(s, jnp.array([0, 2]))).round(4))
      [0.  2.2]
    """
    return _crammer_singer(scores, labels, axis, reduction, where, 0.0)


@value_checks({"labels": INDEX}, _num_classes)
def multi_margin_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    p: int = 1,
    margin: ArrayLike = 1.0,
    class_weight: ArrayLike | None = None,
    axis: int = -1,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Multi-class margin loss (Weston and Watkins 1999; PyTorch `MultiMarginLoss`).

    The unreduced loss per example, over the ``C`` classes of ``axis``:

        loss = w[y] / C * sum_{c != y} max(0, margin - s[y] + s[c]) ** p

    ``torch.nn.functional.multi_margin_loss`` for every ``p``, ``margin``,
    ``weight`` and ``reduction``; its ``"mean"`` is the plain mean over
    examples (not divided by the weights). Classes whose score is -inf (or
    that ``where`` masks) add nothing to the sum; ``C`` stays the size of
    ``axis``.

    Shape:
      - scores: ``[..., C, ...]`` with the classes on ``axis``.
      - labels: the per-example shape.
      - class_weight: ``[C]``.
      - where: the per-example shape, or ``scores.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      scores: raw scores, floating dtype.
      labels: integer class indices in ``[0, C)``; others give NaN.
      p: the power, 1 or 2 (static).
      margin: the margin (may be traced).
      class_weight: weight of each class, applied by the label (PyTorch
        ``weight``).
      axis: the class axis.
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision scores.

    Raises:
      TypeError: non-integer ``labels``, non-floating ``scores``.
      ValueError: ``p`` not 1 or 2, ``labels`` not of the per-example shape,
        ``class_weight`` not ``[C]``, ``axis`` out of range, bad ``reduction``.

    References:
      Weston and Watkins, Support Vector Machines for Multi-Class Pattern
      Recognition, ESANN 1999.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> s = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> print(np.asarray(jaxloss.multi_margin_loss(s, jnp.array([0, 2]))).round(4))
      [0.     1.5667]
    """
    if p not in (1, 2):
        raise ValueError(f"`p` must be 1 or 2; got {p!r}.")
    pr = _integer_setup(scores, labels, axis, reduction, 0.0, where, None, "scores")
    s, ax = pr.x, pr.axis
    s_y = jnp.expand_dims(pick(s, pr.target_index, ax), ax)
    gap = jnp.maximum(0, hyper(margin, s.dtype) - s_y + s)  # 0 for absent classes
    others = ~is_class(pr.target_index, s, ax)
    loss = jnp.sum(jnp.where(others, gap if p == 1 else gap * gap, 0), ax) / s.shape[ax]
    w = _class_vector("class_weight", class_weight, s, ax)
    if w is not None:
        loss = w[pr.target_index] * loss
    return finish_integer(loss, pr.labels, pr.num_classes, None, pr.example_mask, reduction)


# --------------------------------------------------------------------------
# Sparsemax.


def _sparsemax(z: jax.Array, axis: int) -> jax.Array:
    """The Euclidean projection of `z` onto the simplex (Martins and Astudillo).

    `z` has its row max at 0 (absent classes -inf). The threshold `tau`
    solves `sum_c max(z_c - tau, 0) = 1` and lies in [-1, 0): bisection
    finds the support (a fixed number of steps, elementwise work and sums
    over the classes only, so a class axis split over devices is never
    gathered, as a sort would gather it), then `tau` is exact on it and
    differentiable: `p = max(z - tau, 0)`.
    """
    zs = jax.lax.stop_gradient(z)
    lo = jnp.full(zs.shape[:axis] + zs.shape[axis + 1 :], -1.0, z.dtype)  # f(lo) >= 1
    hi = jnp.zeros_like(lo)  # f(hi) = 0 < 1
    for _ in range(jnp.finfo(z.dtype).nmant + 2):  # unrolled: no loop, no host sync
        mid = (lo + hi) / 2
        above = jnp.sum(jnp.maximum(zs - jnp.expand_dims(mid, axis), 0), axis) >= 1
        lo, hi = jnp.where(above, mid, lo), jnp.where(above, hi, mid)
    support = zs > jnp.expand_dims(lo, axis)  # every class above tau, and at least the max
    k = jnp.sum(support, axis, dtype=z.dtype)
    tau = (jnp.sum(jnp.where(support, z, 0), axis) - 1) / jnp.maximum(k, 1)
    return jnp.maximum(jnp.where(support, z - jnp.expand_dims(tau, axis), 0), 0)


@value_checks({"labels": INDEX}, _num_classes)
def multiclass_sparsemax_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Sparsemax loss (Martins and Astudillo 2016) with integer labels.

    With ``p = sparsemax(s)``, the projection of the scores onto the simplex
    (exactly 0 for the classes below a threshold), the unreduced loss per
    example is

        loss = sum_c p[c] * s[c] + (1 - sum_c p[c] ** 2) / 2 - s[y]

    and its gradient is ``p - onehot(y)``, as the softmax cross-entropy's is
    ``softmax(s) - onehot(y)``. ``optax.losses.multiclass_sparsemax_loss``
    and ``entmax.SparsemaxLoss``. The projection is found by bisection over
    the classes, which shards like a softmax (a sort would gather the class
    axis). A class whose score is -inf (or that ``where`` masks) does not
    exist; a label on it gives +inf.

    Shape:
      - scores: ``[..., C, ...]`` with the classes on ``axis``.
      - labels: the per-example shape.
      - where: the per-example shape, or ``scores.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      scores: raw scores, floating dtype.
      labels: integer class indices in ``[0, C)``; others give NaN.
      axis: the class axis.
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision scores.

    Raises:
      TypeError: non-integer ``labels``, non-floating ``scores``.
      ValueError: ``labels`` not of the per-example shape, ``axis`` out of
        range, bad ``reduction``.

    References:
      Martins and Astudillo, From Softmax to Sparsemax: A Sparse Model of
      Attention and Multi-Label Classification, ICML 2016,
      https://arxiv.org/abs/1602.02068

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> s = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> loss = jaxloss.multiclass_sparsemax_loss(s, jnp.array([0, 2]))
      >>> print(np.asarray(loss).round(4))  # optax's
      [0.  2.2]
    """
    pr = _integer_setup(scores, labels, axis, reduction, 0.0, where, None, "scores")
    m, has_class = row_max(pr.x, pr.axis)
    z = pr.x - jnp.expand_dims(m, pr.axis)  # shifted: the max at 0
    prob = _sparsemax(z, pr.axis)
    on = prob > 0
    fenchel = jnp.sum(prob * jnp.where(on, z, 0), pr.axis) + (1 - jnp.sum(prob * prob, pr.axis)) / 2
    loss = jnp.where(has_class, fenchel - pick(z, pr.target_index, pr.axis), jnp.nan)
    return finish_integer(loss, pr.labels, pr.num_classes, None, pr.example_mask, reduction)
