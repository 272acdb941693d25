"""Binary and multi-label losses: elementwise, on probabilities or logits."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._common import (
    UNIT,
    Reduction,
    as_float_array,
    as_mask,
    as_real_array,
    broadcast_to,
    check_in_range,
    check_non_negative,
    check_reduction,
    clamped_log,
    compute_dtype,
    concrete_value,
    fill_masked,
    grad_floor,
    hyper,
    is_static_zero,
    reduce,
    smooth_labels,
    value_checks,
    xmul,
)
from ._core import modulator

ArrayLike = jax.typing.ArrayLike

_LOGITS_HINT = (
    " `logits` are raw scores; pass integer class labels to"
    " softmax_cross_entropy_with_integer_labels instead."
)


class Prepared(NamedTuple):
    """What every binary loss starts from, validated, upcast and broadcast."""

    x: jax.Array  # predictions in the compute dtype, masked entries set to a harmless value
    y: jax.Array  # labels, smoothed, broadcast to `x`
    weight: jax.Array | None  # the elementwise weight broadcast to `x`, or None
    mask: jax.Array | None  # `where` broadcast to `x`, or None
    floor: float  # the `1 / p` gradient floor of the input dtype


def _prepare(
    name: str,
    predictions: ArrayLike,
    labels: ArrayLike,
    weight: ArrayLike | None,
    label_smoothing: Any,
    reduction: str,
    where: ArrayLike | None,
    fill: float,
):
    """Validate, upcast and broadcast the arguments every binary loss takes.

    Masked entries of the predictions are replaced by the harmless `fill`
    (0 for logits, 1/2 for probabilities), so they give zero gradients.
    """
    check_reduction(reduction)
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    x = as_float_array(name, predictions)
    y = as_real_array("labels", labels)
    dtype = compute_dtype(x, y)
    floor = grad_floor(x.dtype)
    x = x.astype(dtype)
    hint = _per_example_hint(x.shape)
    y = broadcast_to("labels", y, x.shape, name, hint).astype(dtype)
    y = smooth_labels(y, label_smoothing, 2)
    w = None
    if weight is not None:
        w = as_real_array("weight", weight).astype(dtype)
        w = broadcast_to("weight", w, x.shape, name, hint)
    mask = None
    if where is not None:
        mask = broadcast_to("where", as_mask(where), x.shape, name, hint)
        x = fill_masked(x, mask, fill)
    return Prepared(x, y, w, mask, floor)


def _per_example_hint(shape: tuple[int, ...]) -> str:
    """What to do with one value per example of `[N, C, ...]` inputs, whose
    `[N]` array NumPy broadcasting would align with the trailing axis."""
    if len(shape) < 2:
        return ""
    per_example = (shape[0],) + (1,) * (len(shape) - 1)
    return (
        f" Broadcasting aligns trailing axes: one value per example needs shape "
        f"{per_example} (e.g. `where[:, None]`)."
    )


def _finish(loss, b: Prepared, reduction):
    if b.weight is not None:
        loss = xmul(b.weight, loss)  # a weight of 0 removes an infinite loss too
    return reduce(loss, reduction, b.mask)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _bce_on_probs(p: jax.Array, y: jax.Array, floor: float) -> jax.Array:
    return -(y * clamped_log(p) + (1 - y) * clamped_log(1 - p))


@_bce_on_probs.defjvp
def _bce_on_probs_jvp(floor, primals, tangents):
    p, y = primals
    dp, dy = tangents
    # PyTorch's BCELoss gradient, (p - y) / max(p (1 - p), 1e-12): the exact
    # derivative away from 0 and 1, finite at p = 0 and p = 1 where the naive
    # derivative of the clamped log would be 0 * inf. (`floor` is 1e-12 but
    # for float16 inputs, whose gradient must stay below 65504.)
    dl_dp = (p - y) / jnp.maximum(p * (1 - p), floor)
    dl_dy = clamped_log(1 - p) - clamped_log(p)
    return _bce_on_probs(p, y, floor), dl_dp * dp + dl_dy * dy


def _log_sigmoids(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    # log(sigmoid(x)) and log(1 - sigmoid(x)) = log_sigmoid(-x), stable for any x.
    return jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)


def _bce_on_log_probs(log_p, log_q, y):
    # -[y * log p + (1 - y) * log q]; xmul keeps the exact limits at
    # x = +-inf (0 * -inf would be NaN).
    return -(xmul(y, log_p) + xmul(1 - y, log_q))


def _bce_with_logits(x, y, pos_weight=None):
    """`-[pw * y * log p + (1 - y) * log q]` with one softplus, as PyTorch.

    With `c = pw * y + 1 - y` and `L = log(1 + exp(-|x|))` (the softplus of
    `-|x|`, at most log 2):

        loss = c * L + (1 - y) * x       for x >= 0
        loss = c * L - pw * y * x        for x < 0

    Half the transcendentals of two log-sigmoids. The `where` (not `abs`)
    keeps the derivative at x = 0 exact, and `xmul` the limits at x = +-inf.
    """
    nonneg = x >= 0
    softplus = jax.nn.softplus(jnp.where(nonneg, -x, x))
    if pos_weight is None:  # c = 1
        return softplus + xmul(jnp.where(nonneg, 1 - y, -y), x)
    pw_y = pos_weight * y
    return (pw_y + 1 - y) * softplus + xmul(jnp.where(nonneg, 1 - y, -pw_y), x)


def _alpha_t(alpha, y, dtype):
    if alpha is None:
        return None
    a = broadcast_to("alpha", as_real_array("alpha", alpha), y.shape, "labels")
    a = a.astype(dtype)
    return a * y + (1 - a) * (1 - y)


@value_checks({"probs": UNIT, "labels": UNIT})
def binary_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Binary cross-entropy on probabilities (PyTorch `BCELoss`).

    The unreduced loss, elementwise, with each log clamped to >= -100 as
    PyTorch does:

        loss = -w * [y * log(p) + (1 - y) * log(1 - p)]

    The gradient is PyTorch's, ``w * (p - y) / max(p * (1 - p), 1e-12)``:
    finite at ``p = 0`` and ``p = 1``. Prefer
    `sigmoid_binary_cross_entropy` on logits when you have them: it is
    exact where this loss must clamp.

    Shape:
      - probs: any shape ``[...]``.
      - labels, weight, where: broadcastable to ``probs``.
        One value per example of ``[N, C]`` inputs has shape ``[N, 1]``
        (``where[:, None]``): an ``[N]`` array lines up with the classes.
      - output: ``probs.shape`` for ``reduction="none"``, else a scalar.

    Args:
      probs: predicted probabilities in [0, 1], floating dtype.
      labels: targets in [0, 1], hard (0/1) or soft; bool and int accepted.
      weight: elementwise rescaling of the loss (PyTorch ``weight``).
      label_smoothing: ``e`` in [0, 1]; labels become ``y * (1 - e) + e / 2``
        before anything else (Keras).
      reduction: ``"none"``, ``"mean"`` or ``"sum"``. ``"mean"`` divides by
        the number of unmasked entries, as PyTorch (weights do not change the
        denominator); a mean over nothing is 0.
      where: boolean mask; masked entries give 0 and leave the mean.

    Returns:
      The loss, float32 for half-precision inputs.

    Raises:
      ValueError: shapes that do not broadcast to ``probs``, bad
        ``reduction`` or ``label_smoothing``.
      TypeError: non-floating ``probs``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> p = jnp.array([[0.4963, 0.7682, 0.0885], [0.1320, 0.3074, 0.6341]])
      >>> y = jnp.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
      >>> print(np.asarray(jaxloss.binary_cross_entropy(p, y)).round(4))
      [[0.6858 1.4619 2.4248]
       [2.025  0.3673 1.0054]]
      >>> print(np.asarray(jaxloss.binary_cross_entropy(p, y, reduction="mean")).round(4))
      1.3283
    """
    b = _prepare("probs", probs, labels, weight, label_smoothing, reduction, where, 0.5)
    return _finish(_bce_on_probs(b.x, b.y, b.floor), b, reduction)


@value_checks({"labels": UNIT})
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Binary cross-entropy on logits (PyTorch `BCEWithLogitsLoss`).

    The unreduced loss, elementwise, with ``s = sigmoid(x)``:

        loss = -w * [pos_weight * y * log(s) + (1 - y) * log(1 - s)]

    computed as ``log_sigmoid(x)`` and ``log_sigmoid(-x)``, so it is finite
    with finite gradients for every finite logit, and returns the exact
    limits (0 or +inf, never NaN) at ``x = +-inf``. Without options it equals
    ``optax.losses.sigmoid_binary_cross_entropy``.

    Shape:
      - logits: any shape ``[...]``, e.g. ``[N, C]`` for multi-label.
      - labels, weight, where: broadcastable to ``logits``.
        One value per example of ``[N, C]`` inputs has shape ``[N, 1]``
        (``where[:, None]``): an ``[N]`` array lines up with the classes.
      - pos_weight: broadcastable to ``logits`` from the trailing axes, e.g.
        ``[C]`` for ``[N, C]`` multi-label logits.
      - output: ``logits.shape`` for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: targets in [0, 1], hard or soft; bool and int accepted.
      weight: elementwise rescaling of the loss (PyTorch ``weight``).
      pos_weight: weight of the positive term, per class (PyTorch
        ``pos_weight``): ``n_negative / n_positive`` balances a class.
      label_smoothing: ``e`` in [0, 1]; labels become ``y * (1 - e) + e / 2``.
      reduction: ``"none"``, ``"mean"`` (over unmasked entries; 0 over
        nothing) or ``"sum"``.
      where: boolean mask; masked entries give 0 and leave the mean.

    Returns:
      The loss, float32 for half-precision inputs.

    Raises:
      ValueError: shapes that do not broadcast to ``logits``, bad
        ``reduction`` or ``label_smoothing``.
      TypeError: non-floating ``logits``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([2.0, -1.0, 0.5])
      >>> y = jnp.array([1.0, 0.0, 1.0])
      >>> print(np.asarray(jaxloss.sigmoid_binary_cross_entropy(x, y)).round(4))
      [0.1269 0.3133 0.4741]
      >>> loss = jaxloss.sigmoid_binary_cross_entropy(
      ...     x, y, pos_weight=jnp.array([3.0]), reduction="mean")
      >>> print(np.asarray(loss).round(4))
      0.7054
    """
    b = _prepare("logits", logits, labels, weight, label_smoothing, reduction, where, 0.0)
    pw = None
    if pos_weight is not None:
        pw = as_real_array("pos_weight", pos_weight).astype(b.x.dtype)
        pw = broadcast_to("pos_weight", pw, b.x.shape, "logits")
    return _finish(_bce_with_logits(b.x, b.y, pw), b, reduction)


@value_checks({"probs": UNIT, "labels": UNIT})
def binary_focal_loss(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Focal loss on probabilities (Lin et al. 2017; Keras formula).

    The unreduced loss, elementwise:

        p_t  = p * y + (1 - p) * (1 - y)
        a_t  = alpha * y + (1 - alpha) * (1 - y)      (1 if alpha is None)
        loss = w * a_t * (1 - p_t) ** gamma * BCE(p, y)

    with ``BCE`` as in `binary_cross_entropy` (logs clamped at -100).
    ``gamma=0, alpha=None`` equals `binary_cross_entropy` exactly.
    Per element this is Keras' ``binary_focal_crossentropy`` (which then
    averages the last axis, and clips probabilities to ``[1e-7, 1 - 1e-7]``
    where this loss does not). ``1 - p_t`` is floored at the smallest normal
    number inside the power, so gradients stay finite at ``p = 0`` and
    ``p = 1`` also for ``0 < gamma < 1``; the loss value is unchanged there
    (``BCE = 0``). Use `sigmoid_focal_loss` on logits where you can.

    Shape:
      - probs: any shape ``[...]``.
      - labels, alpha, weight, where: broadcastable to ``probs``.
        One value per example of ``[N, C]`` inputs has shape ``[N, 1]``
        (``where[:, None]``): an ``[N]`` array lines up with the classes.
      - output: ``probs.shape`` for ``reduction="none"``, else a scalar.

    Args:
      probs: predicted probabilities in [0, 1], floating dtype.
      labels: targets in [0, 1]; bool and int accepted.
      gamma: focusing exponent >= 0 (may be traced).
      alpha: weight of positives, ``1 - alpha`` of negatives; None for no
        balancing; a scalar or an array per class (may be traced).
      weight: elementwise rescaling of the loss.
      label_smoothing: ``e`` in [0, 1]; labels become ``y * (1 - e) + e / 2``
        before ``p_t`` and ``a_t`` are formed (Keras).
      reduction: ``"none"``, ``"mean"`` (over unmasked entries) or ``"sum"``.
      where: boolean mask; masked entries give 0 and leave the mean.

    Returns:
      The loss, float32 for half-precision inputs.

    Raises:
      ValueError: shapes that do not broadcast to ``probs``, negative
        ``gamma``, bad ``reduction`` or ``label_smoothing``.
      TypeError: non-floating ``probs``.

    References:
      Lin et al., Focal Loss for Dense Object Detection, ICCV 2017,
      https://arxiv.org/abs/1708.02002

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> p = jnp.array([0.9, 0.3, 0.6])
      >>> y = jnp.array([1.0, 0.0, 0.0])
      >>> print(np.asarray(jaxloss.binary_focal_loss(p, y, gamma=2.0)).round(4))
      [0.0011 0.0321 0.3299]
    """
    check_non_negative("gamma", gamma)
    b = _prepare("probs", probs, labels, weight, label_smoothing, reduction, where, 0.5)
    p, y = b.x, b.y
    one_minus_pt = y * (1 - p) + (1 - y) * p
    # Floored at the smallest normal: the power's derivative stays finite at
    # p_t = 1 for gamma < 1 (where BCE, and so the loss, is 0 anyway).
    tiny = jnp.finfo(p.dtype).tiny
    modulator = jnp.maximum(one_minus_pt, tiny) ** hyper(gamma, p.dtype)
    loss = modulator * _bce_on_probs(p, y, b.floor)
    a_t = _alpha_t(alpha, y, p.dtype)
    if a_t is not None:
        loss = a_t * loss
    return _finish(loss, b, reduction)


@value_checks({"labels": UNIT})
def sigmoid_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Focal loss on logits (Lin et al. 2017), computed in log space.

    The unreduced loss, elementwise, with ``p = sigmoid(x)``:

        p_t  = p * y + (1 - p) * (1 - y)
        a_t  = alpha * y + (1 - alpha) * (1 - y)      (1 if alpha is None)
        loss = w * a_t * (1 - p_t) ** gamma * BCE_with_logits(x, y)

    ``(1 - p_t) ** gamma`` is formed as
    ``exp(gamma * logaddexp(log y + log_sigmoid(-x), log(1-y) + log_sigmoid(x)))``,
    so loss, gradient and Hessian with respect to the logits stay finite for
    every finite logit, also for ``0 < gamma < 1`` (where the naive power has
    an infinite derivative at ``p_t = 1``) and for hard labels at large
    ``|x|``. Without options it equals ``optax.losses.sigmoid_focal_loss``
    and torchvision's ``sigmoid_focal_loss(reduction="none")``, and for hard
    labels kornia's ``binary_focal_loss_with_logits`` (for soft labels kornia
    weights ``y`` and ``1 - y`` terms by separate modulating factors);
    ``gamma=0, alpha=None`` equals `sigmoid_binary_cross_entropy`
    exactly. Gradients with respect to *labels* are finite for soft labels
    away from 0 and 1 (at hard labels and large ``|x|`` the true derivative
    ``(q - p) / (1 - p_t)`` exceeds float32).

    Shape:
      - logits: any shape ``[...]``.
      - labels, alpha, weight, where: broadcastable to ``logits``.
        One value per example of ``[N, C]`` inputs has shape ``[N, 1]``
        (``where[:, None]``): an ``[N]`` array lines up with the classes.
      - output: ``logits.shape`` for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: targets in [0, 1]; bool and int accepted.
      gamma: focusing exponent >= 0 (may be traced; differentiable).
      alpha: weight of positives, ``1 - alpha`` of negatives; None for no
        balancing; a scalar or an array per class (may be traced).
      weight: elementwise rescaling of the loss.
      label_smoothing: ``e`` in [0, 1]; labels become ``y * (1 - e) + e / 2``
        before ``p_t`` and ``a_t`` are formed (Keras).
      reduction: ``"none"``, ``"mean"`` (over unmasked entries) or ``"sum"``.
      where: boolean mask; masked entries give 0 and leave the mean.

    Returns:
      The loss, float32 for half-precision inputs.

    Raises:
      ValueError: shapes that do not broadcast to ``logits``, negative
        ``gamma``, bad ``reduction`` or ``label_smoothing``.
      TypeError: non-floating ``logits``.

    References:
      Lin et al., Focal Loss for Dense Object Detection, ICCV 2017,
      https://arxiv.org/abs/1708.02002

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([2.0, -1.0, 0.5])
      >>> y = jnp.array([1.0, 0.0, 1.0])
      >>> print(np.asarray(jaxloss.sigmoid_focal_loss(x, y, alpha=0.25)).round(4))
      [0.0005 0.017  0.0169]
    """
    check_non_negative("gamma", gamma)
    b = _prepare("logits", logits, labels, weight, label_smoothing, reduction, where, 0.0)
    loss = _sigmoid_focal(b.x, b.y, hyper(gamma, b.x.dtype))
    a_t = _alpha_t(alpha, b.y, b.x.dtype)
    if a_t is not None:
        loss = a_t * loss
    return _finish(loss, b, reduction)


def _focal_pieces(x, y, gamma):
    log_p, log_q = _log_sigmoids(x)
    # log(1 - p_t) = log(y * q + (1 - y) * p) in log space; log(0) = -inf
    # drops a term exactly.
    log_1m_pt = jnp.logaddexp(jnp.log(y) + log_q, jnp.log1p(-y) + log_p)
    bce = _bce_on_log_probs(log_p, log_q, y)
    return log_p, log_q, log_1m_pt, bce, jnp.exp(gamma * log_1m_pt)


@jax.custom_jvp
def _sigmoid_focal(x, y, gamma):
    """`(1 - p_t) ** gamma * BCE(x, y)`, elementwise, unweighted."""
    *_, bce, modulator = _focal_pieces(x, y, gamma)
    return modulator * bce


@_sigmoid_focal.defjvp
def _sigmoid_focal_jvp(primals, tangents):
    # Closed-form derivatives. Plain AD would carry the BCE (up to 3e38) into
    # the cotangent of the modulator before meeting its zero derivative
    # (inf * 0); here `bce * ratio` is formed first and stays finite.
    x, y, gamma = primals
    dx, dy, dgamma = tangents
    log_p, log_q, log_1m_pt, bce, modulator = _focal_pieces(x, y, gamma)
    out = modulator * bce
    # d log(1 - p_t) / dx = (1 - 2y) s(x) s(-x) / (1 - p_t) = (1 - 2y) * ratio
    ratio = jnp.exp(log_p + log_q - log_1m_pt)
    df_dx = modulator * (gamma * (1 - 2 * y) * (bce * ratio) + (jax.nn.sigmoid(x) - y))
    # d log(1 - p_t) / dy = (q - p) / (1 - p_t);  d BCE / dy = log q - log p
    dlog_dy = jnp.exp(log_q - log_1m_pt) - jnp.exp(log_p - log_1m_pt)
    df_dy = modulator * (gamma * bce * dlog_dy + (log_q - log_p))
    return out, df_dx * dx + df_dy * dy + out * log_1m_pt * dgamma


# --------------------------------------------------------------------------
# Asymmetric loss (ASL) for multi-label classification.


def _log_plus(log_a: jax.Array, b: jax.Array) -> jax.Array:
    """`log(a + b)` from `log a` and `b >= 0`: relative to the larger term,
    so that nothing overflows and the derivative in `b` is `1 / (a + b)`,
    finite also at `b = 0` (where `logaddexp(log a, log b)` would be NaN)."""
    log_b = jnp.log(jnp.where(b > 0, b, 1))
    a_larger = (b <= 0) | (log_a >= log_b)
    a_first = log_a + jnp.log1p(b * jnp.exp(-jnp.where(a_larger, log_a, 0)))
    b_first = log_b + jnp.log1p(jnp.exp(jnp.where(a_larger, 0, log_a - log_b)))
    return jnp.where(a_larger, a_first, b_first)


def _clipped_negatives(x: jax.Array, clip: Any) -> tuple[jax.Array, jax.Array]:
    """`(log q, log(1 - q))` for ASL's shifted negative probability
    `q = min(sigmoid(-x) + clip, 1)`, in log space.

    `1 - q = max(sigmoid(x) - clip, 0)` is formed as
    `sigmoid(x) * (1 - clip / sigmoid(x))`; it is exactly 0 (log -inf) where
    `sigmoid(x) <= clip`, and every unsafe input is masked first, so a traced
    `clip` of 0 and logits of any size give finite derivatives.
    """
    log_p, log_1mp = jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    if clip is None or is_static_zero(clip):
        return log_1mp, log_p
    c = hyper(clip, x.dtype)
    log_q = jnp.minimum(_log_plus(log_1mp, c), 0)
    ratio = c * jnp.exp(jnp.minimum(-log_p, 80))  # clip / sigmoid(x); >= 1 once it would overflow
    alive = ratio < 1
    log_1mq = jnp.where(alive, log_p + jnp.log1p(-jnp.where(alive, ratio, 0)), -jnp.inf)
    return log_q, log_1mq


@value_checks({"labels": UNIT})
def asymmetric_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma_neg: ArrayLike = 4.0,
    gamma_pos: ArrayLike = 1.0,
    clip: ArrayLike | None = 0.05,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    stop_focal_gradient: bool = False,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Asymmetric loss (ASL) for multi-label classification, in log space.

    The unreduced loss, elementwise, with ``p = sigmoid(x)``, the negatives'
    probability shifted by ``clip`` (``m``), and separate focusing exponents
    for positives and negatives:

        q    = min(1 - p + m, 1)                      (asymmetric clipping)
        p_t  = p * y + q * (1 - y)
        g    = gamma_pos * y + gamma_neg * (1 - y)
        loss = -w * (1 - p_t) ** g * [pos_weight * y * log(p) + (1 - y) * log(q)]

    The same values as ``timm``'s ``AsymmetricLossMultiLabel`` (and the
    paper's official code) with its ``weight``, ``pos_weight``,
    ``smoothing`` and ``reduction="none"`` / ``"mean"`` / ``"sum"`` (timm's
    default ``"batchmean"`` is ``reduction="sum"`` divided by the batch
    size). Those clamp ``p`` and ``q`` at ``eps = 1e-8`` before the log;
    here every log is formed in log space, so the loss is exact and its
    gradients stay finite and non-zero at any logit (timm's vanish beyond
    ``|x| > 18``, where the clamp takes over). Negatives whose probability
    ``p`` is at most ``clip`` give exactly 0 (they are discarded, as the
    paper intends). ``gamma_neg=gamma_pos=0, clip=0`` equals
    `sigmoid_binary_cross_entropy`.

    ``stop_focal_gradient=True`` treats the focusing weight ``(1 - p_t) ** g``
    as a constant in the gradient: timm's ``disable_torch_grad_focal_loss``.

    Shape:
      - logits: any shape ``[...]``, typically ``[N, C]``.
      - labels, weight, pos_weight, where: broadcastable to ``logits``
        (``[C]`` for one value per class). One value per example of
        ``[N, C]`` inputs has shape ``[N, 1]`` (``where[:, None]``): an
        ``[N]`` array lines up with the classes.
      - output: ``logits.shape`` for ``reduction="none"``, else a scalar.

    Args:
      logits: raw scores, floating dtype.
      labels: multi-hot (or soft) targets in [0, 1].
      gamma_neg: focusing exponent of the negatives, >= 0 (may be traced).
      gamma_pos: focusing exponent of the positives, >= 0 (may be traced).
      clip: probability margin ``m`` in [0, 1) shifted onto the negatives;
        None or 0 disables the shift (may be traced).
      weight: elementwise (or per-class) rescaling of the loss.
      pos_weight: weight of the positive term (PyTorch's ``pos_weight``).
      label_smoothing: ``e`` in [0, 1]; labels become ``y * (1 - e) + e / 2``.
      stop_focal_gradient: no gradient through the focusing weight.
      reduction: ``"none"``, ``"mean"`` (over unmasked entries) or ``"sum"``.
      where: boolean mask; masked entries give 0 and leave the mean.

    Returns:
      The loss, float32 for half-precision inputs.

    Raises:
      ValueError: shapes that do not broadcast to ``logits``, negative
        ``gamma_neg`` / ``gamma_pos``, ``clip`` outside [0, 1), bad
        ``reduction`` or ``label_smoothing``.
      TypeError: non-floating ``logits``.

    References:
      Ridnik et al., Asymmetric Loss For Multi-Label Classification, ICCV
      2021, https://arxiv.org/abs/2009.14119

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[2.0, -1.0, 0.5], [-3.0, 1.5, -0.2]])
      >>> y = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
      >>> print(np.asarray(jaxloss.asymmetric_loss(x, y)).round(4) + 0.0)  # timm's values
      [[0.0151 0.0006 0.0913]
       [0.     0.0367 0.4388]]
    """
    for name, g in (("gamma_neg", gamma_neg), ("gamma_pos", gamma_pos)):
        check_non_negative(name, g)
    c = None if clip is None else concrete_value(clip)
    if c is not None and not 0 <= c < 1:
        raise ValueError(f"`clip` must lie in [0, 1); got {c:g}.")
    b = _prepare("logits", logits, labels, weight, label_smoothing, reduction, where, 0.0)
    x, y = b.x, b.y
    log_p, log_1mp = jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    log_q, log_1mq = _clipped_negatives(x, clip)
    pw_y = y
    if pos_weight is not None:
        pw = broadcast_to("pos_weight", as_real_array("pos_weight", pos_weight), x.shape, "logits")
        pw_y = pw.astype(x.dtype) * y
    ce = -(xmul(pw_y, log_p) + xmul(1 - y, log_q))
    # 1 - p_t = y (1 - p) + (1 - y)(1 - q), relative to its larger log term:
    # no log(y), so the derivatives in `y` stay finite at y = 0 and 1.
    top = jnp.maximum(log_1mp, log_1mq)
    s = y * jnp.exp(log_1mp - top) + (1 - y) * jnp.exp(log_1mq - top)
    alive = s > 0
    log_1m_pt = top + jnp.log(jnp.where(alive, s, 1))
    g = hyper(gamma_pos, x.dtype) * y + hyper(gamma_neg, x.dtype) * (1 - y)
    focus = modulator(log_1m_pt, alive, g)
    if stop_focal_gradient:
        focus = jax.lax.stop_gradient(focus)
    return _finish(focus * ce, b, reduction)
