"""Cross-check ntkcheck.stax kernels (conv, pooling, flatten, residual) against neural-tangents' stax.

neural-tangents is not a dependency; run this in a separate environment that has it
(see scripts/compare_neural_tangents.py for the installation):

    PYTHONPATH=. ntref/bin/python scripts/compare_neural_tangents_stax.py

Both libraries build every network from the same calls (``net(stax_module, activation)``);
prints the largest difference relative to the largest entry, per network, activation and kernel.
"""
import time
import warnings

import numpy as np
from jax import config, jit

config.update("jax_enable_x64", True)
# every FanInSum branch here ends in Conv or is the skip branch; ntkcheck.stax checks this itself
warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")
# linear-scaling attention ties the query weights to the key weights, as both libraries document
warnings.filterwarnings("ignore", message="Linear scaling attention used")
from neural_tangents import stax as nt  # noqa: E402

from ntkcheck import stax as ours  # noqa: E402
from ntkcheck.kernels import output_kernels  # noqa: E402


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


# --- attention (GlobalSelfAttention) -------------------------------------------------------------


def attention(mechanism, linear_scaling=True):
    """Dense embedding, attention, act, GlobalAvgPool, Dense readout."""
    def build(s, act):
        return s.serial(s.Dense(64, W_std=1.3, b_std=0.1),
                        s.GlobalSelfAttention(64, 64, 64, 2, linear_scaling=linear_scaling, W_key_std=1.2,
                                              W_value_std=0.9, W_query_std=0.8, W_out_std=1.1, b_std=0.1,
                                              attention_mechanism=mechanism),
                        act(), s.GlobalAvgPool(), s.Dense(1, W_std=1.2, b_std=0.1))
    return build


def residual_attention(s, act, blocks=2, width=64):
    """Dense embedding, then per block a residual attention block and a residual MLP block (no
    LayerNorm), GlobalAvgPool, Dense readout."""
    def residual(*layers):
        return s.serial(s.FanOut(2), s.parallel(s.serial(*layers), s.Identity()), s.FanInSum())
    block = [residual(s.GlobalSelfAttention(width, width, width, 4, W_key_std=1.5, b_std=0.1)),
             residual(act(), s.Dense(width, W_std=1.2, b_std=0.1), act(), s.Dense(width, b_std=0.1))]
    return s.serial(s.Dense(width, W_std=1.3), *block * blocks, s.GlobalAvgPool(), s.Dense(1, b_std=0.1))


ATTENTION_NETS = {f"attention {m.lower()}, linear scaling": (attention(m), (6, 3))
                  for m in ("SOFTMAX", "IDENTITY", "RELU", "ABS")}
ATTENTION_NETS["attention identity, 1/sqrt scaling"] = (attention("IDENTITY", False), (6, 3))
ATTENTION_NETS["attention softmax, 2-D positions"] = (attention("SOFTMAX"), (3, 2, 3))
ATTENTION_NETS["residual attention + MLP blocks"] = (residual_attention, (5, 3))

# --- end of attention ------------------------------------------------------------------------------

NETS = {"1-D CNN, GlobalAvgPool": (cnn1d_gap, (9, 3)), "2-D CNN, GlobalAvgPool": (cnn2d_gap, (6, 5, 3)),
        "2-D CNN, Flatten": (cnn2d_flatten, (4, 5, 2)), "2-D CNN, AvgPool": (cnn2d_avgpool, (6, 6, 3)),
        "residual CNN": (resnet, (5, 5, 2)), "2-D CNN, standard param.": (cnn2d_standard, (5, 5, 3)),
        **ATTENTION_NETS}
ACTS = {"relu": "Relu", "erf": "Erf"}


def rel(a, b):
    b = np.asarray(b)
    return np.max(np.abs(a - b)) / np.abs(b).max()


def main():
    rng = np.random.default_rng(0)
    print("| network | activation | max rel diff NNGP | max rel diff NTK | cross X1, X2: NNGP | NTK |")
    print("|---|---|---|---|---|---|")
    for name, (build, shape) in NETS.items():
        X1, X2 = rng.standard_normal((4,) + shape), rng.standard_normal((3,) + shape)
        for act, layer in ACTS.items():
            _, _, kernel_fn = build(nt, getattr(nt, layer))
            net = build(ours, getattr(ours, layer))
            row = []
            for B in (None, X2):
                ref = kernel_fn(X1, B, ("nngp", "ntk"))
                k = output_kernels(net, X1, B)
                row += [rel(k.nngp, ref.nngp), rel(k.ntk, ref.ntk)]
            print(f"| {name} | {act} | " + " | ".join(f"{r:.1e}" for r in row) + " |")

    speed()
    attention_speed()


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


def attention_speed():
    """Issue 23's benchmark: 2 residual attention + MLP blocks on 64 sequences of length 8 (8
    channels), NNGP and NTK, against neural-tangents' jitted kernel_fn (compiled before timing)."""
    X = np.random.default_rng(2).standard_normal((64, 8, 8))
    _report_speed("2 residual attention + MLP blocks, 64 x 8 x 8", residual_attention(nt, nt.Relu)[2],
                  residual_attention(ours, ours.Relu), X)


def _report_speed(name, nt_kernel_fn, net, X):
    """Best of two, one process: neural-tangents' jitted ``kernel_fn`` and ntkcheck's output kernels."""
    kernel_fn = jit(nt_kernel_fn, static_argnames="get")
    kernel_fn(X, None, get=("nngp", "ntk")).ntk.block_until_ready()
    times = {"neural-tangents (jit)": [], "ntkcheck": []}
    for _ in range(2):
        t = time.perf_counter()
        kernel_fn(X, None, get=("nngp", "ntk")).ntk.block_until_ready()
        times["neural-tangents (jit)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        output_kernels(net, X)
        times["ntkcheck"].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    print(f"\n{name}: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items())
          + f"; ratio ntkcheck / neural-tangents = {best['ntkcheck'] / best['neural-tangents (jit)']:.2f}")


if __name__ == "__main__":
    main()
