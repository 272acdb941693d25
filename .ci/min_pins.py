"""Print pyproject.toml's lower bounds of the packages CI tests at their
minimum, pinned (`jax==0.6.0 ...`), for `pip install`."""

import re

import tomllib

TESTED = ("jax", "jaxlib", "numpy", "optax", "chex", "flax")

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"].values()
specs = project["dependencies"] + [spec for deps in extras for spec in deps]
pins = {}
for spec in specs:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([\w.]+).*", spec)
    if m and m.group(1).lower() in TESTED:
        pins[m.group(1).lower()] = m.group(2)
missing = set(TESTED) - set(pins)
assert not missing, f"no lower bound declared for {sorted(missing)}"
print(" ".join(f"{name}=={version}" for name, version in sorted(pins.items())))
