"""Overlap losses for segmentation: Dice and Tversky.

Unlike the per-pixel losses, these compare whole masks: per example and
class, the overlap of the predicted probabilities with the targets, summed
over the spatial axes. The classes are on the last axis, as in optax.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._common import (
    UNIT,
    Reduction,
    as_float_array,
    as_mask,
    as_real_array,
    broadcast_to,
    check_non_negative,
    check_reduction,
    compute_dtype,
    fill_masked,
    hyper,
    reduce,
    value_checks,
)
from ._core import along, log_softmax, logsumexp

ArrayLike = jax.typing.ArrayLike


def _summed_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """The spatial axes to sum over: all but the first and the classes by default."""
    if axis is None:
        return tuple(range(1, ndim - 1))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"`axis` {a} is out of range for `logits` of rank {ndim}.")
        out.append(a % ndim)
    if ndim - 1 in out:
        raise ValueError(
            f"`axis` {axis} includes the class axis (the last of `logits`' {ndim});"
            " the losses sum over spatial axes and average over classes."
        )
    return tuple(sorted(set(out)))


def _overlap(
    logits, labels, alpha, beta, class_weights, smooth, apply_softmax, ignore_background,
    axis, reduction, where,
):  # fmt: skip
    check_reduction(reduction)
    for name, v in (("alpha", alpha), ("beta", beta), ("smooth", smooth)):
        check_non_negative(name, v)
    x = as_float_array("logits", logits)
    t = as_real_array("labels", labels)
    if x.ndim == t.ndim - 1:  # one channel given without its axis
        x = x[..., None]
    if t.ndim == x.ndim - 1:
        t = t[..., None]
    if t.shape != x.shape or x.ndim == 0:
        raise ValueError(
            f"`labels` has shape {jnp.shape(labels)} but `logits` has shape "
            f"{jnp.shape(logits)}; they need the same shape [..., C] (one-hot "
            "or probability targets), or [...] for one channel."
        )
    x = x.astype(compute_dtype(x, t))
    t = t.astype(x.dtype)
    c = x.shape[-1]
    axes = _summed_axes(axis, x.ndim)
    mask = example_mask = None
    if where is not None:
        hint = f" It masks pixels: shape {x.shape[:-1]} (`logits` without the class axis)."
        mask = broadcast_to("where", as_mask(where), x.shape[:-1], "logits", hint)[..., None]
        x = fill_masked(x, mask, 0)
        example_mask = jnp.any(mask[..., 0], axes) if axes else mask[..., 0]
    if not apply_softmax:
        prob = x
    elif c == 1:
        prob = jax.nn.sigmoid(x)
    else:
        prob = jnp.exp(log_softmax(x, logsumexp(x, x.ndim - 1), x.ndim - 1))
    if mask is not None:  # masked pixels leave every sum
        prob, t = jnp.where(mask, prob, 0), jnp.where(mask, t, 0)
    inter = jnp.sum(prob * t, axes)
    fp = jnp.sum(prob, axes) - inter
    fn = jnp.sum(t, axes) - inter
    s = hyper(smooth, x.dtype)
    num = inter + s
    den = inter + hyper(alpha, x.dtype) * fp + hyper(beta, x.dtype) * fn + s
    empty = den == 0  # nothing predicted or present, and no smoothing: a match
    loss = jnp.where(empty, 0, 1 - num / jnp.where(empty, 1, den))
    if class_weights is not None:
        w = as_real_array("class_weights", class_weights).astype(x.dtype)
        if w.shape not in ((), (c,)):
            raise ValueError(
                f"`class_weights` must have shape ({c},), one entry per class of "
                f"`logits` with shape {x.shape}; got shape {w.shape}."
            )
        loss = along(jnp.broadcast_to(w, (c,)), loss.ndim, loss.ndim - 1) * loss
    if ignore_background and c > 1:
        loss = loss[..., 1:]
    return reduce(jnp.mean(loss, -1), reduction, example_mask)


_DOC = """

    Shape:
      - logits, labels: ``[B, ..., C]`` (classes last; spatial axes between),
        or ``[B, ...]`` for one channel.
      - class_weights: ``[C]``.
      - where: ``logits.shape`` without the class axis (a pixel mask).
      - output: ``[B]`` (``logits.shape`` without the summed axes and the
        classes) for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores (softmax over the classes, or a sigmoid for one
        channel), or probabilities with ``apply_softmax=False``.
      labels: one-hot (or probability) targets of the same shape.
      alpha: weight of the false positives, ``sum p (1 - t)`` (may be traced).
      beta: weight of the false negatives, ``sum (1 - p) t`` (may be traced).
      class_weights: scales each class's loss before the mean over classes.
      smooth: added to the numerator and the denominator (may be traced).
      apply_softmax: False when ``logits`` are already probabilities.
      ignore_background: leave class 0 out of the mean over classes.
      axis: the axes summed over; default all but the first and the last.
      reduction: ``"none"`` (per example), ``"mean"`` (over examples with an
        unmasked pixel) or ``"sum"``.
      where: a pixel mask; masked pixels leave every sum.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-floating ``logits``.
      ValueError: ``labels`` not of ``logits``' shape, ``axis`` out of range
        or containing the class axis, ``class_weights`` not ``[C]``, negative
        ``alpha``, ``beta`` or ``smooth``, bad ``reduction``.
"""


def _with_doc(fn):
    head, examples = fn.__doc__.split("\n    Examples:")
    fn.__doc__ = head.rstrip() + "\n" + _DOC + "\n    Examples:" + examples
    return fn


@value_checks({"labels": UNIT})
@_with_doc
def dice_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    smooth: ArrayLike = 1.0,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    apply_softmax: bool = True,
    ignore_background: bool = False,
    axis: int | tuple[int, ...] | None = None,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Soft Dice loss (Milletari et al. 2016), per example, mean over classes.

    Per example and class ``c``, with ``p`` the predicted probabilities
    and ``t`` the targets, each summed over the spatial axes:

        I = sum p t,   FP = sum p (1 - t),   FN = sum (1 - p) t
        dice[c] = 1 - (I + smooth) / (I + alpha FP + beta FN + smooth)

    and the loss is the mean over classes of ``class_weights[c] * dice[c]``.
    ``alpha = beta = 0.5`` is the Dice coefficient ``2I / (sum p + sum t)``;
    other values are the Tversky index (see `tversky_loss`).

    ``optax.losses.dice_loss`` with its defaults (its per-example output is
    ``reduction="none"`` here; optax's ``reduction`` chooses how classes are
    combined, and this loss always averages them). Keras' ``dice`` is the
    one-channel case with ``smooth=1e-7`` summed over every axis but the
    first; MONAI's ``DiceLoss(softmax=True, smooth_nr=2 * s, smooth_dr=2 * s,
    reduction="none")`` (classes on axis 1) averaged over its classes is
    ``smooth=s`` here. A class absent from both prediction and target
    with ``smooth=0`` counts as a perfect match (0, not NaN).

    References:
      Milletari, Navab and Ahmadi, V-Net: Fully Convolutional Neural Networks
      for Volumetric Medical Image Segmentation, 3DV 2016,
      https://arxiv.org/abs/1606.04797

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]]])  # [B=1, H=3, C=2]
      >>> labels = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
      >>> print(np.asarray(jaxloss.dice_loss(logits, labels)).round(4))  # optax's
      [0.1141]
    """
    return _overlap(
        logits, labels, alpha, beta, class_weights, smooth, apply_softmax,
        ignore_background, axis, reduction, where,
    )  # fmt: skip


@value_checks({"labels": UNIT})
@_with_doc
def tversky_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike = 0.3,
    beta: ArrayLike = 0.7,
    class_weights: ArrayLike | None = None,
    smooth: ArrayLike = 1.0,
    apply_softmax: bool = True,
    ignore_background: bool = False,
    axis: int | tuple[int, ...] | None = None,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Tversky loss (Salehi et al. 2017): Dice with false positives and false
    negatives weighed apart.

    `dice_loss`'s formula, with ``alpha`` weighing the false positives and
    ``beta`` the false negatives; the defaults 0.3 and 0.7 (the paper's)
    favour recall on small structures. ``alpha`` weighs false positives as
    in optax's ``dice_loss`` and MONAI's ``TverskyLoss``; Keras'
    ``tversky(y_true, y_pred, alpha, beta)`` swaps the two (its ``alpha``
    weighs false negatives), so Keras' ``alpha=a, beta=b`` is
    ``tversky_loss(..., alpha=b, beta=a)`` here.

    References:
      Salehi, Erdogmus and Gholipour, Tversky Loss Function for Image
      Segmentation Using 3D Fully Convolutional Deep Networks, 2017,
      https://arxiv.org/abs/1706.05721

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]]])  # [B=1, H=3, C=2]
      >>> labels = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
      >>> print(np.asarray(jaxloss.tversky_loss(logits, labels)).round(4))  # optax's
      [0.1093]
    """
    return _overlap(
        logits, labels, alpha, beta, class_weights, smooth, apply_softmax,
        ignore_background, axis, reduction, where,
    )  # fmt: skip
