"""The README's and the docs' code runs as written.

Python blocks run here; blocks written as `>>>` sessions (docs/index.md,
docs/migration.md) and the docstrings run as doctests (pytest's
--doctest-glob and --doctest-modules, see pyproject.toml).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _script_blocks(path):
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    return [b for b in blocks if not b.lstrip().startswith(">>>")]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(path):
    for block in _script_blocks(path):
        exec(compile(block, str(path), "exec"), {})


def test_readme_has_code():
    assert _script_blocks(README)


def test_every_page_is_in_the_site():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name in nav, page.name


def test_readme_quickstart_is_two_commands():
    first = re.search(r"```\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(first.strip().splitlines()) == 2


def test_focal_curve_script_runs(tmp_path):
    import runpy
    import sys

    script = pathlib.Path(__file__).parent.parent / "examples" / "focal_curve.py"
    out = tmp_path / "curve.png"
    argv, sys.argv = sys.argv, [str(script), "--out", str(out)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert out.stat().st_size > 10_000
