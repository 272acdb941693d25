"""Multi-class losses: softmax / categorical cross-entropy and softmax focal loss.

Every loss here is a short formula over a few per-example statistics of the
logits (their logsumexp, the target logit, weighted sums over classes),
computed without building a one-hot array. A logit of -inf (or a class that
``where`` masks) is a class that does not exist for that example: it leaves
the softmax, and its terms leave every sum.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from ._common import (
    INDEX,
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
    grad_floor,
    hyper,
    is_static_zero,
    reduce,
    smooth_labels,
    value_checks,
    xmul,
)

ArrayLike = jax.typing.ArrayLike

_FLOAT_LABELS_HINT = " For probability (or one-hot) targets use softmax_cross_entropy."


def _num_classes(bound) -> int:
    x = bound.arguments.get("logits")
    axis = bound.arguments.get("axis", -1)
    return jnp.shape(x)[axis]


# --------------------------------------------------------------------------
# Shared pieces.


def _prepare(
    name: str,
    logits: ArrayLike,
    axis: Any,
    reduction: str,
    label_smoothing: Any,
    where: ArrayLike | None,
    *others: ArrayLike | None,
):
    """Validate and upcast the logits (or probabilities) and apply `where`.

    `where` with the rank of `logits` is a class mask: masked classes become
    -inf and leave the softmax (as optax); an example whose classes are all
    masked is masked. Otherwise it is a per-example mask, broadcastable to the
    per-example shape; masked examples' logits are replaced by 0 so that they
    give zero gradients whatever they held.

    Returns `(x, axis, mask, class_mask)`: `mask` per example (or None) and
    the class mask `where` gave (or None).
    """
    check_reduction(reduction)
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    x = as_float_array(name, logits)
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
            x = jnp.where(class_mask, x, -jnp.inf if name == "logits" else 0)
            mask = jnp.any(class_mask, axis)
        else:
            hint = f" A per-example mask has shape {example_shape}; a class mask {x.shape}."
            mask = broadcast_to("where", m, example_shape, name, hint)
            x = jnp.where(jnp.expand_dims(mask, axis), x, 0)
    return x, axis, mask, class_mask


def _class_vector(name: str, v: ArrayLike | None, x: jax.Array, axis: int):
    """A per-class vector (`class_weight`, `alpha`) of shape `[C]` or scalar.

    Returns it shaped to broadcast along `axis` of `x`, in `x`'s dtype.
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
    return v if w is None else _along(w, v.ndim, axis) * v


def _along(v: jax.Array, ndim: int, axis: int) -> jax.Array:
    """A `[C]` vector reshaped to broadcast along `axis` of an `ndim` array."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


class _Lse(NamedTuple):
    """A logsumexp split as `lse = m + log_s`, with `m` the row max.

    Quantities relative to `m` (`x - m`, `log_s`) keep their precision at
    large logits, where `x - lse` would round away e.g. the `log 2` of a tie
    at 1e30.
    """

    m: jax.Array  # row max (the lowest float for a row without classes), no gradient
    log_s: jax.Array  # log sum exp(x - m)
    has_class: jax.Array  # False where every logit is -inf

    @property
    def lse(self):
        return self.m + self.log_s


def _logsumexp(x: jax.Array, axis: int, fresh: bool = False) -> _Lse:
    """Per-example logsumexp over `axis`, NaN-free where no class exists.

    A row whose logits are all -inf gets `m` the lowest float and `log_s = 0`
    with zero gradients (instead of -inf and NaN gradients) and
    `has_class = False`. `m` is floored with `maximum`, not replaced with
    `where`: XLA:CPU fuses a `maximum` into the reductions over `x - m` that
    follow but not a select, which would cost a pass over memory.

    `fresh=True` differentiates `log_s` with a softmax formed anew from `x`
    in the gradient pass, where plain AD keeps the sum's `exp(x - m)`, which
    XLA writes out to memory to share it. That trades a pass over memory for
    a second exponential. It pays off with label smoothing, whose sum forms
    the softmax anew in the gradient anyway (`_ce_sum`); measured on
    XLA:CPU, the plain cross-entropy and the focal losses were slower
    with it.
    """
    top = jnp.max(x, axis)
    has_class = top > -jnp.inf
    m = jax.lax.stop_gradient(jnp.maximum(top, jnp.finfo(x.dtype).min))
    log_s = (_log_s_fresh if fresh else _log_s)(x, m, has_class, axis)
    return _Lse(m, log_s, has_class)


def _log_s(x, m, has_class, axis):
    """`log sum exp(x - m)` over `axis`; 0 where `has_class` is False."""
    s = jnp.sum(jnp.exp(x - jnp.expand_dims(m, axis)), axis)
    return jnp.log(jnp.where(has_class, s, 1))


_log_s_fresh = jax.custom_jvp(_log_s, nondiff_argnums=(3,))


@_log_s_fresh.defjvp
def _log_s_fresh_jvp(axis, primals, tangents):
    # `m` carries no gradient (it is stopped); the barrier gives the gradient
    # its own `x - m`, which XLA would otherwise share with the sum.
    (x, m, has_class), (dx, _, _) = primals, tangents
    log_s = _log_s_fresh(x, m, has_class, axis)
    shift = jnp.expand_dims(jax.lax.optimization_barrier(m), axis)
    p = jnp.exp((x - shift) - jnp.expand_dims(log_s, axis))
    return log_s, jnp.sum(p * dx, axis)


def _log_softmax(x: jax.Array, r: _Lse, axis: int) -> jax.Array:
    """`x - lse`, formed as `(x - m) - log_s` for precision."""
    return (x - jnp.expand_dims(r.m, axis)) - jnp.expand_dims(r.log_s, axis)


def _pick(x: jax.Array, index: jax.Array, axis: int) -> jax.Array:
    """`x[..., index, ...]` along `axis`: a gather, no one-hot array."""
    return jnp.squeeze(jnp.take_along_axis(x, jnp.expand_dims(index, axis), axis), axis)


def _is_class(index: jax.Array, x: jax.Array, axis: int) -> jax.Array:
    """`c == index` for every class `c` of `x`, as a fused comparison."""
    iota = jax.lax.broadcasted_iota(index.dtype, x.shape, axis)
    return iota == jnp.expand_dims(index, axis)


def _present(x: jax.Array) -> jax.Array:
    """The classes that exist: logits above -inf."""
    return x > -jnp.inf


def _ce_stats(x, v, required, axis):
    """`(S, V, r)` per example: `S = sum_c v_c (lse - x_c)` and
    `V = sum_c v_c` over the classes that exist, `v` broadcastable to `x`,
    and `r` the logsumexp of `x`. `S` is +inf where `required` (None, or an
    array broadcastable to `x`) puts positive mass on an absent class: a
    prediction that gives the target probability 0.

    Most batches hold no -inf logit, and there the plain sums are exact and
    XLA fuses them into its reductions, while the select that drops absent
    classes does not fuse and costs a pass over memory. So the plain sums
    are taken first; only if some example's sum is not finite (it holds a
    -inf logit, or overflowed) does a `cond` take the guarded sums, for
    those examples alone, so that an example's loss never depends on the
    others. (Under `vmap` the `cond` becomes a select and both run.)
    """
    r = _logsumexp(x, axis)
    v = jnp.reshape(v, (1,) * (x.ndim - jnp.ndim(v)) + jnp.shape(v))
    axis = axis % x.ndim
    # `x + (-m)`, not `x - m`: XLA would share `x - m` with the logsumexp and
    # write it out to memory. Relative to the max, so that large logits do
    # not cancel.
    neg_m = jnp.expand_dims(-r.m, axis)

    def sums(v, gap):
        # V from `v` broadcast along the classes only: no [N, C] array of
        # class weights, which XLA would write out.
        along = jnp.broadcast_to(v, v.shape[:axis] + x.shape[axis : axis + 1] + v.shape[axis + 1 :])
        big_v = jnp.broadcast_to(jnp.sum(along, axis), r.m.shape)
        return big_v * r.log_s - jnp.sum(gap * v, axis), big_v

    plain = sums(v, x + neg_m)
    ok = jnp.isfinite(plain[0])

    def guarded():
        present = _present(x)
        s = sums(jnp.where(present, v, 0), jnp.where(present, x + neg_m, 0))
        if required is not None:
            impossible = jnp.any(~present & (required > 0), axis)
            s = (jnp.where(impossible, jnp.inf, s[0]), s[1])
        return tuple(jnp.where(ok, a, b) for a, b in zip(plain, s, strict=True))

    s, big_v = jax.lax.cond(jnp.all(ok), lambda: plain, guarded)
    return s, big_v, r


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _ce_sum(x, v, required, axis):
    """`sum_c v_c (lse - x_c)` over the classes that exist (`x_c > -inf`).

    Cross-entropy against (unnormalised) targets `v`, broadcastable to `x`.
    Target mass on an absent class is dropped (the label-smoothing share),
    unless `required` (the unsmoothed targets, or None) puts mass there: then
    the loss is +inf, as the integer-label loss gives for a label whose logit
    is -inf. Its derivatives are written out (`v` need not sum to 1):

        d/dx_c = p_c V - v_c,   d/dv_c = lse - x_c     (0 for absent classes)

    which XLA fuses into one elementwise pass, where differentiating the
    `cond` in `_ce_stats` would store its branches' intermediates.
    """
    return _ce_stats(x, v, required, axis)[0]


@functools.partial(_ce_sum.defjvp, symbolic_zeros=True)
def _ce_sum_jvp(axis, primals, tangents):
    # `required` only decides where the loss is infinite: no derivative.
    (x, v, required), (dx, dv, _) = primals, tangents
    s, big_v, r = _ce_stats(x, v, required, axis)
    present = _present(x)
    # Copies of the max and of `v` behind a barrier: XLA would otherwise
    # merge the gradient's `x - m` and broadcast `v` with the forward's and
    # write them out to memory to share them.
    m, v = jax.lax.optimization_barrier((r.m, v))
    log_p = _log_softmax(x, r._replace(m=m), axis)
    ds = jnp.zeros_like(s)
    if not isinstance(dx, SymbolicZero):
        gx = jnp.exp(log_p) * jnp.expand_dims(big_v, axis) - v
        ds = ds + jnp.sum(jnp.where(present, gx, 0) * dx, axis)
    if not isinstance(dv, SymbolicZero):
        ds = ds + jnp.sum(jnp.where(present, -log_p, 0) * dv, axis)
    return s, ds


def integer_ce(x, index, axis, label_smoothing, z_loss, w=None):
    """The PyTorch cross-entropy with class indices, per example, unreduced.

        loss = (1 - e) * w_y * (lse - x_y)
               + e / C * sum_c w_c * (lse - x_c)      (the smoothing term)
               + z * lse ** 2                         (z-loss)

    NaN where no class exists. Returns `(loss, w_y)` (`w_y` None without
    weights). Shared with `linear_softmax_cross_entropy`, which applies it to
    one chunk of logits at a time.
    """
    smoothing = not is_static_zero(label_smoothing)
    r = _logsumexp(x, axis, fresh=smoothing)
    loss = r.log_s - (_pick(x, index, axis) - r.m)  # lse - x_y, relative to the max
    w_y = None
    if w is not None:
        w_y = w[index]
        loss = w_y * loss
    if smoothing:
        e = hyper(label_smoothing, loss.dtype)
        wc = jnp.ones((), x.dtype) if w is None else _along(w, x.ndim, axis)
        loss = (1 - e) * loss + e / x.shape[axis] * _ce_sum(x, wc, None, axis)
    loss = loss + _z_term(z_loss, r.lse)
    return jnp.where(r.has_class, loss, jnp.nan), w_y


def _z_term(z_loss, lse):
    """`z * lse ** 2`, as `(z * lse) * lse`: exactly 0 for z = 0 (also traced)
    and no overflow of `lse ** 2` before the small `z` scales it."""
    if is_static_zero(z_loss):
        return jnp.zeros_like(lse)
    return (hyper(z_loss, lse.dtype) * lse) * lse


def label_masks(labels, num_classes, ignore_index, mask):
    """`(keep, bad)`: the examples that count (None: all) and the kept ones
    whose label is outside `[0, C)` (they give NaN, never a plausible number)."""
    keep = mask
    if ignore_index is not None:
        keep = labels != ignore_index if keep is None else keep & (labels != ignore_index)
    bad = (labels < 0) | (labels >= num_classes)
    return keep, bad if keep is None else bad & keep


def finish_integer(loss, labels, num_classes, ignore_index, mask, reduction, w_y=None):
    """Mask ignored examples, poison bad labels with NaN, and reduce.

    `"mean"` divides by the number of kept examples, or by the sum of their
    target classes' weights when `w_y` is given (PyTorch); 0 over nothing.
    """
    keep, bad = label_masks(labels, num_classes, ignore_index, mask)
    loss = jnp.where(bad, jnp.nan, loss)
    normalizer = None
    if reduction == "mean" and w_y is not None:
        normalizer = jnp.sum(w_y if keep is None else jnp.where(keep, w_y, 0))
    return reduce(loss, reduction, keep, normalizer)


def _modulator(log_1m_p, defined, gamma):
    """`(1 - p) ** gamma` from `log(1 - p)`, in log space.

    Where `defined` is False, `1 - p` is exactly 0 (the only class left) and
    the factor is `0 ** gamma`. Its derivatives stay finite for every finite
    logit, also for 0 < gamma < 1.
    """
    g = hyper(gamma, log_1m_p.dtype)
    safe = jnp.where(defined, log_1m_p, 0)
    return jnp.where(defined, jnp.exp(g * safe), (g == 0).astype(log_1m_p.dtype))


def _integer_setup(logits, labels, axis, reduction, label_smoothing, where, ignore_index):
    y = as_index_array("labels", labels, _FLOAT_LABELS_HINT)
    x, axis, mask, _ = _prepare("logits", logits, axis, reduction, label_smoothing, where)
    example_shape = x.shape[:axis] + x.shape[axis + 1 :]
    if y.shape != example_shape:
        raise ValueError(
            f"`labels` has shape {y.shape} but `logits` has shape {x.shape}; "
            f"integer labels have the per-example shape {example_shape} "
            f"(`logits` without axis={axis}). For probability targets use "
            "softmax_cross_entropy."
        )
    check_ignore_index(ignore_index)
    c = x.shape[axis]
    index = jnp.clip(y, 0, c - 1)  # out-of-range labels are poisoned later
    return x, y, index, axis, mask, c


def _dist_setup(name, predictions, labels, axis, reduction, label_smoothing, where):
    x, axis, mask, class_mask = _prepare(
        name, predictions, axis, reduction, label_smoothing, where, labels
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
    raw = t.astype(x.dtype)
    t = smooth_labels(raw, label_smoothing, x.shape[axis])
    return x, t, raw, axis, mask, class_mask


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
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy with integer class labels (PyTorch `cross_entropy`).

    The unreduced loss per example, with ``lse = logsumexp(x)`` over the
    class axis, ``w`` the class weights (1 if None), ``e`` the label
    smoothing and ``z`` the z-loss coefficient::

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
    :func:`sigmoid_binary_cross_entropy` on ``x`` with label ``y == 0``.

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
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      where: per-example mask (masked examples give 0 and leave the mean),
        or a class mask of ``logits``' shape (masked classes leave the
        softmax, as optax).

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-integer ``labels`` or non-floating ``logits``.
      ValueError: ``labels`` not of the per-example shape, ``class_weight``
        not ``[C]``, ``axis`` out of range, bad ``reduction`` or
        ``label_smoothing``.

    Example:
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
    """
    x, y, index, axis, mask, c = _integer_setup(
        logits, labels, axis, reduction, label_smoothing, where, ignore_index
    )
    w = _class_vector("class_weight", class_weight, x, axis)
    loss, w_y = integer_ce(x, index, axis, label_smoothing, z_loss, w)
    return finish_integer(loss, y, c, ignore_index, mask, reduction, w_y)


@value_checks({"labels": UNIT})
def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy with probability targets.

    The unreduced loss per example, with ``t' = (1 - e) * t + e / C``::

        loss = -sum_c w[c] * t'[c] * log_softmax(x)[c]  +  z * lse(x) ** 2

    As ``torch.nn.functional.cross_entropy`` with probability targets,
    including its ``"mean"`` with ``weight`` (divide by the number of
    examples). Without options it equals
    ``optax.losses.softmax_cross_entropy``, also with optax's class-mask
    ``where`` for targets without mass on masked classes: masked classes
    (and classes whose logit is -inf) leave the softmax and the sum. Target
    mass on such a class gives +inf, as a label whose logit is -inf does in
    PyTorch, optax and :func:`softmax_cross_entropy_with_integer_labels`
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
      reduction: ``"none"``, ``"mean"`` (over unmasked examples) or ``"sum"``.
      where: per-example mask or class mask.

    Returns:
      The loss, float32 for half-precision logits.

    Raises:
      TypeError: non-floating ``logits``.
      ValueError: ``labels`` not of ``logits``' shape, ``class_weight`` not
        ``[C]``, ``axis`` out of range, bad ``reduction`` or
        ``label_smoothing``.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> t = jnp.array([[1.0, 0.0, 0.0], [0.2, 0.0, 0.8]])
      >>> print(np.asarray(jaxloss.softmax_cross_entropy(x, t)).round(4))
      [0.0951 2.3573]
    """
    x, t, raw, axis, mask, _ = _dist_setup(
        "logits", logits, labels, axis, reduction, label_smoothing, where
    )
    w = _class_vector("class_weight", class_weight, x, axis)
    r = _logsumexp(x, axis)
    loss = _ce_sum(x, _per_class(w, t, axis), raw, axis)
    loss = loss + _z_term(z_loss, r.lse)
    loss = jnp.where(r.has_class, loss, jnp.nan)
    return reduce(loss, reduction, mask)


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
    :func:`binary_cross_entropy`, ``t' = (1 - e) * t + e / C``::

        loss = -sum_c w[c] * t'[c] * log(p[c])

    Per example this is ``sklearn.metrics.log_loss`` and Keras
    ``categorical_crossentropy(from_logits=False)`` for probabilities away
    from 0 and 1 (both clip probabilities to ``[eps, 1 - eps]``; Keras also
    renormalises). No renormalisation here: pass what your softmax gave.
    The gradient is ``-w t' / max(p, 1e-12)``: finite at ``p = 0``. Prefer
    :func:`softmax_cross_entropy` on logits where you have them.

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

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> y = jnp.eye(3)[jnp.array([2, 1, 0])]
      >>> p = jnp.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]])
      >>> loss = jaxloss.categorical_cross_entropy(p, y, reduction="mean")
      >>> print(f"{loss:.6f}")  # sklearn.metrics.log_loss: 1.3783888522474517
      1.378389
    """
    p, t, _, axis, mask, present = _dist_setup(
        "probs", probs, labels, axis, reduction, label_smoothing, where
    )
    w = _class_vector("class_weight", class_weight, p, axis)
    terms = xmul(t, clamped_log(p, grad_floor(jnp.asarray(probs).dtype)))
    if present is not None:  # masked classes leave the sum
        terms = jnp.where(present, terms, 0)
    return reduce(-jnp.sum(_per_class(w, terms, axis), axis), reduction, mask)


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
    ``t' = (1 - e) * t + e / C``::

        loss = -sum_c alpha[c] * t'[c] * (1 - p[c]) ** gamma * log(p[c])

    Keras ``CategoricalFocalCrossentropy(from_logits=True)`` (which clips
    ``p`` to ``[1e-7, 1 - 1e-7]``; this loss does not need to).
    ``log(1 - p[c])`` is computed stably: ``log1p(-p[c])`` for every class
    but the most likely, whose ``1 - p`` is the logsumexp of the others. So
    loss, gradient and Hessian stay finite for every finite logit, also for
    ``0 < gamma < 1``. ``gamma=0, alpha=None`` equals
    :func:`softmax_cross_entropy` exactly. Target mass on a class whose
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

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
      >>> t = jnp.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
      >>> print(np.asarray(jaxloss.softmax_focal_loss(x, t, gamma=2.0)).round(4))
      [2.1005 0.0132]
    """
    check_non_negative("gamma", gamma)
    x, t, raw, axis, mask, _ = _dist_setup(
        "logits", logits, labels, axis, reduction, label_smoothing, where
    )
    a = _class_vector("alpha", alpha, x, axis)
    r = _logsumexp(x, axis)
    log_p = _log_softmax(x, r, axis)
    # log(1 - p_c): log1p(-p_c) is accurate where p_c <= 1/2, i.e. for every
    # class but the most likely; for that one, 1 - p is the others' mass.
    top = _is_class(jnp.argmax(x, axis), x, axis)
    rest = _logsumexp(jnp.where(top, -jnp.inf, x), axis)
    log_1m_top = jnp.expand_dims((rest.m - r.m) + (rest.log_s - r.log_s), axis)
    log_1m_p = jnp.where(top, log_1m_top, jnp.log1p(-jnp.exp(jnp.where(top, -1.0, log_p))))
    defined = ~top | jnp.expand_dims(rest.has_class, axis)
    modulated = _modulator(log_1m_p, defined, gamma) * t
    loss = _ce_sum(x, _per_class(a, modulated, axis), raw, axis)
    loss = jnp.where(r.has_class, loss, jnp.nan)
    return reduce(loss, reduction, mask)


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

    The unreduced loss per example, ``p = softmax(x)``::

        loss = -alpha[y] * (1 - p[y]) ** gamma * log(p[y])

    with ``log(1 - p[y])`` the logsumexp of the other classes minus that of
    all, so loss, gradient and Hessian stay finite for every finite logit,
    also for ``0 < gamma < 1``. No one-hot array is built. ``gamma=0,
    alpha=None`` equals :func:`softmax_cross_entropy_with_integer_labels`
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

    Example:
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
    x, y, index, axis, mask, c = _integer_setup(
        logits, labels, axis, reduction, 0.0, where, ignore_index
    )
    a = _class_vector("alpha", alpha, x, axis)
    r = _logsumexp(x, axis)
    x_y = _pick(x, index, axis)
    # log(1 - p_y) = logsumexp of the other classes - lse: exact in log space.
    rest = _logsumexp(jnp.where(_is_class(index, x, axis), -jnp.inf, x), axis)
    log_1m_p = (rest.m - r.m) + (rest.log_s - r.log_s)
    loss = _modulator(log_1m_p, rest.has_class, gamma) * (r.log_s - (x_y - r.m))
    if a is not None:
        loss = a[index] * loss
    loss = jnp.where(r.has_class, loss, jnp.nan)
    return finish_integer(loss, y, c, ignore_index, mask, reduction)
