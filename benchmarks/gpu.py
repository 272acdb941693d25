"""The loss benchmarks on a GPU (or TPU): jaxloss against optax, float32 and bfloat16.

    python benchmarks/gpu.py            # a few minutes on one GPU
    python benchmarks/gpu.py --quick    # float32, one shape per family

On an accelerator every loss compiles to the plain core (jaxloss/_core.py):
`jax.lax.platform_dependent` keeps the XLA:CPU fast path out of the program.
This script runs the same cases and measurements as `benchmarks/run.py`
(value and gradient of the mean, interleaved repetitions, full-size passes,
compiled temporary memory) and writes `benchmarks/results/losses_<device>.md`.
It refuses to run on CPU, so that no CPU figure is ever filed as an
accelerator's.
"""

from __future__ import annotations

import argparse
import re

import jax
import jax.numpy as jnp
import run as R
from tqdm import tqdm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    device = jax.devices()[0]
    if device.platform == "cpu":
        raise SystemExit("benchmarks/gpu.py measures accelerators; on CPU use benchmarks/run.py")
    dtypes = [jnp.float32] if args.quick else [jnp.float32, jnp.bfloat16]
    todo = [
        (name, fn, bn, b, kind, shape, dtype, opts)
        for dtype in dtypes
        for name, fn, bn, b, kind, shapes, opts in R.cases(args.quick)
        for shape in shapes
    ]
    rows = [R.run_case(*case, args.reps) for case in tqdm(todo, desc="losses", unit="case")]
    text = R.markdown(rows, args.reps).replace("`benchmarks/run.py`", "`benchmarks/gpu.py`")
    print(text)
    kind = re.sub(r"[^a-z0-9]+", "_", device.device_kind.lower()).strip("_")
    (R.RESULTS / f"losses_{kind}.md").write_text(text)


if __name__ == "__main__":
    main()
