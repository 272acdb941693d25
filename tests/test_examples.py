"""Every example runs end to end in its --quick mode and says what it measured.

Each runs in a fresh interpreter (as a user would run it), outside the
suite's strict JAX configuration.
"""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def run(name, *args):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("loss", ["focal"])
def test_train_digits(loss):
    out = run("train_digits.py", "--quick", "--loss", loss)
    accuracy = float(out.split("final test accuracy ")[1].split()[0])
    assert accuracy >= 0.85  # two epochs already learn the digits
    assert (EXAMPLES / "out" / f"train_digits_{loss}.png").stat().st_size > 10_000


def test_multilabel():
    out = run("multilabel.py", "--quick")
    assert "| is seven | 10% |" in out
    assert (EXAMPLES / "out" / "multilabel.png").stat().st_size > 10_000


def test_imbalanced():
    out = run("imbalanced.py", "--quick")
    for name in ("plain BCE", "pos_weight", "focal (alpha=0.75, gamma=2)"):
        assert f"| {name} |" in out
    assert (EXAMPLES / "out" / "imbalanced_pr.png").stat().st_size > 10_000


def test_long_tailed():
    out = run("long_tailed.py", "--quick")
    for name in ("plain CE", "class-balanced CE", "logit-adjusted CE", "ASL"):
        assert f"| {name} |" in out
    rows = {
        line.split("|")[1].strip(): line.split("|")[3] for line in out.splitlines() if "±" in line
    }
    assert float(rows["ASL"].split()[0]) > 0.5  # mean average precision of a trained model
    assert (EXAMPLES / "out" / "long_tailed.png").stat().st_size > 10_000


def test_large_vocab_lm():
    out = run("large_vocab_lm.py", "--quick")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()]
    rows = {c[0]: c[1] for c in cells if len(c) == 2}
    mib = lambda key: float(rows[key].split()[0].replace(",", ""))  # noqa: E731
    assert mib("loss temp memory, fused") < mib("loss temp memory, naive")
    assert (EXAMPLES / "out" / "large_vocab_lm.png").stat().st_size > 10_000


def test_sharded_training():
    """Data + vocabulary parallel on 8 virtual CPU devices; the script itself
    asserts no vocabulary all-gather and sharded loss == one-device loss."""
    out = run("sharded_training.py", "--quick")
    assert "| all-gathers with the vocabulary axis | 0 |" in out
    assert "| output kernel sharding | P(None, 'model') |" in out


def test_contrastive():
    """SigLIP and CLIP losses on an 8-device ring; the script itself asserts
    no all-gather of an embedding batch and sharded loss == one-device loss."""
    out = run("contrastive.py", "--quick")
    assert "| all-gathers of an embedding batch | 0 | 0 |" in out
    rows = {c[0]: c[1:] for c in ([s.strip() for s in line.strip("|").split("|")]
                                  for line in out.splitlines()) if len(c) == 4}  # fmt: skip
    untrained = float(rows["untrained encoders"][1])
    for name in ("SigLIP (sigmoid_pairwise_loss)", "CLIP (softmax_pairwise_loss)"):
        assert float(rows[name][1]) > untrained + 0.1  # top-5: learned something
    assert (EXAMPLES / "out" / "contrastive.png").stat().st_size > 10_000
