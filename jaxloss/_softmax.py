"""Multi-class losses: softmax / categorical cross-entropy and softmax focal loss.

Every loss here is a short formula over a few per-example statistics of the
logits (their logsumexp, the target logit, weighted sums over classes) from
the plain core (`_core.py`), computed without building a one-hot array. A
logit of -inf (or a class that ``where`` masks) is a class that does not
exist for that example: it leaves the softmax, and its terms leave every sum.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._common import (
    INDEX,
    LOG_UNIT,
    UNIT,
    Reduction,
    as_float_array,
    as_index_array,
    as_mask,
    as_real_array,
    broadcast_to,
    canonical_axis,
    check_ignore_index,
    check_in_range,
    check_non_negative,
    check_reduction,
    clamped_log,
    compute_dtype,
    concrete_value,
    fill_masked,
    grad_floor,
    hyper,
    mean_normalizer,
    reduce,
    smooth_labels,
    value_checks,
    xmul,
)
from ._core import (
    along,
    class_sum,
    finish_integer,
    integer_ce,
    is_class,
    log_softmax,
    logsumexp,
    modulator,
    pick,
    present,
    row_max,
    z_term,
)

ArrayLike = jax.typing.ArrayLike

_FLOAT_LABELS_HINT = " For probability (or one-hot) targets use softmax_cross_entropy."


def _num_classes(bound) -> int:
    x = next(iter(bound.arguments.values()))  # the first argument: logits or log_probs
    axis = bound.arguments.get("axis", -1)
    return jnp.shape(x)[axis]


# --------------------------------------------------------------------------
# Shared pieces.


class Prepared(NamedTuple):
    """What every multi-class loss starts from, validated and masked."""

    x: jax.Array  # logits (or probabilities), in the compute dtype, `where` applied
    axis: int  # the class axis, non-negative
    example_mask: jax.Array | None  # per example: False gives 0 and leaves the mean
    class_mask: jax.Array | None  # the class mask `where` gave (logits' shape), or None
    labels: jax.Array  # the labels as given (integer, or targets before smoothing)
    targets: jax.Array  # probability targets after label smoothing (integer: the labels)
    target_index: jax.Array | None  # integer labels clipped to [0, C) (bad ones poisoned later)

    @property
    def num_classes(self) -> int:
        return self.x.shape[self.axis]


def _prepare(name, predictions, axis, reduction, label_smoothing, where, absent, *others):
    """Validate and upcast the logits (or probabilities) and apply `where`.

    `where` with the rank of `logits` is a class mask: masked classes are
    set to `absent` (-inf for logits: they leave the softmax; 0 for
    probabilities: they leave the sum, as a masked term), and an example whose
    classes are all masked is masked. Otherwise it is a per-example mask,
    broadcastable to the per-example shape; masked examples' inputs are
    replaced by 0 so that they give zero gradients whatever they held.

    Returns `(x, axis, example_mask, class_mask)`.
    """
    check_reduction(reduction)
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    x = as_float_array(name, predictions)
    if x.ndim == 0:
        raise ValueError(f"`{name}` must have a class axis; got a scalar.")
    axis = canonical_axis(axis, x.ndim, name)
    arrays = [jnp.asarray(o) for o in others if o is not None]
    x = x.astype(compute_dtype(x, *arrays))
    example_shape = x.shape[:axis] + x.shape[axis + 1 :]
    mask = class_mask = None
    if where is not None:
        m = as_mask(where)
        if m.ndim == x.ndim:
            class_mask = broadcast_to("where", m, x.shape, name)
            x = fill_masked(x, class_mask, absent)
            mask = jnp.any(class_mask, axis)
        else:
            hint = (
                f" A per-example mask has shape {example_shape}; a class mask {x.shape}."
                " (An `[N]` mask of `[N, C]` inputs is per example.)"
            )
            mask = broadcast_to("where", m, example_shape, name, hint)
            x = fill_masked(x, jnp.expand_dims(mask, axis), 0)
    return x, axis, mask, class_mask


def _class_vector(name: str, v: ArrayLike | None, x: jax.Array, axis: int):
    """A per-class vector (`class_weight`, `alpha`) of shape `[C]` or scalar.

    Returns it as `[C]`, in `x`'s dtype (None stays None).
    """
    if v is None:
        return None
    v = as_real_array(name, v).astype(x.dtype)
    c = x.shape[axis]
    if v.ndim == 0:
        v = jnp.broadcast_to(v, (c,))
    if v.shape != (c,):
        raise ValueError(
            f"`{name}` must have shape ({c},), one entry per class of `logits` "
            f"with shape {x.shape} and axis={axis}; got shape {v.shape}."
        )
    return v


def _per_class(w: jax.Array | None, v: jax.Array, axis: int) -> jax.Array:
    """`v` scaled by the per-class vector `w` along `axis` (`v` if None)."""
    return v if w is None else along(w, v.ndim, axis) * v


def _adjust(p: Prepared, log_prior: ArrayLike | None, tau: ArrayLike) -> Prepared:
    """Logit adjustment (Menon et al. 2021): the loss sees `x + tau * log_prior`."""
    if log_prior is None:
        return p
    prior = _class_vector("log_prior", log_prior, p.x, p.axis)
    return p._replace(x=p.x + hyper(tau, p.x.dtype) * along(prior, p.x.ndim, p.axis))


def _integer_setup(
    logits, labels, axis, reduction, label_smoothing, where, ignore_index, name="logits"
):
    y = as_index_array("labels", labels, _FLOAT_LABELS_HINT)
    x, axis, mask, class_mask = _prepare(
        name, logits, axis, reduction, label_smoothing, where, -jnp.inf
    )
    example_shape = x.shape[:axis] + x.shape[axis + 1 :]
    if y.shape != example_shape:
        raise ValueError(
            f"`labels` has shape {y.shape} but `{name}` has shape {x.shape}; "
            f"integer labels have the per-example shape {example_shape} "
            f"(`{name}` without axis={axis}). For probability targets use "
            "softmax_cross_entropy."
        )
    check_ignore_index(ignore_index)
    index = jnp.clip(y, 0, x.shape[axis] - 1)  # out-of-range labels are poisoned later
    return Prepared(x, axis, mask, class_mask, y, y, index)


def _dist_setup(name, predictions, labels, axis, reduction, label_smoothing, where):
    absent = -jnp.inf if name in ("logits", "scores") else 0.0  # a class mask's fill
    x, axis, mask, class_mask = _prepare(
        name, predictions, axis, reduction, label_smoothing, where, absent, labels
    )
    t = as_real_array("labels", labels)
    if t.shape != x.shape:
        hint = ""
        if t.ndim == x.ndim - 1:
            hint = " For integer class labels use softmax_cross_entropy_with_integer_labels."
        raise ValueError(
            f"`labels` has shape {t.shape} but `{name}` has shape {x.shape}; "
            f"probability targets have the shape of `{name}`.{hint}"
        )
    smoothed = smooth_labels(t.astype(x.dtype), label_smoothing, x.shape[axis])
    return Prepared(x, axis, mask, class_mask, t, smoothed, None)


# --------------------------------------------------------------------------
# Cross-entropy.


@value_checks({"labels": INDEX}, _num_classes)
def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: ArrayLike = 0.0,
    log_prior: ArrayLike | None = None,
    tau: ArrayLike = 1.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
    normalizer: ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy with integer class labels (PyTorch `cross_entropy`).

    The unreduced loss per example, with ``lse = logsumexp(x)`` over the
    class axis, ``w`` the class weights (1 if None), ``e`` the label
    smoothing and ``z`` the z-loss coefficient:

        loss = (1 - e) * w[y] * (lse - x[y])
               + e / C * sum_c w[c] * (lse - x[c])
               + z * lse ** 2

    This is ``torch.nn.functional.cross_entropy`` with class indices for
    every combination of ``weight``, ``ignore_index``, ``label_smoothing``
    and ``reduction``, including its ``"mean"`` with weights: the sum divided
    by the sum of ``w[y]`` over kept examples. Unlike PyTorch, a mean over a
    batch where every label is ignored is 0.0 (with zero gradients), not NaN.
    Without options it equals
    ``optax.losses.softmax_cross_entropy_with_integer_labels``. The z-loss
    (PaLM, T5X) is added per example, unweighted. No one-hot array is built.

    A two-class softmax on ``[x, 0]`` is a sigmoid on ``x``: this loss on
    ``jnp.stack([x, 0 * x], -1)`` equals
    `sigmoid_binary_cross_entropy` on ``x`` with label ``y == 0``.

    Logits of -inf mark classes that do not exist for an example: they leave
    the softmax and the smoothing sum, and loss and gradients stay finite (in
    reverse and forward mode) as long as the target class is present; a
    target of -inf logit gives +inf.

    Shape:
      - logits: ``[..., C, ...]`` with the classes on ``axis``; ``axis=1``
        is PyTorch's ``(N, C, d1, ..., dk)``.
      - labels: the per-example shape, ``logits.shape`` without ``axis``.
      - class_weight: ``[C]``.
      - where: the per-example shape, or ``logits.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: integer class indices in ``[0, C)``. A label outside that
        range which is not ``ignore_index`` gives NaN for its example
        (``checked`` raises instead).
      axis: the class axis.
      class_weight: weight of each class (PyTorch ``weight``).
      ignore_index: a label value whose examples give 0 and leave the mean
        (PyTorch uses -100; 0 or 255 are common in segmentation).
      label_smoothing: ``e`` in [0, 1]: the target becomes
        ``(1 - e) * one_hot(y) + e / C``.
      z_loss: coefficient of ``lse ** 2`` (e.g. 1e-4).
      log_prior: the log of each class's prior ``[C]`` (e.g. its frequency
        in the training set) for logit adjustment: the loss is computed on
        ``x + tau * log_prior`` (Menon et al. 2021), which counters a
        long-tailed label distribution while predictions (the argmax of
        ``x``) stay unadjusted. The post-hoc form adjusts predictions
        instead: ``argmax(x - tau * log_prior)`` of a model trained plainly.
      tau: the adjustment's temperature (1 in the paper; may be traced).
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      where: per-example mask (masked examples give 0 and leave the mean),
        or a class mask of ``logits``' shape (masked classes leave the
        softmax, as optax).
      normalizer: for ``reduction="mean"``, divide the sum by this (traced)
        scalar instead of the count (or the weights): pass the number of
        kept tokens of the whole batch to each micro-batch, and the
        accumulated micro-batch losses and gradients equal the full
        batch's (see the example).

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-integer ``labels`` or non-floating ``logits``.
      ValueError: ``labels`` not of the per-example shape, ``class_weight``
        not ``[C]``, ``axis`` out of range, bad ``reduction`` or
        ``label_smoothing``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> y = jnp.array([0, 2])
      >>> print(np.asarray(jaxloss.softmax_cross_entropy_with_integer_labels(x, y)).round(4))
      [0.0951 2.4573]
      >>> loss = jaxloss.softmax_cross_entropy_with_integer_labels(
      ...     x, y, label_smoothing=0.1, reduction="mean")
      >>> print(np.asarray(loss).round(4))
      1.3496
      >>> # Two micro-batches with the global count give the full batch's mean.
      >>> halves = [jaxloss.softmax_cross_entropy_with_integer_labels(
      ...     x[i:i + 1], y[i:i + 1], reduction="mean", normalizer=2) for i in (0, 1)]
      >>> full = jaxloss.softmax_cross_entropy_with_integer_labels(x, y, reduction="mean")
      >>> print(np.allclose(sum(halves), full))
      True
    """
    p = _integer_setup(logits, labels, axis, reduction, label_smoothing, where, ignore_index)
    p = _adjust(p, log_prior, tau)
    w = _class_vector("class_weight", class_weight, p.x, p.axis)
    loss, w_y = integer_ce(p.x, p.target_index, p.axis, label_smoothing, z_loss, w)
    n = mean_normalizer(normalizer, reduction, loss.dtype)
    return finish_integer(
        loss, p.labels, p.num_classes, ignore_index, p.example_mask, reduction, w_y, n
    )


@value_checks({"labels": UNIT})
def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: ArrayLike = 0.0,
    log_prior: ArrayLike | None = None,
    tau: ArrayLike = 1.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy with probability targets.

    The unreduced loss per example, with ``t' = (1 - e) * t + e / C``:

        loss = -sum_c w[c] * t'[c] * log_softmax(x)[c]  +  z * lse(x) ** 2

    As ``torch.nn.functional.cross_entropy`` with probability targets,
    including its ``"mean"`` with ``weight`` (divide by the number of
    examples). Without options it equals
    ``optax.losses.softmax_cross_entropy``, also with optax's class-mask
    ``where`` for targets without mass on masked classes: masked classes
    (and classes whose logit is -inf) leave the softmax and the sum. Target
    mass on such a class gives +inf, as a label whose logit is -inf does in
    PyTorch, optax and `softmax_cross_entropy_with_integer_labels`
    (optax's class mask drops that mass instead); only its label-smoothing
    share is dropped. The gradient with respect to ``labels`` is
    ``w * (lse - x)`` (``-log p`` scaled), also where a target is exactly 0.

    Shape:
      - logits, labels: ``[..., C, ...]`` with the classes on ``axis``.
      - class_weight: ``[C]``.
      - where: the per-example shape, or ``logits.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: target distributions over the class axis (one-hot or soft).
      axis: the class axis.
      class_weight: weight of each class (PyTorch ``weight``).
      label_smoothing: ``e`` in [0, 1].
      z_loss: coefficient of ``logsumexp(x) ** 2``.
      log_prior: the log of each class's prior ``[C]``, for logit
        adjustment: the loss is computed on ``x + tau * log_prior`` (see
        `softmax_cross_entropy_with_integer_labels`).
      tau: the adjustment's temperature (may be traced).
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-floating ``logits``.
      ValueError: ``labels`` not of ``logits``' shape, ``class_weight`` not
        ``[C]``, ``axis`` out of range, bad ``reduction`` or
        ``label_smoothing``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> t = jnp.array([[1.0, 0.0, 0.0], [0.2, 0.0, 0.8]])
      >>> print(np.asarray(jaxloss.softmax_cross_entropy(x, t)).round(4))
      [0.0951 2.3573]
    """
    p = _dist_setup("logits", logits, labels, axis, reduction, label_smoothing, where)
    p = _adjust(p, log_prior, tau)
    w = _class_vector("class_weight", class_weight, p.x, p.axis)
    r = logsumexp(p.x, p.axis)
    loss = class_sum(p.x, _per_class(w, p.targets, p.axis), p.labels, p.axis)
    loss = loss + z_term(z_loss, r.lse)
    loss = jnp.where(r.has_class, loss, jnp.nan)
    return reduce(loss, reduction, p.example_mask)


@value_checks({"probs": UNIT, "labels": UNIT})
def categorical_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Cross-entropy on probabilities (the output of a softmax).

    The unreduced loss per example, logs clamped at -100 as in
    `binary_cross_entropy`, ``t' = (1 - e) * t + e / C``:

        loss = -sum_c w[c] * t'[c] * log(p[c])

    Per example this is ``sklearn.metrics.log_loss`` and Keras
    ``categorical_crossentropy(from_logits=False)`` for probabilities away
    from 0 and 1 (both clip probabilities to ``[eps, 1 - eps]``; Keras also
    renormalises). No renormalisation here: pass what your softmax gave.
    The gradient is ``-w t' / max(p, 1e-12)``: finite at ``p = 0``. Prefer
    `softmax_cross_entropy` on logits where you have them.

    Shape:
      - probs, labels: ``[..., C, ...]`` with the classes on ``axis``.
      - class_weight: ``[C]``.
      - where: the per-example shape, or ``probs.shape`` for a class mask
        (masked classes leave the sum).
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      probs: predicted distributions, floating dtype.
      labels: target distributions (one-hot or soft).
      axis: the class axis.
      class_weight: weight of each class.
      label_smoothing: ``e`` in [0, 1].
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision inputs.

    Raises:
      TypeError: non-floating ``probs``.
      ValueError: ``labels`` not of ``probs``' shape, ``class_weight`` not
        ``[C]``, ``axis`` out of range, bad ``reduction`` or
        ``label_smoothing``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> y = jnp.eye(3)[jnp.array([2, 1, 0])]
      >>> p = jnp.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]])
      >>> loss = jaxloss.categorical_cross_entropy(p, y, reduction="mean")
      >>> print(f"{loss:.6f}")  # sklearn.metrics.log_loss: 1.3783888522474517
      1.378389
    """
    p = _dist_setup("probs", probs, labels, axis, reduction, label_smoothing, where)
    w = _class_vector("class_weight", class_weight, p.x, p.axis)
    terms = xmul(p.targets, clamped_log(p.x, grad_floor(jnp.asarray(probs).dtype)))
    if p.class_mask is not None:  # masked classes leave the sum
        terms = jnp.where(p.class_mask, terms, 0)
    loss = -jnp.sum(_per_class(w, terms, p.axis), p.axis)
    return reduce(loss, reduction, p.example_mask)


# --------------------------------------------------------------------------
# Focal loss.


@value_checks({"labels": UNIT})
def softmax_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Multi-class focal loss with probability targets, in log space.

    The unreduced loss per example, ``p = softmax(x)``,
    ``t' = (1 - e) * t + e / C``:

        loss = -sum_c alpha[c] * t'[c] * (1 - p[c]) ** gamma * log(p[c])

    Keras ``CategoricalFocalCrossentropy(from_logits=True)`` (which clips
    ``p`` to ``[1e-7, 1 - 1e-7]``; this loss does not need to).
    ``log(1 - p[c])`` is computed stably: ``log1p(-p[c])`` for every class
    but the most likely, whose ``1 - p`` is the logsumexp of the others. So
    loss, gradient and Hessian stay finite for every finite logit, also for
    ``0 < gamma < 1``. ``gamma=0, alpha=None`` equals
    `softmax_cross_entropy` exactly. Target mass on a class whose
    logit is -inf (or that a class mask removes) gives +inf; only its
    label-smoothing share is dropped.

    Shape:
      - logits, labels: ``[..., C, ...]`` with the classes on ``axis``.
      - alpha: scalar or ``[C]``.
      - where: the per-example shape, or ``logits.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: target distributions (one-hot or soft).
      axis: the class axis.
      gamma: focusing exponent >= 0 (may be traced; differentiable).
      alpha: None (all 1), a scalar, or a weight per class.
      label_smoothing: ``e`` in [0, 1].
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-floating ``logits``.
      ValueError: ``labels`` not of ``logits``' shape, ``alpha`` neither a
        scalar nor ``[C]``, negative ``gamma``, ``axis`` out of range, bad
        ``reduction`` or ``label_smoothing``.

    References:
      Lin et al., Focal Loss for Dense Object Detection, ICCV 2017,
      https://arxiv.org/abs/1708.02002

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> t = jnp.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> print(np.asarray(jaxloss.softmax_focal_loss(x, t, gamma=2.0)).round(4))
      [2.1005 0.0132]
    """
    check_non_negative("gamma", gamma)
    p = _dist_setup("logits", logits, labels, axis, reduction, label_smoothing, where)
    x, axis = p.x, p.axis
    a = _class_vector("alpha", alpha, x, axis)
    r = logsumexp(x, axis)
    log_p = log_softmax(x, r, axis)
    # log(1 - p_c): log1p(-p_c) is accurate where p_c <= 1/2, i.e. for every
    # class but the most likely; for that one, 1 - p is the others' mass.
    top = is_class(jnp.argmax(x, axis), x, axis)
    rest = logsumexp(jnp.where(top, -jnp.inf, x), axis)
    log_1m_top = jnp.expand_dims((rest.m - r.m) + (rest.log_s - r.log_s), axis)
    log_1m_p = jnp.where(top, log_1m_top, jnp.log1p(-jnp.exp(jnp.where(top, -1.0, log_p))))
    defined = ~top | jnp.expand_dims(rest.has_class, axis)
    modulated = modulator(log_1m_p, defined, gamma) * p.targets
    loss = class_sum(x, _per_class(a, modulated, axis), p.labels, axis)
    loss = jnp.where(r.has_class, loss, jnp.nan)
    return reduce(loss, reduction, p.example_mask)


@value_checks({"labels": INDEX}, _num_classes)
def softmax_focal_loss_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    ignore_index: int | None = None,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Multi-class focal loss with integer class labels, in log space.

    The unreduced loss per example, ``p = softmax(x)``:

        loss = -alpha[y] * (1 - p[y]) ** gamma * log(p[y])

    with ``log(1 - p[y])`` the logsumexp of the other classes minus that of
    all, so loss, gradient and Hessian stay finite for every finite logit,
    also for ``0 < gamma < 1``. No one-hot array is built. ``gamma=0,
    alpha=None`` equals `softmax_cross_entropy_with_integer_labels`
    exactly. ``"mean"`` divides by the number of kept examples (``alpha``
    does not change the denominator, as in Keras).

    Shape:
      - logits: ``[..., C, ...]`` with the classes on ``axis``.
      - labels: the per-example shape.
      - alpha: scalar or ``[C]``.
      - where: the per-example shape, or ``logits.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: integer class indices in ``[0, C)``; out-of-range labels that
        are not ``ignore_index`` give NaN.
      axis: the class axis.
      gamma: focusing exponent >= 0 (may be traced; differentiable).
      alpha: None (all 1), a scalar, or a weight per class.
      ignore_index: a label value whose examples give 0 and leave the mean.
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-integer ``labels`` or non-floating ``logits``.
      ValueError: ``labels`` not of the per-example shape, ``alpha`` neither
        a scalar nor ``[C]``, negative ``gamma``, ``axis`` out of range, bad
        ``reduction``.

    References:
      Lin et al., Focal Loss for Dense Object Detection, ICCV 2017,
      https://arxiv.org/abs/1708.02002

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> y = jnp.array([2, 1])
      >>> loss = jaxloss.softmax_focal_loss_with_integer_labels(x, y, gamma=2.0)
      >>> print(np.asarray(loss).round(4))
      [2.1005 0.0132]
    """
    check_non_negative("gamma", gamma)
    p = _integer_setup(logits, labels, axis, reduction, 0.0, where, ignore_index)
    x, index, axis = p.x, p.target_index, p.axis
    a = _class_vector("alpha", alpha, x, axis)
    r = logsumexp(x, axis)
    x_y = pick(x, index, axis)
    # log(1 - p_y) = logsumexp of the other classes - lse: exact in log space.
    rest = logsumexp(jnp.where(is_class(index, x, axis), -jnp.inf, x), axis)
    log_1m_p = (rest.m - r.m) + (rest.log_s - r.log_s)
    loss = modulator(log_1m_p, rest.has_class, gamma) * (r.log_s - (x_y - r.m))
    if a is not None:
        loss = a[index] * loss
    loss = jnp.where(r.has_class, loss, jnp.nan)
    return finish_integer(loss, p.labels, p.num_classes, ignore_index, p.example_mask, reduction)


# --------------------------------------------------------------------------
# Negative log-likelihood, PolyLoss, distillation.


@value_checks({"labels": INDEX}, _num_classes)
def nll_loss(
    log_probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Negative log-likelihood of integer labels (PyTorch `NLLLoss`).

    For models that output log-probabilities (a ``log_softmax`` layer). The
    unreduced loss per example:

        loss = -w[y] * log_probs[y]

    ``torch.nn.functional.nll_loss`` for every combination of ``weight``,
    ``ignore_index`` and ``reduction``, on ``(N, C)`` or ``(N, C, d1, ...)``
    inputs (``axis=1``): ``"mean"`` divides by the sum of the target
    classes' weights over kept examples. Unlike PyTorch, a mean over a batch
    whose labels are all ignored is 0.0. ``nll_loss(log_softmax(x), y)``
    equals `softmax_cross_entropy_with_integer_labels` on ``x``; prefer
    that on logits.

    Shape:
      - log_probs: ``[..., C, ...]`` with the classes on ``axis``.
      - labels: the per-example shape, ``log_probs.shape`` without ``axis``.
      - class_weight: ``[C]``.
      - where: the per-example shape, or ``log_probs.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      log_probs: log-probabilities, floating dtype.
      labels: integer class indices in ``[0, C)``; out-of-range labels that
        are not ``ignore_index`` give NaN.
      axis: the class axis.
      class_weight: weight of each class (PyTorch ``weight``).
      ignore_index: a label value whose examples give 0 and leave the mean.
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      where: per-example mask, or a class mask.

    Returns:
      The loss, float32 for half-precision inputs.

    Raises:
      TypeError: non-integer ``labels`` or non-floating ``log_probs``.
      ValueError: ``labels`` not of the per-example shape, ``class_weight``
        not ``[C]``, ``axis`` out of range, bad ``reduction``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> log_p = jax.nn.log_softmax(jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]]))
      >>> print(np.asarray(jaxloss.nll_loss(log_p, jnp.array([0, 2]))).round(4))  # PyTorch's
      [0.0951 2.4573]
    """
    p = _integer_setup(log_probs, labels, axis, reduction, 0.0, where, ignore_index, "log_probs")
    w = _class_vector("class_weight", class_weight, p.x, p.axis)
    loss = -pick(p.x, p.target_index, p.axis)
    w_y = None
    if w is not None:
        w_y = w[p.target_index]
        loss = w_y * loss
    return finish_integer(
        loss, p.labels, p.num_classes, ignore_index, p.example_mask, reduction, w_y
    )


def _poly_term(x, r, v, axis):
    """`sum_c v_c (1 - p_c)` over the classes that exist, `p = softmax(x)`."""
    exists = present(x)
    v = jnp.where(exists, jnp.broadcast_to(v, x.shape), 0)
    return jnp.sum(v, axis) - jnp.sum(v * jnp.exp(log_softmax(x, r, axis)), axis)


@value_checks({"labels": UNIT})
def poly_loss_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Poly-1 cross-entropy (Leng et al. 2022) with probability targets.

    The cross-entropy plus ``epsilon`` times the first polynomial term, per
    example, with ``p = softmax(x)`` and ``t' = (1 - e) * t + e / C``:

        loss = sum_c w[c] t'[c] * (-log p[c] + epsilon * (1 - p[c]))

    Without class weights or smoothing this is ``optax.losses.
    poly_loss_cross_entropy`` (``CE + epsilon * (1 - p_t)`` with
    ``p_t = sum_c t[c] p[c]``); ``epsilon=0`` is
    `softmax_cross_entropy`. Classes whose logit is -inf leave both
    terms (target mass on them gives +inf).

    Shape:
      - logits, labels: ``[..., C, ...]`` with the classes on ``axis``.
      - class_weight: ``[C]``.
      - where: the per-example shape, or ``logits.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: target distributions (one-hot or soft).
      epsilon: the weight of the polynomial term (may be traced; the paper
        tunes it in [-1, 10] and uses 2 as the default, as optax does).
      axis: the class axis.
      class_weight: weight of each class, on both terms.
      label_smoothing: ``e`` in [0, 1].
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-floating ``logits``.
      ValueError: ``labels`` not of ``logits``' shape, ``class_weight`` not
        ``[C]``, ``axis`` out of range, bad ``reduction`` or
        ``label_smoothing``.

    References:
      Leng et al., PolyLoss: A Polynomial Expansion Perspective of
      Classification Loss Functions, ICLR 2022,
      https://arxiv.org/abs/2204.12511

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> t = jnp.array([[1.0, 0.0, 0.0], [0.2, 0.0, 0.8]])
      >>> print(np.asarray(jaxloss.poly_loss_cross_entropy(x, t)).round(4))  # optax's
      [0.2766 4.1638]
    """
    p = _dist_setup("logits", logits, labels, axis, reduction, label_smoothing, where)
    w = _class_vector("class_weight", class_weight, p.x, p.axis)
    r = logsumexp(p.x, p.axis)
    v = _per_class(w, p.targets, p.axis)
    loss = class_sum(p.x, v, p.labels, p.axis)
    loss = loss + hyper(epsilon, loss.dtype) * _poly_term(p.x, r, v, p.axis)
    return reduce(jnp.where(r.has_class, loss, jnp.nan), reduction, p.example_mask)


@value_checks({"labels": INDEX}, _num_classes)
def poly_loss_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Poly-1 cross-entropy (Leng et al. 2022) with integer class labels.

    `poly_loss_cross_entropy` on the one-hot (smoothed) target, which is
    formed by a comparison inside the computation, never taken as an input:

        loss = CE(x, y) + epsilon * sum_c w[c] t'[c] (1 - p[c])

    with ``CE`` the loss of `softmax_cross_entropy_with_integer_labels`
    (PyTorch's, with ``class_weight``, ``ignore_index`` and smoothing);
    without weights or smoothing the polynomial term is ``1 - p[y]``.
    ``"mean"`` divides as that loss does (by the target classes' weights
    when ``class_weight`` is given).

    Shape:
      - logits: ``[..., C, ...]`` with the classes on ``axis``.
      - labels: the per-example shape.
      - class_weight: ``[C]``.
      - where: the per-example shape, or ``logits.shape`` for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: integer class indices in ``[0, C)``; out-of-range labels that
        are not ``ignore_index`` give NaN.
      epsilon: the weight of the polynomial term (may be traced).
      axis: the class axis.
      class_weight: weight of each class, on both terms.
      ignore_index: a label value whose examples give 0 and leave the mean.
      label_smoothing: ``e`` in [0, 1].
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-integer ``labels`` or non-floating ``logits``.
      ValueError: ``labels`` not of the per-example shape, ``class_weight``
        not ``[C]``, ``axis`` out of range, bad ``reduction`` or
        ``label_smoothing``.

    References:
      Leng et al., PolyLoss, ICLR 2022, https://arxiv.org/abs/2204.12511

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> loss = jaxloss.poly_loss_cross_entropy_with_integer_labels(x, jnp.array([0, 2]))
      >>> print(np.asarray(loss).round(4))  # optax's, on one-hot labels
      [0.2766 4.286 ]
    """
    p = _integer_setup(logits, labels, axis, reduction, label_smoothing, where, ignore_index)
    w = _class_vector("class_weight", class_weight, p.x, p.axis)
    loss, w_y = integer_ce(p.x, p.target_index, p.axis, label_smoothing, 0.0, w)
    x, axis = p.x, p.axis
    r = logsumexp(x, axis)
    one_hot = is_class(p.target_index, x, axis).astype(x.dtype)
    target = smooth_labels(one_hot, label_smoothing, x.shape[axis])
    loss = loss + hyper(epsilon, loss.dtype) * _poly_term(x, r, _per_class(w, target, axis), axis)
    return finish_integer(
        loss, p.labels, p.num_classes, ignore_index, p.example_mask, reduction, w_y
    )


@value_checks({})
def softmax_kl_divergence(
    logits: ArrayLike,
    target_logits: ArrayLike,
    *,
    temperature: ArrayLike = 1.0,
    axis: int = -1,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Distillation loss: KL divergence between tempered softmaxes (Hinton et al.).

    The unreduced loss per example, with ``p = softmax(logits / T)`` (the
    student) and ``q = softmax(target_logits / T)`` (the teacher):

        loss = T ** 2 * sum_c q[c] * (log q[c] - log p[c])

    The ``T ** 2`` keeps the gradients' scale independent of ``T``.
    ``reduction="mean"`` is PyTorch's
    ``F.kl_div(F.log_softmax(s / T), F.log_softmax(t / T), log_target=True,
    reduction="batchmean") * T ** 2``. Gradients flow to both the student's
    and the teacher's logits (stop the teacher's with
    ``jax.lax.stop_gradient`` to train the student alone) and to
    ``temperature``. A class whose teacher logit is -inf gives 0; one whose
    student logit is -inf while the teacher gives it mass gives +inf.

    Shape:
      - logits, target_logits: ``[..., C, ...]`` with the classes on ``axis``.
      - where: the per-example shape, or ``logits.shape`` for a class mask
        (applied to both).
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      logits: the student's raw scores, floating dtype.
      target_logits: the teacher's raw scores, of the same shape.
      temperature: ``T > 0`` (may be traced).
      axis: the class axis.
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-floating ``logits`` or ``target_logits``.
      ValueError: shapes that differ, ``temperature`` not positive, ``axis``
        out of range, bad ``reduction``.

    References:
      Hinton et al., Distilling the Knowledge in a Neural Network, 2015,
      https://arxiv.org/abs/1503.02531

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> student = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> teacher = jnp.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.5]])
      >>> loss = jaxloss.softmax_kl_divergence(student, teacher, temperature=2.0)
      >>> print(np.asarray(loss).round(4))  # PyTorch's kl_div(log_target=True) * T**2
      [0.4813 0.1163]
    """
    t = concrete_value(temperature)
    if t is not None and not t > 0:
        raise ValueError(f"`temperature` must be positive; got {t:g}.")
    p = _dist_setup("logits", logits, target_logits, axis, reduction, 0.0, where)
    teacher = as_float_array("target_logits", target_logits).astype(p.x.dtype)
    if p.class_mask is not None:
        teacher = fill_masked(teacher, p.class_mask, -jnp.inf)
    elif p.example_mask is not None:
        teacher = fill_masked(teacher, jnp.expand_dims(p.example_mask, p.axis), 0)
    temp = hyper(temperature, p.x.dtype)

    def tempered(z):
        # (z - max z) / T, not z / T: exact differences at any magnitude (at
        # 1e10 a float32 step is 1024, and z / T rounded twice would differ).
        shifted = (z - jnp.expand_dims(row_max(z, p.axis)[0], p.axis)) / temp
        return log_softmax(shifted, logsumexp(shifted, p.axis), p.axis)

    log_p, log_q = tempered(p.x), tempered(teacher)
    mass = present(teacher)  # the teacher's classes; 0 * log 0 = 0 elsewhere
    log_q, log_p_safe = jnp.where(mass, log_q, 0), jnp.where(mass, log_p, 0)
    terms = jnp.where(mass, jnp.exp(log_q) * (log_q - log_p_safe), 0)
    loss = temp * temp * jnp.sum(terms, p.axis)
    return reduce(loss, reduction, p.example_mask)


# --------------------------------------------------------------------------
# KL divergence of given distributions.


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _xlogx(t: jax.Array, floor: float) -> jax.Array:
    """`t log t`, 0 at `t = 0`, with derivative `log max(t, floor) + 1`.

    The derivative at 0 is -inf; the floor keeps it finite and pointing
    towards larger `t`, as the `1 / p` floor of the probability losses does.
    """
    pos = t > 0
    return jnp.where(pos, t * jnp.log(jnp.where(pos, t, 1)), 0)


@_xlogx.defjvp
def _xlogx_jvp(floor, primals, tangents):
    (t,), (dt,) = primals, tangents
    return _xlogx(t, floor), (jnp.log(jnp.maximum(t, floor)) + 1) * dt


def _kl_setup(log_predictions, targets, name, axis, reduction, where):
    p = _dist_setup("log_predictions", log_predictions, targets, axis, reduction, 0.0, where)
    t = as_float_array(name, targets).astype(p.x.dtype)
    if p.example_mask is not None:  # masked examples: harmless targets, zero gradients
        t = fill_masked(t, jnp.expand_dims(p.example_mask, p.axis), 0)
    return p, t


def _kl_finish(terms, p: Prepared, reduction):
    if p.class_mask is not None:  # masked classes leave the sum
        terms = jnp.where(p.class_mask, terms, 0)
    return reduce(jnp.sum(terms, p.axis), reduction, p.example_mask)


@value_checks({"targets": UNIT})
def kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Kullback-Leibler divergence ``KL(targets || predictions)``.

    The unreduced loss per example, with ``t`` the target distribution and
    ``log p`` the predicted log-probabilities:

        loss = sum_c t[c] * (log t[c] - log p[c])

    ``optax.losses.kl_divergence`` (``reduction="none"``, with ``where`` as
    a class mask), PyTorch's ``F.kl_div(log_p, t)`` summed over the class
    axis (its ``reduction="batchmean"`` is ``"mean"`` here), and Keras'
    ``kl_divergence(t, p)`` where Keras' clipping of ``p`` and ``t`` to
    ``[1e-7, 1]`` does not bite. A target of 0 contributes 0, also where
    ``log p`` is -inf; target mass where ``log p`` is -inf gives +inf.

    Gradients: ``-t`` for ``log_predictions`` and ``log t + 1 - log p`` for
    ``targets``. At ``t = 0`` that derivative is -inf; it is evaluated at
    ``t = 1e-12`` instead (``4 / finfo.max`` for float16), finite and
    pointing towards larger ``t``, where optax and PyTorch give NaN. Use
    `kl_divergence_with_log_targets` for exact target gradients everywhere.

    Shape:
      - log_predictions, targets: ``[..., C, ...]`` with the classes on ``axis``.
      - where: the per-example shape, or the inputs' shape for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      log_predictions: predicted log-probabilities, floating dtype.
      targets: target probabilities in [0, 1].
      axis: the class axis.
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask, or a class mask (masked terms leave the sum).

    Returns:
      The divergence, float32 for half-precision inputs.

    Raises:
      TypeError: non-floating ``log_predictions`` or ``targets``.
      ValueError: shapes that differ, ``axis`` out of range, bad ``reduction``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> log_p = jax.nn.log_softmax(jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]]))
      >>> t = jnp.array([[0.7, 0.0, 0.3], [0.2, 0.5, 0.3]])
      >>> print(np.asarray(jaxloss.kl_divergence(log_p, t)).round(4))  # PyTorch's
      [0.2043 0.2277]
    """
    p, t = _kl_setup(log_predictions, targets, "targets", axis, reduction, where)
    floor = grad_floor(jnp.asarray(targets).dtype)
    return _kl_finish(_xlogx(t, floor) - xmul(t, p.x), p, reduction)


@value_checks({"log_targets": LOG_UNIT})
def kl_divergence_with_log_targets(
    log_predictions: ArrayLike,
    log_targets: ArrayLike,
    *,
    axis: int = -1,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Kullback-Leibler divergence with the targets as log-probabilities.

    The unreduced loss per example:

        loss = sum_c exp(log_t[c]) * (log_t[c] - log_p[c])

    ``optax.losses.kl_divergence_with_log_targets`` and PyTorch's
    ``F.kl_div(log_p, log_t, log_target=True)`` summed over the class axis.
    A target of -inf (probability 0) contributes 0 with zero gradients,
    where optax and PyTorch give NaN; target mass where ``log p`` is -inf
    gives +inf. The gradient with respect to ``log_t`` is
    ``t * (log_t + 1 - log_p)``.

    Shape:
      - log_predictions, log_targets: ``[..., C, ...]``, classes on ``axis``.
      - where: the per-example shape, or the inputs' shape for a class mask.
      - output: the per-example shape for ``reduction="none"``, else a scalar.

    Args:
      log_predictions: predicted log-probabilities, floating dtype.
      log_targets: target log-probabilities (``<= 0``; -inf allowed).
      axis: the class axis.
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask, or a class mask (masked terms leave the sum).

    Returns:
      The divergence, float32 for half-precision inputs.

    Raises:
      TypeError: non-floating ``log_predictions`` or ``log_targets``.
      ValueError: shapes that differ, ``axis`` out of range, bad ``reduction``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> log_p = jax.nn.log_softmax(jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]]))
      >>> log_t = jnp.log(jnp.array([[0.7, 0.0, 0.3], [0.2, 0.5, 0.3]]))
      >>> print(np.asarray(jaxloss.kl_divergence_with_log_targets(log_p, log_t)).round(4))
      [0.2043 0.2277]
    """
    p, log_t = _kl_setup(log_predictions, log_targets, "log_targets", axis, reduction, where)
    mass = log_t > -jnp.inf
    log_t = jnp.where(mass, log_t, 0)
    terms = jnp.where(mass, xmul(jnp.exp(log_t), log_t - p.x), 0)
    return _kl_finish(terms, p, reduction)
