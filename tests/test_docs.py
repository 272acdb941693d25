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
