"""What GPUs and TPUs run, proven without one.

Each public loss (every registry entry, with its options on) is exported
with `jax.export` for `platforms=("cuda", "tpu")`, value and gradient, and
its StableHLO must hold no `optimization_barrier` (it blocks fusion), no
host callback (it synchronises with the host) and no conditional whose
predicate comes from data (on a GPU it copies the predicate to the host
every step). The only `case` allowed is `jax.lax.platform_dependent`'s,
indexed by the platform (a constant once the platform is known). And the
CPU tricks stay in their own module: a grep keeps `lax.cond`,
`optimization_barrier` and `SymbolicZero` out of every other file.
"""

import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import jaxloss
from tests.losses import FUSED, PAIRWISE, REGISTRY

PACKAGE = pathlib.Path(__file__).parent.parent / "jaxloss"
CASES = {**REGISTRY, "linear_softmax_cross_entropy": FUSED, **PAIRWISE}
CASE_OP = re.compile(r'^\s*(%[\w#.]+)(?::\d+)? = "stablehlo\.case"\((%[\w#.]+)\)')


def _exported_text(name, platforms=("cuda", "tpu")):
    loss = CASES[name]
    args = loss.make(np.random.default_rng(0), (4, 3))
    opts = {"reduction": "none", **loss.options(3)}
    if (
        jnp.issubdtype(args[-1].dtype, jnp.integer)
        and "ignore_index" in inspect.signature(loss.fn).parameters
    ):
        opts["ignore_index"] = 0

    def value_and_grad(first, *rest):
        def total(first):
            return jnp.sum(loss.fn(first, *rest, **opts))

        return jax.value_and_grad(total)(first)

    return export.export(jax.jit(value_and_grad), platforms=platforms)(*args).mlir_module()


def data_dependent_conditionals(text):
    """The `case`/`if` ops of a StableHLO module whose index is not static.

    Static: a constant, the `_platform_index` argument, or the result of a
    `case` that only maps a static index to another (all its branches
    return constants).
    """
    static = set(re.findall(r"(%[\w#.]+) = stablehlo\.constant", text))
    static |= set(
        re.findall(r'(%arg\d+): tensor<i32> \{jax\.global_constant = "_platform_index"', text)
    )
    bad = re.findall(r"stablehlo\.if\b", text)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = CASE_OP.match(line)
        if not m:
            continue
        result, index = m.groups()
        if index not in static:
            bad.append(line.strip())
            continue
        # The case's own region, up to its closing `}) : (tensor<i32>) -> ...`.
        depth, body = 0, []
        for inner in lines[i:]:
            depth += inner.count("{") - inner.count("}")
            body.append(inner)
            if depth <= 0 and inner.strip().startswith("})"):
                break
        returns = re.findall(r"stablehlo\.return (.*?) :", "\n".join(body))
        remaps = re.search(r"\) -> tensor<i32>( loc\(.*\))?$", body[-1].rstrip())
        if remaps and all(r in static for r in returns):
            static.add(result)
    return bad


def assert_clean(text):
    assert "optimization_barrier" not in text
    assert not re.search(r"custom_call @\w*callback", text), re.findall(r"custom_call @\w+", text)
    assert data_dependent_conditionals(text) == []


@pytest.mark.parametrize("name", list(CASES))
def test_accelerator_programs_are_clean(name):
    assert_clean(_exported_text(name))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_the_vocabulary_tiled_fused_loss_is_clean(reduction):
    """The fused loss's vocabulary tiles (its default at V = 131072) in the
    cuda and tpu programs: loops over chunks and over tiles, with no
    barrier, callback or data-dependent conditional."""
    x = jax.ShapeDtypeStruct((4096, 64), jnp.float32)
    k = jax.ShapeDtypeStruct((64, 131072), jnp.float32)
    y = jax.ShapeDtypeStruct((4096,), jnp.int32)

    def value_and_grad(x, k, y):
        def total(x, k):
            out = jaxloss.linear_softmax_cross_entropy(
                x, k, y, label_smoothing=0.1, z_loss=1e-4, logit_soft_cap=30.0,
                reduction=reduction,
            )  # fmt: skip
            return jnp.sum(out)

        return jax.value_and_grad(total, argnums=(0, 1))(x, k)

    exported = export.export(jax.jit(value_and_grad), platforms=("cuda", "tpu"))(x, k, y)
    text = exported.mlir_module()
    assert_clean(text)
    assert text.count("stablehlo.while") >= 2  # chunks of tokens, and tiles within them


def test_the_conditional_check_can_fail():
    # The same checks see the CPU fast path's data-dependent `cond` and its
    # barriers when the program is exported for CPU.
    text = _exported_text("softmax_cross_entropy", platforms=("cpu",))
    assert data_dependent_conditionals(text)
    assert "optimization_barrier" in text


CPU_ONLY = ["lax.cond", "optimization_barrier", "SymbolicZero"]


@pytest.mark.parametrize("word", CPU_ONLY)
def test_cpu_tricks_stay_in_their_module(word):
    users = sorted(p.name for p in PACKAGE.glob("*.py") if word in p.read_text())
    assert users == ["_cpu.py"], f"{word} used outside _cpu.py: {users}"


def test_the_core_and_the_fused_loss_import_no_family_module():
    for name in ("_core.py", "_linear.py"):
        imports = re.findall(r"^from \.(\w+) import", (PACKAGE / name).read_text(), re.M)
        assert set(imports) <= {"_common", "_core"}, (name, imports)
