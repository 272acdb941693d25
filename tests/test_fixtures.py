"""Replay every golden case produced by the real systems (tests/make_fixtures.py).

PyTorch (float64 on float32 inputs), Keras 3, scikit-learn, kornia, optax,
timm, entmax and MONAI gave these values; jaxloss must give them in float32 to rtol 1e-5, and the
same gradients (of sum(loss * cotangent) for reduction="none").
"""

import functools
import json
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

# One xdist worker runs this whole file (`--dist loadgroup`): its cases share
# compiled programs.
pytestmark = pytest.mark.xdist_group("fixtures")

DATA = pathlib.Path(__file__).parent / "data"


def _load():
    cases = []
    for path in sorted(DATA.glob("*.npz")):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        for case in json.loads(str(arrays["meta"])):
            cases.append(pytest.param(case, arrays, id=case["id"]))
    return cases


CASES = _load()


@functools.partial(jax.jit, static_argnames=("name", "static", "wrt"))
def _value_and_vjp(args, dynamic, cot, *, name, static, wrt):
    """One compile per function, option set and shapes, shared by many cases.

    Every numeric hyperparameter arrives traced (as users may pass them);
    only strings and ints (reduction, axis, ignore_index) are static. The
    gradient is with respect to `wrt`: a positional index or an option name.
    """
    pre = None
    if name.endswith("@sigmoid"):  # BCE on the sigmoid of the stored logits
        name, pre = name.split("@")[0], jax.nn.sigmoid
    fn = getattr(jaxloss, name)

    def loss(v):
        a, kw = list(args), dict(dynamic)
        if isinstance(wrt, int):
            a[wrt] = v
        else:
            kw[wrt] = v
        if pre:
            a[0] = pre(a[0])
        return fn(*a, **kw, **dict(static))

    out, vjp = jax.vjp(loss, args[wrt] if isinstance(wrt, int) else dynamic[wrt])
    return out, vjp(jnp.broadcast_to(cot, out.shape))[0]


def _run(case, arrays):
    args = [jnp.asarray(arrays[a]) for a in case["args"]]
    static, dynamic = [], {}
    for k, v in case["kwargs"].items():
        if isinstance(v, str) and v.startswith("@"):
            dynamic[k] = jnp.asarray(arrays[v[1:]])
        elif isinstance(v, float):
            dynamic[k] = jnp.float32(v)
        else:  # JSON keeps a tuple (dice_loss' `axis`) as a list
            static.append((k, tuple(v) if isinstance(v, list) else v))
    i = case["args"][0].split("/")[0]
    cot = jnp.asarray(arrays.get(f"{i}/cot", np.ones((), np.float32)))
    return _value_and_vjp(
        args, dynamic, cot, name=case["fn"], static=tuple(sorted(static)), wrt=case.get("wrt", 0)
    )


# Keras computes in float32 and clips probabilities at 1e-7; elsewhere the
# reference is float64 and float32 rounding is the only difference.
RTOL = {"keras": 2e-5}


def _tol(case):
    return RTOL.get(case["source"].split()[0], 1e-5)


def _deviations(case, arrays, expected):
    """The reference's value, but where jaxloss deliberately differs (README,
    "Where jaxloss deliberately differs"): optax's class-mask `where` drops
    target mass on a masked class; jaxloss gives +inf there, as for a label
    whose logit is -inf."""
    where = case["kwargs"].get("where")
    if case["fn"] == "softmax_cross_entropy" and where is not None:
        mask, labels = arrays[where[1:]], arrays[case["args"][1]]
        if mask.shape == labels.shape:
            expected = np.where(np.any(~mask & (labels > 0), -1), np.inf, expected)
    return expected


@pytest.mark.parametrize("case,arrays", CASES)
def test_matches_reference(case, arrays):
    """Value, and where the reference system gives one, the gradient."""
    i = case["args"][0].split("/")[0]
    out, grad = _run(case, arrays)
    assert out.dtype == jnp.float32
    expected = _deviations(case, arrays, arrays[f"{i}/expected"]).astype(np.float32)
    chex.assert_trees_all_close(out, expected, rtol=_tol(case), atol=1e-6)
    if f"{i}/grad" in arrays:
        expected = arrays[f"{i}/grad"].astype(np.float32)
        chex.assert_trees_all_close(grad, expected, rtol=10 * _tol(case), atol=1e-5)
