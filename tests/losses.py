"""Every public loss declared once, for the cross-cutting tests.

Adding a loss to `REGISTRY` is what puts it through every shared-convention
test: transforms, half precision, masks, properties and gradients with
respect to every differentiable argument.
"""

import dataclasses
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss


def binary_inputs(rng, shape, dtype=np.float32, probs=False):
    x = rng.normal(size=shape) * 3
    pred = 1 / (1 + np.exp(-x)) if probs else x
    labels = rng.uniform(size=shape)
    labels = np.where(rng.uniform(size=shape) < 0.5, np.round(labels), labels)
    return jnp.asarray(pred, dtype), jnp.asarray(labels, np.float32)


def softmax_inputs(rng, shape, dtype=np.float32, probs=False, integer=False):
    x = rng.normal(size=shape) * 3
    if probs:
        x = np.exp(x - x.max(-1, keepdims=True))
        x = x / x.sum(-1, keepdims=True)
    if integer:
        labels = jnp.asarray(rng.integers(0, shape[-1], size=shape[:-1]), jnp.int32)
    else:
        labels = jnp.asarray(rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]), np.float32)
    return jnp.asarray(x, dtype), labels


@dataclasses.dataclass(frozen=True)
class Loss:
    """One public loss, declared once for every shared-convention test.

    `make(rng, shape, dtype)` gives valid `(predictions, labels)`;
    `options(c)` switches on every feature the loss has, for `c` classes;
    `diff` names the differentiable arguments: the predictions and, for
    probability labels, the labels by their parameter names, then options.
    """

    fn: Callable
    family: str  # "binary" (elementwise) or "multiclass" (softmax over an axis)
    make: Callable
    options: Callable[[int], dict]
    diff: tuple[str, ...]

    @property
    def first(self) -> str:
        return next(iter(inspect.signature(self.fn).parameters))


def _w(c):
    return jnp.linspace(0.5, 2.0, c, dtype=jnp.float32)


def _prior(c):
    """Logit adjustment: a long-tailed prior over `c` classes, a temperature."""
    freq = np.exp(-np.arange(c))
    return dict(log_prior=jnp.asarray(np.log(freq / freq.sum()), jnp.float32), tau=0.7)


def _log_probs(r, s, d=np.float32):
    x, y = softmax_inputs(r, s, d, integer=True)
    return jax.nn.log_softmax(x.astype(jnp.float32)).astype(d), y


def _two_logits(r, s, d=np.float32):
    """A student's and a teacher's logits."""
    return (jnp.asarray(r.normal(size=s) * 3, d), jnp.asarray(r.normal(size=s) * 2, d))


def _kl(r, s, d=np.float32):
    """Predicted log-probabilities and target probabilities."""
    x, t = softmax_inputs(r, s, d)
    return jax.nn.log_softmax(x.astype(jnp.float32)).astype(d), t


def _kl_log(r, s, d=np.float32):
    log_p, t = _kl(r, s, d)
    return log_p, jnp.log(t)


def _signs(r, s, d=np.float32):
    """Scores and binary labels: -1 and 1, and 0 (read as -1)."""
    return jnp.asarray(r.normal(size=s) * 3, d), jnp.asarray(r.choice([-1, 0, 1], size=s), d)


def _on_probs(maker, **kw):
    return lambda r, s, d=np.float32: maker(r, s, d, probs=True, **kw)


def _integer(r, s, d=np.float32):
    return softmax_inputs(r, s, d, integer=True)


REGISTRY = {
    "binary_cross_entropy": Loss(
        jaxloss.binary_cross_entropy, "binary", _on_probs(binary_inputs),
        lambda c: dict(weight=_w(c), label_smoothing=0.1),
        ("probs", "labels", "weight", "label_smoothing"),
    ),
    "sigmoid_binary_cross_entropy": Loss(
        jaxloss.sigmoid_binary_cross_entropy, "binary", binary_inputs,
        lambda c: dict(weight=_w(c), pos_weight=_w(c)[::-1], label_smoothing=0.1),
        ("logits", "labels", "weight", "pos_weight", "label_smoothing"),
    ),
    "binary_focal_loss": Loss(
        jaxloss.binary_focal_loss, "binary", _on_probs(binary_inputs),
        lambda c: dict(weight=_w(c), gamma=0.5, alpha=0.25, label_smoothing=0.1),
        ("probs", "labels", "weight", "alpha", "gamma", "label_smoothing"),
    ),
    "asymmetric_loss": Loss(
        jaxloss.asymmetric_loss, "binary", binary_inputs,
        lambda c: dict(
            weight=_w(c), pos_weight=_w(c)[::-1], label_smoothing=0.1,
            gamma_neg=3.0, gamma_pos=0.5, clip=0.1,
        ),
        ("logits", "labels", "weight", "pos_weight", "label_smoothing", "gamma_neg",
         "gamma_pos", "clip"),
    ),
    "sigmoid_focal_loss": Loss(
        jaxloss.sigmoid_focal_loss, "binary", binary_inputs,
        lambda c: dict(weight=_w(c), gamma=0.5, alpha=0.25, label_smoothing=0.1),
        ("logits", "labels", "weight", "alpha", "gamma", "label_smoothing"),
    ),
    "softmax_cross_entropy": Loss(
        jaxloss.softmax_cross_entropy, "multiclass", softmax_inputs,
        lambda c: dict(class_weight=_w(c), label_smoothing=0.1, z_loss=1e-3, **_prior(c)),
        ("logits", "labels", "class_weight", "label_smoothing", "z_loss", "log_prior", "tau"),
    ),
    "softmax_cross_entropy_with_integer_labels": Loss(
        jaxloss.softmax_cross_entropy_with_integer_labels, "multiclass", _integer,
        lambda c: dict(class_weight=_w(c), label_smoothing=0.1, z_loss=1e-3, **_prior(c)),
        ("logits", "class_weight", "label_smoothing", "z_loss", "log_prior", "tau"),
    ),
    "categorical_cross_entropy": Loss(
        jaxloss.categorical_cross_entropy, "multiclass", _on_probs(softmax_inputs),
        lambda c: dict(class_weight=_w(c), label_smoothing=0.1),
        ("probs", "labels", "class_weight", "label_smoothing"),
    ),
    "softmax_focal_loss": Loss(
        jaxloss.softmax_focal_loss, "multiclass", softmax_inputs,
        lambda c: dict(gamma=0.5, alpha=_w(c), label_smoothing=0.1),
        ("logits", "labels", "alpha", "gamma", "label_smoothing"),
    ),
    "softmax_focal_loss_with_integer_labels": Loss(
        jaxloss.softmax_focal_loss_with_integer_labels, "multiclass", _integer,
        lambda c: dict(gamma=0.5, alpha=_w(c)),
        ("logits", "alpha", "gamma"),
    ),
    "nll_loss": Loss(
        jaxloss.nll_loss, "multiclass", _log_probs,
        lambda c: dict(class_weight=_w(c)),
        ("log_probs", "class_weight"),
    ),
    "poly_loss_cross_entropy": Loss(
        jaxloss.poly_loss_cross_entropy, "multiclass", softmax_inputs,
        lambda c: dict(epsilon=1.5, class_weight=_w(c), label_smoothing=0.1),
        ("logits", "labels", "epsilon", "class_weight", "label_smoothing"),
    ),
    "poly_loss_cross_entropy_with_integer_labels": Loss(
        jaxloss.poly_loss_cross_entropy_with_integer_labels, "multiclass", _integer,
        lambda c: dict(epsilon=1.5, class_weight=_w(c), label_smoothing=0.1),
        ("logits", "epsilon", "class_weight", "label_smoothing"),
    ),
    "softmax_kl_divergence": Loss(
        jaxloss.softmax_kl_divergence, "multiclass", _two_logits,
        lambda c: dict(temperature=1.7),
        ("logits", "target_logits", "temperature"),
    ),
    "kl_divergence": Loss(
        jaxloss.kl_divergence, "multiclass", _kl, lambda c: {},
        ("log_predictions", "targets"),
    ),
    "kl_divergence_with_log_targets": Loss(
        jaxloss.kl_divergence_with_log_targets, "multiclass", _kl_log, lambda c: {},
        ("log_predictions", "log_targets"),
    ),
    "hinge_loss": Loss(
        jaxloss.hinge_loss, "binary", _signs, lambda c: dict(weight=_w(c)),
        ("scores", "weight"),
    ),
    "squared_hinge_loss": Loss(
        jaxloss.squared_hinge_loss, "binary", _signs, lambda c: dict(weight=_w(c)),
        ("scores", "weight"),
    ),
    "perceptron_loss": Loss(
        jaxloss.perceptron_loss, "binary", _signs, lambda c: dict(weight=_w(c)),
        ("scores", "weight"),
    ),
    "multiclass_hinge_loss": Loss(
        jaxloss.multiclass_hinge_loss, "multiclass", _integer, lambda c: {}, ("scores",),
    ),
    "multiclass_perceptron_loss": Loss(
        jaxloss.multiclass_perceptron_loss, "multiclass", _integer, lambda c: {}, ("scores",),
    ),
    "multi_margin_loss": Loss(
        jaxloss.multi_margin_loss, "multiclass", _integer,
        lambda c: dict(p=2, margin=0.7, class_weight=_w(c)),
        ("scores", "margin", "class_weight"),
    ),
    "multiclass_sparsemax_loss": Loss(
        jaxloss.multiclass_sparsemax_loss, "multiclass", _integer, lambda c: {}, ("scores",),
    ),
    "dice_loss": Loss(
        jaxloss.dice_loss, "multiclass", softmax_inputs,
        lambda c: dict(class_weights=_w(c), smooth=0.5, alpha=0.4, beta=0.6,
                       ignore_background=True),
        ("logits", "labels", "class_weights", "smooth", "alpha", "beta"),
    ),
    "tversky_loss": Loss(
        jaxloss.tversky_loss, "multiclass", softmax_inputs,
        lambda c: dict(class_weights=_w(c), smooth=0.5, alpha=0.3, beta=0.7),
        ("logits", "labels", "class_weights", "smooth", "alpha", "beta"),
    ),
}  # fmt: skip

# The views older tests use, all derived from the registry.
LOSSES = {n: (loss.fn, loss.make) for n, loss in REGISTRY.items()}
LOGIT_LOSSES = [n for n, loss in REGISTRY.items() if loss.first in ("logits", "scores")]
BINARY = [n for n, loss in REGISTRY.items() if loss.family == "binary"]


def per_example_shape(name, shape):
    return tuple(shape) if name in BINARY else tuple(shape[:-1])


def all_options(name, c):
    """Keyword options that switch on every feature the loss has."""
    return {"reduction": "none", **REGISTRY[name].options(c)}


def value_and_grad_of_sum(f):
    """`x -> (f(x), grad(sum(f))(x))`: a loss and its gradient, which under
    `jax.jit` is one compiled program (eager `jax.grad` compiles several)."""

    def sum_with_value(x):
        out = f(x)
        return jnp.sum(out), out

    def both(x):
        (_, out), g = jax.value_and_grad(sum_with_value, has_aux=True)(x)
        return out, g

    return both


# Jitted versions for the tests: one compile per shape instead of one per
# primitive (eager JAX compiles each op on first use: ~2 s per loss call).
# Strings and ints are static; numeric hyperparameters are traced.
STATIC = ("reduction", "axis", "ignore_index", "p", "apply_softmax", "ignore_background")


def _jit(fn):
    names = inspect.signature(fn).parameters
    return staticmethod(jax.jit(fn, static_argnames=[s for s in STATIC if s in names]))


jl = type("Jitted", (), {n: _jit(f) for n, (f, _) in LOSSES.items()})


def _linear_inputs(rng, shape, dtype=np.float32):
    n, v = shape
    d = 4
    x = jnp.asarray(rng.normal(size=(n, d)), dtype)
    kernel = jnp.asarray(rng.normal(size=(d, v)) * 0.5, dtype)
    return x, kernel, jnp.asarray(rng.integers(0, v, size=n), jnp.int32)


# The fused loss: three positional arrays, and reverse mode only (custom VJP).
FUSED = Loss(
    jaxloss.linear_softmax_cross_entropy, "fused", _linear_inputs,
    lambda c: dict(bias=_w(c) - 1, class_weight=_w(c), label_smoothing=0.1, z_loss=1e-3),
    ("inputs", "kernel", "bias", "class_weight", "label_smoothing", "z_loss"),
)  # fmt: skip


def _embeddings(rng, shape, dtype=np.float32):
    """Two batches of embeddings, `shape` = (B, D)."""
    return (jnp.asarray(rng.normal(size=shape), dtype), jnp.asarray(rng.normal(size=shape), dtype))


# The pairwise losses: two embedding batches, reverse mode only (custom VJP).
PAIRWISE = {
    "sigmoid_pairwise_loss": Loss(
        jaxloss.sigmoid_pairwise_loss, "pairwise", _embeddings,
        lambda c: dict(temperature=3.0, bias=-1.0, pos_weight=1.5, gamma=0.5),
        ("x", "y", "temperature", "bias", "pos_weight", "gamma"),
    ),
    "softmax_pairwise_loss": Loss(
        jaxloss.softmax_pairwise_loss, "pairwise", _embeddings,
        lambda c: dict(temperature=3.0, label_smoothing=0.1),
        ("x", "y", "temperature", "label_smoothing"),
    ),
}  # fmt: skip
