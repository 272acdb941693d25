"""Strict JAX configuration for the whole suite (as equinox does)."""

import jax
import pytest

# The fixture generator needs PyTorch and Keras; CI only reads its output.
collect_ignore = ["make_fixtures.py", "sharded_run.py"]

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


# Under `pytest -n 2 --dist loadgroup` tests are spread one by one, except
# files whose tests share an expensive setup: the 8-device subprocess run of
# test_sharding.py and the compiled programs test_fixtures.py reuses.
_SHARED_SETUP = ("test_sharding.py", "test_fixtures.py")


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in _SHARED_SETUP:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture(autouse=True)
def _strict_doctest_namespace(doctest_namespace):
    import jax.numpy as jnp

    import jaxloss

    doctest_namespace.update(jnp=jnp, jaxloss=jaxloss)
