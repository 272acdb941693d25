"""Class-prior helpers: weights for imbalanced data from label counts.

Pure, jit-compatible functions of (possibly traced) counts. Each treats a
class that was never seen as seen once: a zero count gives the weight of a
count of 1, never an infinite or NaN weight.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from ._common import as_real_array, check_in_range

ArrayLike = jax.typing.ArrayLike

_METHODS = ("inverse", "inverse_sqrt", "effective_number")


def _counts(name: str, counts: ArrayLike) -> jax.Array:
    c = as_real_array(name, counts)
    dtype = jnp.float64 if c.dtype == jnp.float64 else jnp.float32
    return jnp.maximum(c.astype(dtype), 1)  # never seen: as if seen once


def pos_weight_from_counts(positives: ArrayLike, negatives: ArrayLike) -> jax.Array:
    """`pos_weight` for the binary losses: negatives over positives, per class.

    PyTorch's recommendation for ``BCEWithLogitsLoss``: with ``pos_weight[c]
    = negatives[c] / positives[c]`` each class's positives weigh as much in
    the loss as its negatives. Counts of 0 count as 1, so a class with no
    positives gets ``pos_weight = negatives`` and one with no negatives
    ``1 / positives``.

    Shape:
      - positives, negatives: ``[C]`` (or broadcastable to each other).
      - output: their broadcast shape, float32 (float64 for float64 counts).

    Args:
      positives: number of positive examples of each class.
      negatives: number of negative examples of each class.

    Returns:
      The per-class ``pos_weight``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> labels = jnp.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
      >>> pos = labels.sum(0)
      >>> print(np.asarray(jaxloss.pos_weight_from_counts(pos, len(labels) - pos)))
      [0.33333334 3.         4.        ]
    """
    return _counts("negatives", negatives) / _counts("positives", positives)


def class_weights_from_counts(
    counts: ArrayLike,
    *,
    method: Literal["inverse", "inverse_sqrt", "effective_number"] = "effective_number",
    beta: ArrayLike = 0.999,
) -> jax.Array:
    """Class weights from the number of examples of each class.

    Raw weights ``r[c]`` by ``method``, then normalised to sum to the number
    of classes ``C`` (as Cui et al. do), so that a balanced dataset gets all
    ones:

    - ``"inverse"``: ``r = 1 / n``;
    - ``"inverse_sqrt"``: ``r = 1 / sqrt(n)``, a softer re-weighting;
    - ``"effective_number"``: ``r = (1 - beta) / (1 - beta ** n)``, the
      inverse of the "effective number of samples" (Cui et al., CVPR 2019);
      ``beta -> 0`` gives no re-weighting, ``beta -> 1`` approaches
      ``"inverse"``. The paper uses ``beta`` in {0.9, 0.99, 0.999, 0.9999}.

    Counts of 0 count as 1. Pass the result as ``class_weight`` to the
    softmax losses, or as ``weight`` (per class) to the binary ones.

    Shape:
      - counts: ``[C]``.
      - output: ``[C]``, float32 (float64 for float64 counts).

    Args:
      counts: number of examples of each class.
      method: ``"inverse"``, ``"inverse_sqrt"`` or ``"effective_number"``.
      beta: the effective-number hyperparameter in [0, 1) (may be traced).

    Returns:
      The class weights, summing to ``C``.

    Raises:
      ValueError: ``counts`` not one-dimensional, an unknown ``method``, or
        ``beta`` outside [0, 1).

    References:
      Cui et al., Class-Balanced Loss Based on Effective Number of Samples,
      CVPR 2019, https://arxiv.org/abs/1901.05555

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> counts = jnp.array([500, 50, 5])
      >>> w = jaxloss.class_weights_from_counts(counts, method="inverse")
      >>> print(np.asarray(w).round(4))
      [0.027  0.2703 2.7027]
      >>> w = jaxloss.class_weights_from_counts(counts, beta=0.99)
      >>> print(np.asarray(w).round(4))
      [0.1261 0.3172 2.5566]
    """
    if method not in _METHODS:
        raise ValueError(
            f"`method` must be one of {', '.join(map(repr, _METHODS))}; got {method!r}."
        )
    n = _counts("counts", counts)
    if n.ndim != 1:
        raise ValueError(f"`counts` must have shape [C], one count per class; got {n.shape}.")
    if method == "inverse":
        raw = 1 / n
    elif method == "inverse_sqrt":
        raw = jax.lax.rsqrt(n)
    else:
        check_in_range("beta", beta, 0.0, 1.0 - 1e-12)
        b = jnp.asarray(beta, n.dtype)
        # The factor 1 - beta cancels in the normalisation; 1 - beta ** n is
        # formed as -expm1(n log beta), without cancellation near beta = 1.
        raw = -1 / jnp.expm1(n * jnp.log(b))
    return raw * (n.shape[0] / jnp.sum(raw))
