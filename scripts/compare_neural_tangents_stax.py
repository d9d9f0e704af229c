"""Cross-check ntkcheck.stax kernels (conv, pooling, flatten, residual; LayerNorm, FanInConcat,
SumPool, GlobalSumPool, ConvTranspose, ConvLocal; GlobalSelfAttention and a transformer encoder)
against neural-tangents' stax.

neural-tangents is not a dependency; run this in a separate environment that has it
(see scripts/compare_neural_tangents.py for the installation):

    PYTHONPATH=. ntref/bin/python scripts/compare_neural_tangents_stax.py

Both libraries build every network from the same calls (``net(stax_module, activation)``; the
networks of the newer layers are in ``scripts/stax_networks.py``); prints the largest difference
relative to the largest entry, per network, activation and kernel, with one input set (X1) and
two (X1, X2), and each library's time for the one-input-set kernels (neural-tangents' jitted
``kernel_fn``, compiled before timing; best of two).
"""
import time
import timeit
import warnings

import numpy as np
from jax import config, jit

config.update("jax_enable_x64", True)
# every FanInSum branch here ends in Conv or is the skip branch; ntkcheck.stax checks this itself
warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")
# SumPool states the channel axis as -1 and Conv as 3 (NHWC): the same axis
warnings.filterwarnings("ignore", message="Got potentially mismatching `channel_axis`")
# linear-scaling attention ties the query weights to the key weights, as both libraries document
warnings.filterwarnings("ignore", message="Linear scaling attention used")
from neural_tangents import stax as nt  # noqa: E402

from ntkcheck import stax as ours  # noqa: E402
from ntkcheck.kernels import output_kernels  # noqa: E402
from stax_networks import ACTIVATIONS as ACTS  # noqa: E402 -- scripts/, the directory of this script
from stax_networks import NETWORKS, transformer  # noqa: E402


def cnn1d_gap(s, act):
    return s.serial(s.Conv(64, (3,), padding="SAME", W_std=1.5, b_std=0.1), act(),
                    s.Conv(64, (3,), strides=(2,), padding="CIRCULAR", W_std=1.5, b_std=0.1), act(),
                    s.Conv(64, (2,), W_std=1.5, b_std=0.1), act(), s.GlobalAvgPool(), s.Dense(1, W_std=1.5, b_std=0.1))


def cnn2d_gap(s, act):
    return s.serial(s.Conv(64, (3, 3), W_std=1.3, b_std=0.2), act(),
                    s.Conv(64, (3, 2), padding="SAME", W_std=1.3, b_std=0.2), act(),
                    s.Conv(64, (2, 2), strides=(2, 1), padding="CIRCULAR"), act(),
                    s.GlobalAvgPool(), s.Dense(1, W_std=1.3))


def cnn2d_flatten(s, act):
    return s.serial(s.Conv(64, (2, 3), padding="CIRCULAR", W_std=1.4, b_std=0.3), act(),
                    s.Dense(64, W_std=1.4, b_std=0.3), act(), s.Flatten(), s.Dense(1, W_std=1.4, b_std=0.3))


def cnn2d_avgpool(s, act):
    return s.serial(s.Conv(64, (3, 3), padding="SAME", W_std=1.2, b_std=0.1), act(),
                    s.AvgPool((2, 2), strides=(2, 2)), s.Conv(64, (2, 2), padding="SAME", W_std=1.2), act(),
                    s.AvgPool((3, 2), padding="SAME"), s.Flatten(), s.Dense(1, W_std=1.2, b_std=0.1))


def resnet(s, act):
    block = s.serial(s.FanOut(2), s.parallel(s.serial(s.Conv(64, (3, 3), padding="SAME"), act(),
                                                      s.Conv(64, (3, 3), padding="SAME", b_std=0.1)),
                                             s.Identity()), s.FanInSum())
    return s.serial(s.Conv(64, (3, 3), padding="CIRCULAR", W_std=1.3), block, block,
                    act(), s.GlobalAvgPool(), s.Dense(1, W_std=1.3, b_std=0.1))


def cnn2d_standard(s, act):
    return s.serial(s.Conv(64, (3, 3), padding="SAME", W_std=1.3, b_std=0.2, parameterization="standard"), act(),
                    s.Conv(32, (2, 2), W_std=1.3, b_std=0.2, parameterization="standard"), act(),
                    s.GlobalAvgPool(), s.Dense(1, W_std=1.3, b_std=0.2, parameterization="standard"))


NETS = {"1-D CNN, GlobalAvgPool": (cnn1d_gap, (9, 3)), "2-D CNN, GlobalAvgPool": (cnn2d_gap, (6, 5, 3)),
        "2-D CNN, Flatten": (cnn2d_flatten, (4, 5, 2)), "2-D CNN, AvgPool": (cnn2d_avgpool, (6, 6, 3)),
        "residual CNN": (resnet, (5, 5, 2)), "2-D CNN, standard param.": (cnn2d_standard, (5, 5, 3)),
        **NETWORKS}


def rel(a, b):
    b = np.asarray(b)
    return np.max(np.abs(a - b)) / np.abs(b).max()


def rel_text(a, b):
    """:func:`rel`; where it exceeds 1e-10, also the largest off the entries (x, x), where relu's
    derivative kernel is steepest at correlation 1 and a rounding of that correlation shows."""
    b = np.asarray(b)
    r = rel(a, b)
    if r <= 1e-10 or a.shape[0] != a.shape[1]:
        return f"{r:.1e}"
    off = ~np.eye(a.shape[0], dtype=bool)
    return f"{r:.1e} at (x, x), {np.abs(a - b)[off].max() / np.abs(b).max():.1e} elsewhere"


def best_time(fn, repeat=2):
    fn()                    # compiles neural-tangents' kernel_fn
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def main():
    rng = np.random.default_rng(0)
    print("| network | activation | max rel diff NNGP | max rel diff NTK | cross X1, X2: NNGP | NTK "
          "| neural-tangents (jit) | ntkcheck |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (build, shape) in NETS.items():
        X1, X2 = rng.standard_normal((4,) + shape), rng.standard_normal((3,) + shape)
        for act, layer in ACTS.items():
            _, _, kernel_fn = build(nt, getattr(nt, layer))
            net = build(ours, getattr(ours, layer))
            row = []
            for B in (None, X2):
                ref = kernel_fn(X1, B, ("nngp", "ntk"))
                k = output_kernels(net, X1, B)
                row += [rel_text(k.nngp, ref.nngp), rel_text(k.ntk, ref.ntk)]
            fn = jit(kernel_fn, static_argnames="get")
            t_nt = best_time(lambda: fn(X1, None, get=("nngp", "ntk")).ntk.block_until_ready())
            t_ours = best_time(lambda: output_kernels(net, X1))
            print(f"| {name} | {act} | " + " | ".join(row)
                  + f" | {t_nt * 1e3:.2f} ms | {t_ours * 1e3:.2f} ms |")

    speed()
    transformer_speed()


def speed():
    """The issue's benchmark: a 3-layer CNN with GlobalAvgPool on 64 inputs of 8x8x3, NNGP and NTK,
    against neural-tangents' jitted kernel_fn (compiled before timing), best of two, one process."""
    X = np.random.default_rng(1).standard_normal((64, 8, 8, 3))

    def cnn(s):
        conv = lambda: s.Conv(64, (3, 3), padding="SAME", W_std=1.4, b_std=0.1)  # noqa: E731
        return s.serial(conv(), s.Relu(), conv(), s.Relu(), conv(), s.Relu(), s.GlobalAvgPool(), s.Dense(1))
    kernel_fn = jit(cnn(nt)[2], static_argnames="get")
    kernel_fn(X, None, get=("nngp", "ntk")).ntk.block_until_ready()
    net = cnn(ours)
    times = {"neural-tangents (jit)": [], "ntkcheck": []}
    for _ in range(2):
        t = time.perf_counter()
        kernel_fn(X, None, get=("nngp", "ntk")).ntk.block_until_ready()
        times["neural-tangents (jit)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        output_kernels(net, X)
        times["ntkcheck"].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    print("\n3-layer CNN, GlobalAvgPool, 64 x 8x8x3: " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items())
          + f"; ratio ntkcheck / neural-tangents = {best['ntkcheck'] / best['neural-tangents (jit)']:.2f}")


def transformer_speed():
    """Issue 23's benchmark: the transformer encoder of ``stax_networks.py`` (2 blocks) on 64
    sequences of length 8 with 8 channels, NNGP and NTK, against neural-tangents' jitted kernel_fn."""
    X = np.random.default_rng(2).standard_normal((64, 8, 8))
    fn = jit(transformer(nt, nt.Relu)[2], static_argnames="get")
    net = transformer(ours, ours.Relu)
    t_nt = best_time(lambda: fn(X, None, get=("nngp", "ntk")).ntk.block_until_ready())
    t_ours = best_time(lambda: output_kernels(net, X))
    print(f"\ntransformer encoder, 2 blocks, 64 x 8 x 8: neural-tangents (jit) {t_nt:.3f} s, ntkcheck {t_ours:.3f} s; "
          f"ratio ntkcheck / neural-tangents = {t_ours / t_nt:.2f}")


if __name__ == "__main__":
    main()
