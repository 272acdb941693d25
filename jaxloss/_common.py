"""The rules every loss shares, each written once.

Validation (static, at trace time), upcasting, label smoothing, masking with
``where``, reduction, and :func:`checked` (runtime value checks) live here.
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


def xmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """`a * b`, with `0 * b = 0` even where `b` is infinite (no `0 * inf`)."""
    return jnp.where(a == 0, jnp.zeros_like(b), a * b)


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
INDEX = "index"  # integer class index in [0, C) or `ignore_index`


def value_checks(
    spec: dict[str, str], num_classes: Callable[[inspect.BoundArguments], int] | None = None
) -> Callable[[F], F]:
    """Declare which runtime checks :func:`checked` applies to a loss.

    `spec` maps argument names to `UNIT` or `INDEX`; every floating argument
    is also checked for NaN. `num_classes(bound)` gives `C` for `INDEX`.
    """

    def deco(fn: F) -> F:
        fn.__jaxloss_checks__ = (spec, num_classes)  # type: ignore[attr-defined]
        return fn

    return deco


def _raise_if(message: str, bad: Any, low: Any, high: Any) -> None:
    if bool(bad):
        raise ValueError(f"{message} (found min {low}, max {high}).")


def _check(bad: jax.Array, message: str, x: jax.Array) -> None:
    low = jnp.min(x) if x.size else jnp.zeros((), x.dtype)
    high = jnp.max(x) if x.size else jnp.zeros((), x.dtype)
    bad = jnp.any(bad)
    if isinstance(bad, jax.core.Tracer):  # under jit / grad: check at run time
        jax.debug.callback(functools.partial(_raise_if, message), bad, low, high)
    else:  # concrete values: raise here, plainly
        _raise_if(message, bad, low, high)


def checked(fn: F) -> F:
    """Return `fn` with runtime value checks that raise a `ValueError`.

    Static checks (shapes, dtypes, `reduction`) always run. `checked` adds the
    checks that need the values: labels outside [0, 1] for the binary family,
    probabilities outside [0, 1], integer labels outside ``[0, C)`` that are
    not ``ignore_index``, and NaN in any floating input. The message names the
    argument. Called eagerly, the `ValueError` is raised directly; under
    `jax.jit` it surfaces as a `jax.errors.JaxRuntimeError` carrying the same
    message when the result is computed. The checks cost a pass over the
    inputs: use `checked` to debug, the plain function to train.

    Args:
      fn: a jaxloss loss function.

    Returns:
      A function with the same signature and results.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> bce = jaxloss.checked(jaxloss.binary_cross_entropy)
      >>> bce(jnp.array([0.2, 0.9]), jnp.array([0.0, 2.0]))
      Traceback (most recent call last):
        ...
      ValueError: `labels` must lie in [0, 1] (found min 0.0, max 2.0).
    """
    try:
        spec, num_classes = fn.__jaxloss_checks__  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"{fn!r} is not a jaxloss loss function.") from None
    signature = inspect.signature(fn)

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
            kind = spec.get(name)
            if jnp.issubdtype(x.dtype, jnp.floating):
                _check(jnp.isnan(x), f"`{name}` contains NaN", x)
            if kind == UNIT:
                _check((x < 0) | (x > 1), f"`{name}` must lie in [0, 1]", x)
            elif kind == INDEX:
                c = num_classes(bound)
                ignore = bound.arguments.get("ignore_index")
                ok = (x >= 0) & (x < c)
                if ignore is not None:
                    ok = ok | (x == ignore)
                allowed = f"[0, {c})" + ("" if ignore is None else f" or {ignore}")
                _check(~ok, f"`{name}` must be a class index in {allowed}", x)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
