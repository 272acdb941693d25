"""Strict JAX configuration for the whole suite (as equinox does)."""

import jax
import pytest

# The fixture generator needs PyTorch and Keras; CI only reads its output.
collect_ignore = ["make_fixtures.py", "sharded_run.py", "smoke.py"]

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _strict_doctest_namespace(doctest_namespace):
    import jax.numpy as jnp

    import jaxloss

    doctest_namespace.update(jnp=jnp, jaxloss=jaxloss)
