"""The gradient with respect to every differentiable argument of every loss.

Each loss's registry entry (tests/losses.py) names its differentiable
arguments; here each is checked against float64 finite differences of the
loss, in reverse and (where the loss supports it) forward mode, at an
interior point (soft labels, positive weights, the options' values) and at
the boundary (labels exactly 0 and 1, weights and class weights with a 0,
scalar hyperparameters at 0). Differences step only inside an argument's
domain: one-sided at its ends, central elsewhere.
"""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.losses import FUSED, PAIRWISE, REGISTRY

CASES = {**REGISTRY, "linear_softmax_cross_entropy": FUSED, **PAIRWISE}
SHAPE = (4, 3)
H = 1e-6
# Where each bounded argument lives; finite differences stay inside.
DOMAIN = {
    "probs": (0.0, 1.0),
    "labels": (0.0, 1.0),
    "weight": (0.0, np.inf),
    "pos_weight": (0.0, np.inf),
    "class_weight": (0.0, np.inf),
    "alpha": (0.0, np.inf),
    "gamma": (0.0, np.inf),
    "label_smoothing": (0.0, 1.0),
    "z_loss": (0.0, np.inf),
    "gamma_neg": (0.0, np.inf),
    "gamma_pos": (0.0, np.inf),
    "clip": (0.0, 1.0),
    "targets": (0.0, 1.0),
    "log_targets": (-np.inf, 0.0),
    "class_weights": (0.0, np.inf),
    "smooth": (0.0, np.inf),
    "beta": (0.0, np.inf),
}
HARD = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.3, 0.5, 0.2]])


def _point(name, where):
    """Positional arrays and options (float64) at the interior or the boundary."""
    loss = CASES[name]
    args = list(loss.make(np.random.default_rng(1), SHAPE, np.float64))
    args = [a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args]
    opts = {
        k: v if isinstance(v, (bool, int)) else jnp.asarray(v, jnp.float64)  # static: as given
        for k, v in loss.options(SHAPE[-1]).items()
    }
    if where == "boundary":
        if {"labels", "targets"} & set(loss.diff):  # exactly 0 and 1 beside soft values
            args[1] = jnp.asarray(HARD)
        for k, v in opts.items():
            if isinstance(v, (bool, int)):
                continue
            if v.ndim:  # a 0 among the per-class values
                opts[k] = v.at[0].set(0.0)
            elif k not in ("alpha", "temperature"):  # a temperature of 0 is no boundary
                opts[k] = jnp.zeros_like(v)
        if loss.family == "binary" and "alpha" in opts:  # 0 and 1 per class
            opts["alpha"] = jnp.asarray([0.0, 0.5, 1.0])
    return args, opts


def _split(loss, args, opts):
    names = list(loss.diff)
    positional = list(inspect.signature(loss.fn).parameters)[: len(args)]
    values = {n: args[positional.index(n)] if n in positional else opts[n] for n in names}

    def f(values, cot):
        a = [values.get(p, v) for p, v in zip(positional, args, strict=True)]
        kw = {**opts, **{n: v for n, v in values.items() if n not in positional}}
        return jnp.sum(cot * loss.fn(*a, **kw, reduction="none"))

    return values, f


def _finite_differences(f, values, cot):
    """d f / d values[n] for every entry, one-sided at the domain's ends."""
    out = {}
    for n, v in values.items():
        lo, hi = DOMAIN.get(n, (-np.inf, np.inf))
        flat = v.reshape(-1)
        steps = jnp.arange(-2, 3, dtype=v.dtype) * H  # f at v + k h e_i, k = -2..2

        def at(i, s, n=n, flat=flat, v=v):
            return f({**values, n: flat.at[i].add(s).reshape(v.shape)}, cot)

        grid = jnp.arange(flat.size)[:, None], steps[None, :]
        fs = jax.vmap(jax.vmap(at))(*jnp.broadcast_arrays(*grid))
        central = (fs[:, 3] - fs[:, 1]) / (2 * H)
        forward = (-3 * fs[:, 2] + 4 * fs[:, 3] - fs[:, 4]) / (2 * H)
        backward = (3 * fs[:, 2] - 4 * fs[:, 1] + fs[:, 0]) / (2 * H)
        g = jnp.where(flat - 2 * H < lo, forward, jnp.where(flat + 2 * H > hi, backward, central))
        out[n] = g.reshape(v.shape)
    return out


@pytest.mark.parametrize("where", ["interior", "boundary"])
@pytest.mark.parametrize("name", list(CASES))
def test_gradient_of_every_argument(name, where):
    loss = CASES[name]
    with jax.enable_x64(True):
        args, opts = _point(name, where)
        values, f = _split(loss, args, opts)
        out_shape = jax.eval_shape(lambda: loss.fn(*args, **opts, reduction="none")).shape
        cot = jnp.asarray(np.random.default_rng(2).normal(size=out_shape))
        forward_mode = loss.family not in ("fused", "pairwise")  # custom VJPs

        @jax.jit
        def grads(values, cot):
            rev = jax.grad(f)(values, cot)
            fwd = jax.jacfwd(f)(values, cot) if forward_mode else rev
            return rev, fwd, _finite_differences(f, values, cot)

        rev, fwd, fd = grads(values, cot)
        if name == "kl_divergence" and where == "boundary":
            # d/dt (t log t) is -inf at t = 0; the loss documents its value
            # there as the derivative at t = 1e-12 instead.
            floored = cot[:, None] * (np.log(1e-12) + 1 - args[0])
            fd["targets"] = jnp.where(HARD == 0, floored, fd["targets"])
        for n in loss.diff:
            msg = f"d/d{n} of {name} at the {where}"
            chex.assert_tree_all_finite(fd[n], custom_message=msg)
            chex.assert_trees_all_close(rev[n], fd[n], rtol=1e-5, atol=1e-6, custom_message=msg)
            chex.assert_trees_all_close(fwd[n], fd[n], rtol=1e-5, atol=1e-6, custom_message=msg)
