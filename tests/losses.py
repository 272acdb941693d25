"""Every public loss with a maker of valid inputs, for the cross-cutting tests."""

import inspect

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


# name -> (function, input maker, is the first argument logits, label kind)
LOSSES = {
    "binary_cross_entropy": (
        jaxloss.binary_cross_entropy,
        lambda r, s, d=np.float32: binary_inputs(r, s, d, probs=True),
    ),
    "sigmoid_binary_cross_entropy": (jaxloss.sigmoid_binary_cross_entropy, binary_inputs),
    "binary_focal_loss": (
        jaxloss.binary_focal_loss,
        lambda r, s, d=np.float32: binary_inputs(r, s, d, probs=True),
    ),
    "sigmoid_focal_loss": (jaxloss.sigmoid_focal_loss, binary_inputs),
    "softmax_cross_entropy": (jaxloss.softmax_cross_entropy, softmax_inputs),
    "softmax_cross_entropy_with_integer_labels": (
        jaxloss.softmax_cross_entropy_with_integer_labels,
        lambda r, s, d=np.float32: softmax_inputs(r, s, d, integer=True),
    ),
    "categorical_cross_entropy": (
        jaxloss.categorical_cross_entropy,
        lambda r, s, d=np.float32: softmax_inputs(r, s, d, probs=True),
    ),
    "softmax_focal_loss": (jaxloss.softmax_focal_loss, softmax_inputs),
    "softmax_focal_loss_with_integer_labels": (
        jaxloss.softmax_focal_loss_with_integer_labels,
        lambda r, s, d=np.float32: softmax_inputs(r, s, d, integer=True),
    ),
}

LOGIT_LOSSES = [
    n
    for n in LOSSES
    if n not in ("binary_cross_entropy", "binary_focal_loss", "categorical_cross_entropy")
]
BINARY = [n for n in LOSSES if "binary" in n or n == "sigmoid_focal_loss"]


def per_example_shape(name, shape):
    return tuple(shape) if name in BINARY else tuple(shape[:-1])


def all_options(name, c):
    """Keyword options that switch on every feature the loss has."""
    opts = {"reduction": "none"}
    fn = LOSSES[name][0]
    params = (
        fn.__wrapped__.__code__.co_varnames
        if hasattr(fn, "__wrapped__")
        else fn.__code__.co_varnames
    )
    w = jnp.linspace(0.5, 2.0, c, dtype=jnp.float32)
    for k, v in {
        "weight": w,
        "pos_weight": w,
        "class_weight": w,
        "label_smoothing": 0.1,
        "z_loss": 1e-3,
        "gamma": 0.5,
        "alpha": 0.25,
    }.items():
        if k in params:
            opts[k] = v
    return opts


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
STATIC = ("reduction", "axis", "ignore_index")


def _jit(fn):
    names = inspect.signature(fn).parameters
    return staticmethod(jax.jit(fn, static_argnames=[s for s in STATIC if s in names]))


jl = type("Jitted", (), {n: _jit(f) for n, (f, _) in LOSSES.items()})
