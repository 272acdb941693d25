"""The README's code runs as written (docstring examples run as doctests)."""

import pathlib
import re

README = pathlib.Path(__file__).parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


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
