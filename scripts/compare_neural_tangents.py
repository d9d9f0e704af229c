"""Cross-check ntkcheck's analytic kernels against neural-tangents' stax (the field's reference).

neural-tangents is not a dependency; run this in a separate environment that has it:

    python -m venv ntref && ntref/bin/pip install "jax[cpu]==0.4.30" neural-tangents "numpy<2" scipy
    PYTHONPATH=. ntref/bin/python scripts/compare_neural_tangents.py

Prints the largest relative difference per activation for Dense(W_std, b_std)/activation x depth,
then Dense(1), NTK parameterization.
"""
import numpy as np
from jax import config

config.update("jax_enable_x64", True)
from neural_tangents import stax  # noqa: E402

from ntkcheck import MLP, nngp_kernel, ntk_kernel  # noqa: E402

ACTS = {
    "relu": stax.Relu(), "abs": stax.Abs(), "leaky_relu(0.2)": stax.LeakyRelu(0.2), "identity": stax.Identity(),
    "erf": stax.Erf(), "sin": stax.Sin(), "cos": stax.Cos(), "gelu": stax.Gelu(approximate=False),
}


def main():
    X = np.random.default_rng(0).standard_normal((6, 4))
    print("| activation | depth | sigma_w | sigma_b | max rel diff NNGP | max rel diff NTK |")
    print("|---|---|---|---|---|---|")
    for name, layer in ACTS.items():
        for depth, sw, sb in ((1, 1.0, 0.0), (3, 1.5, 0.2)):
            layers = [stax.Dense(512, W_std=sw, b_std=sb), layer] * depth + [stax.Dense(1, W_std=sw, b_std=sb)]
            _, _, kernel_fn = stax.serial(*layers)
            ref = kernel_fn(X, X, ("nngp", "ntk"))
            spec = MLP(depth, 512, name, sigma_w=sw, sigma_b=sb)
            rel = [np.max(np.abs(ours - np.asarray(theirs)) / np.abs(np.asarray(theirs)).max())
                   for ours, theirs in ((nngp_kernel(spec, X), ref.nngp), (ntk_kernel(spec, X), ref.ntk))]
            print(f"| {name} | {depth} | {sw} | {sb} | {rel[0]:.1e} | {rel[1]:.1e} |")


if __name__ == "__main__":
    main()
