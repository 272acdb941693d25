"""The rules every loss shares, each written once.

Validation (static, at trace time), upcasting, label smoothing, masking with
``where``, reduction, and `checked` (runtime value checks) live here.
The loss modules state their formulas and call these pieces.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify as _checkify

Reduction = Literal["none", "mean", "sum"]
_REDUCTIONS = ("none", "mean", "sum")

F = TypeVar("F", bound=Callable[..., Any])
ArrayLike = jax.typing.ArrayLike


# --------------------------------------------------------------------------
# Static validation: raised at trace time, so also under `jax.jit`.


def check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"`reduction` must be one of 'none', 'mean', 'sum'; got {reduction!r}.")


def as_float_array(name: str, x: jax.typing.ArrayLike, hint: str = "") -> jax.Array:
    """`x` as an array, which must have a floating dtype (`TypeError` otherwise)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must have a floating-point dtype; got {x.dtype}.{hint}")
    return x


def as_real_array(name: str, x: jax.typing.ArrayLike) -> jax.Array:
    """`x` as an array of booleans, integers or floats (`TypeError` otherwise)."""
    x = jnp.asarray(x)
    if not (
        jnp.issubdtype(x.dtype, jnp.floating)
        or jnp.issubdtype(x.dtype, jnp.integer)
        or x.dtype == jnp.bool_
    ):
        raise TypeError(f"`{name}` must be a real-valued array; got dtype {x.dtype}.")
    return x


def as_index_array(name: str, x: jax.typing.ArrayLike, hint: str = "") -> jax.Array:
    """`x` as an array of integer class indices (`TypeError` otherwise)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"`{name}` must hold integer class indices; got dtype {x.dtype}.{hint}")
    return x


def concrete_value(x: Any) -> float | None:
    """The value of a scalar hyperparameter known at trace time, else None."""
    if isinstance(x, jax.core.Tracer) or np.ndim(x) != 0:
        return None
    return float(x)


def check_in_range(name: str, value: Any, low: float, high: float) -> None:
    """`ValueError` if a concrete scalar `value` lies outside [low, high]."""
    v = concrete_value(value)
    if v is not None and not low <= v <= high:
        raise ValueError(f"`{name}` must lie in [{low:g}, {high:g}]; got {v:g}.")


def check_non_negative(name: str, value: Any) -> None:
    """`ValueError` if a concrete scalar `value` is negative."""
    v = concrete_value(value)
    if v is not None and not v >= 0:
        raise ValueError(f"`{name}` must be non-negative; got {v:g}.")


def mean_normalizer(normalizer: Any, reduction: str, dtype: Any) -> jax.Array | None:
    """A given normalizer for `"mean"` (the sum is divided by it), as a scalar
    of `dtype`; None if not given. The one rule for every loss that takes one:
    with micro-batches of one global batch, each passing the global count,
    the accumulated losses and gradients equal the full batch's."""
    if normalizer is None:
        return None
    if reduction != "mean":
        raise ValueError(
            f'`normalizer` divides the sum of reduction="mean"; got reduction="{reduction}".'
        )
    n = as_real_array("normalizer", normalizer)
    if n.ndim != 0:
        raise ValueError(f"`normalizer` must be a scalar; got shape {n.shape}.")
    return n.astype(dtype)


def check_ignore_index(ignore_index: Any) -> None:
    """`TypeError` unless `ignore_index` is a Python int or None (it is static)."""
    if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"`ignore_index` must be an int or None; got {ignore_index!r}.")


def canonical_axis(axis: Any, ndim: int, name: str = "logits") -> int:
    """`axis` as a non-negative int; `ValueError` if out of range for `ndim`."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ValueError(f"`axis` must be an int; got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"`axis`={axis} is out of range for `{name}` with {ndim} dimension(s).")
    return int(axis) % ndim


def broadcast_to(
    name: str, x: jax.Array, shape: Sequence[int], target: str, hint: str = ""
) -> jax.Array:
    """Broadcast `x` to `shape` without enlarging it, or say why not.

    Broadcasting is explicit so that the losses also run under
    ``jax_numpy_rank_promotion="raise"``; a shape that would *enlarge* the
    loss (``(N, 1)`` against ``(N,)`` giving ``(N, N)``) is an error, never a
    silently wrong number.
    """
    shape = tuple(shape)
    try:
        ok = jnp.broadcast_shapes(x.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"`{name}` has shape {x.shape}, which does not broadcast to the shape "
            f"{shape} of `{target}`.{hint}"
        )
    return jnp.broadcast_to(x, shape)


def as_mask(where: ArrayLike) -> jax.Array:
    """`where` as a boolean array (booleans or 0/1 integers accepted)."""
    m = jnp.asarray(where)
    if not (m.dtype == jnp.bool_ or jnp.issubdtype(m.dtype, jnp.integer)):
        raise TypeError(
            f"`where` must be a boolean mask; got dtype {m.dtype}. Use `weight` to rescale entries."
        )
    return m.astype(bool)


# --------------------------------------------------------------------------
# Precision.


def compute_dtype(*arrays: jax.Array | None) -> Any:
    """float64 if any input is float64 (x64 enabled), else float32.

    Half-precision inputs are computed in float32; AD casts each gradient back
    to the dtype of the input it belongs to.
    """
    if any(a is not None and a.dtype == jnp.float64 for a in arrays):
        return jnp.float64
    return jnp.float32


def hyper(x: jax.typing.ArrayLike, dtype: Any) -> jax.Array:
    """A (possibly traced) hyperparameter as an array of the compute dtype."""
    return jnp.asarray(x, dtype=dtype)


# --------------------------------------------------------------------------
# Shared numerics.


def is_static_zero(v: Any) -> bool:
    """Whether a hyperparameter is a Python 0 (a traced 0 is not known to be)."""
    return isinstance(v, (int, float)) and v == 0


def smooth_labels(labels: jax.Array, label_smoothing: Any, num_classes: int):
    """Mix targets with the uniform distribution: `(1 - e) * t + e / K`.

    The binary family uses ``K = 2`` (Keras: ``y * (1 - e) + e / 2``); the
    multi-class family ``K = C``.
    """
    if is_static_zero(label_smoothing):
        return labels
    e = hyper(label_smoothing, labels.dtype)
    return labels * (1 - e) + e / num_classes


def grad_floor(dtype: Any) -> float:
    """PyTorch's 1e-12 floor for `1 / p`-type derivatives, raised where the
    gradient would not fit the input dtype: for float16 it bounds `1 / p` at
    about 16k, leaving room below 65504 for weights and focal terms."""
    return max(1e-12, 4.0 / float(jnp.finfo(dtype).max))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def clamped_log(p: jax.Array, floor: float = 1e-12) -> jax.Array:
    """`max(log p, -100)` as PyTorch's BCELoss, with derivative `1 / max(p, floor)`.

    The clamp keeps the loss finite at p = 0; the floored derivative keeps the
    gradient finite there (the derivative of the clamp alone would be
    `0 * inf`) and still points towards larger p.
    """
    return jnp.maximum(jnp.log(p), -100)


@clamped_log.defjvp
def _clamped_log_jvp(floor, primals, tangents):
    (p,), (dp,) = primals, tangents
    return clamped_log(p, floor), dp / jnp.maximum(p, floor)


@jax.custom_jvp
def xmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """`a * b`, with `0 * b = 0` even where `b` is infinite (no `0 * inf`).

    Its derivatives are the product rule's, `b da + a db`, for both factors
    and also where a factor is 0: a label or weight of exactly 0 still gets
    its gradient (the derivative of the bare `where(a == 0, 0, a * b)` would
    be 0 there). An infinite factor contributes no tangent, so no `0 * inf`
    enters the derivatives either.
    """
    return jnp.where(a == 0, jnp.zeros_like(b), a * b)


@xmul.defjvp
def _xmul_jvp(primals, tangents):
    (a, b), (da, db) = primals, tangents
    finite_a = jnp.where(jnp.isfinite(a), a, 0)
    finite_b = jnp.where(jnp.isfinite(b), b, 0)
    return xmul(a, b), finite_b * da + finite_a * db


def fill_masked(x: jax.Array, keep: jax.Array, fill: float) -> jax.Array:
    """`x` where `keep`, else `fill`: how `where` reaches a loss's inputs.

    Masked entries are replaced before any computation (the first half of
    the double `where`), so whatever they held (NaN, inf) gives a finite
    value and zero gradients; `reduce` drops their loss. `fill` is chosen by
    the caller: a harmless value (0 for logits, 1/2 for probabilities), or
    -inf for a class that leaves the softmax.
    """
    return jnp.where(keep, x, fill)


def safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """`num / den`, and 0 where `den == 0` (a mean over nothing), NaN-free in AD."""
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1), 0)


def reduce(
    loss: jax.Array,
    reduction: str,
    mask: jax.Array | None = None,
    normalizer: jax.Array | None = None,
) -> jax.Array:
    """Apply a boolean `mask` (False gives 0) and reduce.

    `"mean"` divides the sum by `normalizer` when given (PyTorch's weighted
    mean) and otherwise by the number of unmasked entries; a mean over nothing
    is 0.0.
    """
    if mask is not None:
        loss = jnp.where(mask, loss, 0)
    if reduction == "none":
        return loss
    total = jnp.sum(loss)
    if reduction == "sum":
        return total
    if normalizer is None:
        if mask is None:
            normalizer = jnp.asarray(loss.size, loss.dtype)
        else:
            normalizer = jnp.sum(mask, dtype=loss.dtype)
    return safe_div(total, normalizer)


# --------------------------------------------------------------------------
# Runtime value checks.

# What `checked` verifies for each kind of argument.
UNIT = "unit"  # every value in [0, 1]
LOG_UNIT = "log_unit"  # every value in [-inf, 0]: a log-probability
SIGN = "sign"  # every value -1, 0 or 1: a binary label of the margin losses
INDEX = "index"  # integer class index in [0, C) or `ignore_index`

# The elementwise checks: what is wrong, and the message that says so.
_ELEMENTWISE = {
    UNIT: (lambda x: (x < 0) | (x > 1), "must lie in [0, 1]"),
    LOG_UNIT: (lambda x: x > 0, "must be log-probabilities, <= 0"),
    SIGN: (lambda x: (x != -1) & (x != 0) & (x != 1), "must be -1 or 1 (or 0 for -1)"),
}


def value_checks(
    spec: dict[str, str], num_classes: Callable[[inspect.BoundArguments], int] | None = None
) -> Callable[[F], F]:
    """Declare which runtime checks `checked` applies to a loss.

    `spec` maps argument names to `UNIT`, `LOG_UNIT`, `SIGN` or `INDEX`; every floating argument
    is also checked for NaN. `num_classes(bound)` gives `C` for `INDEX`.
    """

    def deco(fn: F) -> F:
        params = inspect.signature(fn).parameters

        @functools.wraps(fn)
        def loss(*args: Any, **kwargs: Any) -> Any:
            for key in kwargs:
                if key not in params:
                    hint = _OTHER_NAMES.get(key, "")
                    raise TypeError(
                        f"{fn.__name__}() got an unexpected keyword argument {key!r}.{hint}"
                    )
            return fn(*args, **kwargs)

        loss.__jaxloss_checks__ = (spec, num_classes)  # type: ignore[attr-defined]
        return loss  # type: ignore[return-value]

    return deco


# Options users reach for by the name another family (or library) uses.
_OTHER_NAMES = {
    "weight": (
        " Per-class weights of the multi-class losses are `class_weight` (shape [C]);"
        " to weight examples, multiply the loss of reduction='none'."
    ),
    "class_weight": (
        " The binary losses weight classes with `weight` of shape [C] (it broadcasts"
        " over the trailing class axis); dice_loss and tversky_loss take optax's"
        " `class_weights`."
    ),
    "class_weights": " The multi-class losses take per-class weights as `class_weight`.",
    "ignore_index": " The binary losses mask entries with `where` instead.",
    "smoothing": " Label smoothing is `label_smoothing`.",
    "logits": " The first argument is positional.",
}


def _raise_if(message: str, bad: Any, low: Any, high: Any) -> None:
    if bool(bad):
        raise ValueError(f"{message} (found min {low}, max {high}).")


def _check(bad: jax.Array, message: str, x: jax.Array, keep: jax.Array | None, functional: bool):
    """Raise (eagerly) or stage a check that `bad` holds nowhere `keep` does."""
    if keep is not None:
        bad = bad & keep
    big = jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).max
    small = -jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    low = jnp.min(x, where=keep, initial=big) if x.size else jnp.zeros((), x.dtype)
    high = jnp.max(x, where=keep, initial=small) if x.size else jnp.zeros((), x.dtype)
    bad = jnp.any(bad)
    if not isinstance(bad, jax.core.Tracer):  # concrete values: raise here, plainly
        _raise_if(message, bad, low, high)
    elif functional:  # a check that `checkify.checkify` turns into an error value
        _checkify.check(~bad, message + " (found min {low}, max {high}).", low=low, high=high)
    else:  # under jit / grad / vmap: check at run time
        jax.debug.callback(functools.partial(_raise_if, message), bad, low, high)


def _kept_entries(bound: inspect.BoundArguments, name: str, x: jax.Array) -> jax.Array | None:
    """The entries of argument `x` that count: not masked by `where`, not of an
    example whose integer label is `ignore_index`. None: all of them.

    `where` is aligned with `x` as the losses align it: the binary family
    broadcasts it elementwise; the multi-class family (and the fused loss,
    whose features are on the last axis) reads it by rank, per example
    (broadcast along the class `axis`) or as a class mask (for per-example
    arguments, an example counts if any of its classes does). The pairwise
    losses mask rows of embeddings: `x`'s by `where`, `y`'s by `y_where`
    (or `where`).
    """
    args = bound.arguments
    if "axis_name" in args:  # the pairwise losses: rows of [B, D] embeddings
        rows = args.get("y_where") if name == "y" else None
        rows = args.get("where") if rows is None else rows
        return None if rows is None else _align(jnp.asarray(rows).astype(bool), x.shape, -1)
    multi_class = "axis" in args or "kernel" in args
    axis = args.get("axis", -1) if multi_class else None
    if multi_class and not isinstance(axis, int):  # the overlap losses: `axis` is
        axis = -1  # the summed axes, and the classes are last
    keep = None
    if args.get("where") is not None:
        keep = _align(jnp.asarray(args["where"]).astype(bool), x.shape, axis)
    ignore = args.get("ignore_index")
    if ignore is not None and args.get("labels") is not None:
        counted = _align(jnp.asarray(args["labels"]) != ignore, x.shape, axis)
        if counted is not None:
            keep = counted if keep is None else keep & counted
    return keep


def _align(m: jax.Array, shape: tuple[int, ...], axis: int | None) -> jax.Array | None:
    """`m` as a mask of an argument of `shape` (None if it is not one)."""
    if axis is not None and m.ndim == len(shape) - 1:  # per example, along the classes
        m = jnp.expand_dims(m, axis % len(shape))
    elif axis is not None and m.ndim == len(shape) + 1:  # a class mask, per example
        m = jnp.any(m, axis)
    try:
        fits = jnp.broadcast_shapes(m.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    return jnp.broadcast_to(m, shape) if fits else None


def checked(fn: F, *, checkify: bool = False) -> F:
    """Return `fn` with runtime value checks that raise a `ValueError`.

    Static checks (shapes, dtypes, `reduction`) always run. `checked` adds the
    checks that need the values: labels outside [0, 1] for the binary family
    (other than -1, 0 and 1 for the margin losses), probabilities outside
    [0, 1], log-probability targets above 0, integer labels outside
    ``[0, C)`` that are not ``ignore_index``, and NaN in any floating input. Entries that
    ``where`` masks, and examples whose label is ``ignore_index``, are not
    checked: partially labelled data may hold anything there. The message
    names the argument, what was found, and what is allowed. The checks cost
    a pass over the inputs: use `checked` to debug, the plain function to
    train.

    Called eagerly, the `ValueError` is raised directly. Inside `jax.jit` the
    values are known only when the program runs:

    - by default a host callback raises the `ValueError` there, and JAX
      reports it as a `jax.errors.JaxRuntimeError` whose last line is the
      message;
    - with ``checkify=True`` the checks are ``jax.experimental.checkify``
      checks: wrap the jitted function in ``checkify.checkify`` and
      ``err.throw()`` raises a `ValueError` whose message is ours, first
      (see the example). Without ``checkify.checkify`` around it, such a
      function fails to compile under `jit`.

    Args:
      fn: a jaxloss loss function.
      checkify: stage the checks for ``jax.experimental.checkify`` under a
        trace instead of raising from a host callback.

    Returns:
      A function with the same signature and results.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from jax.experimental import checkify
      >>> import jaxloss
      >>> bce = jaxloss.checked(jaxloss.binary_cross_entropy)
      >>> bce(jnp.array([0.2, 0.9]), jnp.array([0.0, 2.0]))
      Traceback (most recent call last):
        ...
      ValueError: `labels` must lie in [0, 1] (found min 0.0, max 2.0).
      >>> # Masked entries are not checked: -1 marks a missing label here.
      >>> loss = bce(jnp.array([0.2, 0.9]), jnp.array([0.0, -1.0]),
      ...            where=jnp.array([True, False]))
      >>> # Under jit, with checkify: the error names the argument first.
      >>> bce = jaxloss.checked(jaxloss.binary_cross_entropy, checkify=True)
      >>> err, loss = checkify.checkify(jax.jit(bce))(jnp.array([0.2, 0.9]),
      ...                                             jnp.array([0.0, 2.0]))
      >>> err.throw()
      Traceback (most recent call last):
        ...
      jax._src.checkify.JaxRuntimeError: `labels` must lie in [0, 1] (found min 0.0, max 2.0). ...
    """
    try:
        spec, num_classes = fn.__jaxloss_checks__  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"{fn!r} is not a jaxloss loss function.") from None
    signature = inspect.signature(fn)
    # The arguments whose entries `where` and `ignore_index` can exclude: the
    # predictions, the labels (or a teacher's logits) and an elementwise
    # weight; the fused loss'
    # kernel and per-class vectors (class weights, `pos_weight`, `alpha`)
    # are checked whole.
    maskable = {
        next(iter(signature.parameters)),
        "labels",
        "targets",
        "log_targets",
        "target_logits",
        "weight",
        "y",
    }
    functional = checkify

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if value is None or isinstance(value, str):
                continue
            if not isinstance(value, (jax.Array, np.ndarray, np.generic, int, float)):
                continue
            x = jnp.asarray(value)
            keep = None
            if name in maskable:
                keep = _kept_entries(bound, name, x)
            kind = spec.get(name)
            if jnp.issubdtype(x.dtype, jnp.floating):
                _check(jnp.isnan(x), f"`{name}` contains NaN", x, keep, functional)
            if kind in _ELEMENTWISE:
                bad, says = _ELEMENTWISE[kind]
                _check(bad(x), f"`{name}` {says}", x, keep, functional)
            elif kind == INDEX:
                c = num_classes(bound)
                ignore = bound.arguments.get("ignore_index")
                ok = (x >= 0) & (x < c)
                if ignore is not None:
                    ok = ok | (x == ignore)
                allowed = f"[0, {c})" + ("" if ignore is None else f" or {ignore}")
                message = f"`{name}` must be a class index in {allowed}"
                _check(~ok, message, x, keep, functional)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
