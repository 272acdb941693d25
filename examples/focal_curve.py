"""Draw the focal-loss curve: loss against p_t for several gamma (Lin et al. 2017, Fig. 1).

    python examples/focal_curve.py            # writes docs/img/focal_loss_curve.png

The curve is jaxloss' own binary_focal_loss on probabilities with label 1, so
p_t = p and the loss is (1 - p_t) ** gamma * -log(p_t).
"""

import argparse
import pathlib

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import jaxloss  # noqa: E402

GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = pathlib.Path(__file__).parent.parent / "docs" / "img" / "focal_loss_curve.png"
    parser.add_argument("--out", type=pathlib.Path, default=default)
    args = parser.parse_args()

    p_t = jnp.linspace(0.005, 1.0, 400)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for gamma in GAMMAS:
        loss = jaxloss.binary_focal_loss(p_t, jnp.ones_like(p_t), gamma=gamma)
        ax.plot(p_t, loss, label=f"γ = {gamma:g}" + (" (cross-entropy)" if gamma == 0 else ""))
    ax.axvspan(0.6, 1.0, color="0.93", zorder=0)
    ax.text(0.8, 4.2, "well-classified\nexamples", ha="center", fontsize=9)
    ax.set(xlabel="probability of the ground-truth class, $p_t$", ylabel="loss")
    ax.set(xlim=(0, 1), ylim=(0, 5))
    ax.set_title("Focal loss $(1 - p_t)^\\gamma \\cdot (-\\log p_t)$")
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
