"""Every loss on a device mesh gives the one-device result and never gathers
the vocabulary (tests/sharded_run.py runs on 8 virtual CPU devices)."""

import json
import os
import pathlib
import subprocess
import sys

import chex
import numpy as np
import pytest

from tests.losses import REGISTRY

# One xdist worker runs this whole file (`--dist loadgroup`): its tests share
# one 8-device subprocess run.
pytestmark = pytest.mark.xdist_group("sharding")

HERE = pathlib.Path(__file__).parent
MESHES = ["8x1", "2x4", "1x8"]
C = 256  # the class / vocabulary size in sharded_run.py
LOSSES = [*REGISTRY, "linear_softmax_cross_entropy"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded") / "results.npz"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run(
        [sys.executable, str(HERE / "sharded_run.py"), str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as z:
        return json.loads(str(z["report"])), {k: z[k] for k in z.files if k != "report"}


CASES = [(loss, "mean") for loss in LOSSES] + [
    ("softmax_cross_entropy_with_integer_labels", "none"),
    ("linear_softmax_cross_entropy", "none"),
]


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("loss,reduction", CASES)
def test_sharded_equals_unsharded(run, loss, reduction, mesh):
    """Value and gradients, with ignore_index / class weights / smoothing / z-loss on."""
    _, arrays = run
    key = f"{loss}/{reduction}/{mesh}"
    outputs = sorted({k.rsplit("/", 1)[0] for k in arrays if k.startswith(key + "/")})
    assert len(outputs) >= 2  # the value and at least one gradient
    for k in outputs:
        chex.assert_trees_all_close(
            arrays[k + "/sharded"], arrays[k + "/plain"], rtol=2e-5, atol=1e-6
        )
        assert np.isfinite(arrays[k + "/plain"]).all()


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("loss", LOSSES)
def test_no_all_gather_of_the_vocabulary(run, loss, mesh):
    """No all-gather in the compiled program has a full class axis: the
    logits (or the kernel) stay split over "model"; only per-example
    statistics cross devices."""
    report, _ = run
    keys = [k for k in report if k.startswith(f"{loss}/") and k.endswith(f"/{mesh}")]
    assert keys
    for key in keys:
        gathers = report[key]["gathers"]
        assert not [g for g in gathers if C in g], (key, gathers)


def test_the_hlo_check_sees_a_gathered_vocabulary(run):
    """The control program replicates the logits: its all-gather is found."""
    report, _ = run
    assert [g for g in report["control/2x4"]["gathers"] if C in g]


@pytest.mark.parametrize(
    "loss",
    [
        "sigmoid_binary_cross_entropy",
        "sigmoid_focal_loss",
        "softmax_cross_entropy",
        "softmax_cross_entropy_with_integer_labels",
    ],
)
def test_no_more_collectives_than_optax(run, loss):
    """The program GPUs and TPUs compile (the plain core) communicates no
    more than optax's for the same loss, batch and classes both sharded."""
    report, _ = run
    counts = report[f"collectives/{loss}"]
    assert counts["optax"] > 0  # the count sees the collectives
    assert counts["jaxloss"] <= counts["optax"], counts


PAIRWISE = ["sigmoid_pairwise_loss", "softmax_pairwise_loss"]


@pytest.mark.parametrize("mesh", ["8x1", "2x4"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("loss", PAIRWISE)
def test_pairwise_ring_equals_one_device(run, loss, reduction, mesh):
    """Value and gradients for x, y and the temperature, with a padding mask
    (and, for the sigmoid, labels with several positives per row), bias,
    pos_weight, focal gamma and label smoothing on."""
    report, arrays = run
    key = f"{loss}/{reduction}/{mesh}"
    outputs = sorted({k.rsplit("/", 1)[0] for k in arrays if k.startswith(key + "/")})
    assert len(outputs) == 4  # the value and three gradients
    for k in outputs:  # float32 sums of terms up to about 10 in another order
        chex.assert_trees_all_close(
            arrays[k + "/sharded"], arrays[k + "/plain"], rtol=2e-5, atol=1e-5
        )
    # The embeddings are never gathered; the blocks of y move by collective-permute.
    assert report[key]["gathers"] == []
    assert report[key]["permutes"] > 0


def test_cpu_kernel_gradient_slices_keep_the_vocabulary_split(run):
    """On CPU the fused loss adds its kernel gradient a slice of rows at a
    time; with the vocabulary split over "model" no all-gather carries it."""
    report, _ = run
    case = report["sliced/2x4"]
    assert not [g for g in case["gathers"] if case["vocab"] in g], case["gathers"]


@pytest.mark.parametrize("key", ["tiled/2x4", "tiled-default/2x4"])
def test_vocabulary_tiles_keep_the_vocabulary_split(run, key):
    """The fused loss's vocabulary tiles (runs of 16 columns dealt out in
    turn) on the 2x4 mesh: no all-gather of the vocabulary, and at V=1024,
    with every option, the one-device value and gradients (inputs, kernel,
    bias, class weights)."""
    report, arrays = run
    case = report[key]
    assert not [g for g in case["gathers"] if case["vocab"] in g], case["gathers"]
    if key == "tiled/2x4":
        outputs = sorted({k.rsplit("/", 1)[0] for k in arrays if k.startswith(key + "/")})
        assert len(outputs) == 5  # the value and four gradients
        for k in outputs:
            chex.assert_trees_all_close(
                arrays[k + "/sharded"], arrays[k + "/plain"], rtol=2e-5, atol=1e-5
            )
