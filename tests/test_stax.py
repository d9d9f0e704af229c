"""ntkcheck.stax kernels: agreement with the MLP recursion, conv/pooling by brute force, branching,
neural-tangents reference values, and errors naming the layer."""
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck import MLP, nngp_kernel, ntk_kernel, output_kernels
from ntkcheck import stax as S
from ntkcheck.stax import network
from ntkcheck.strategies import inputs, specs, stax_networks

PROPS = settings(max_examples=25, deadline=None, derandomize=True)


def as_serial(spec: MLP, d_out: int = 1):
    """The stax network with the same calls as ``spec`` (what a neural-tangents user writes)."""
    dense = lambda n: S.Dense(n, spec.sigma_w, spec.sigma_b, spec.parameterization)  # noqa: E731
    layers = [layer for n in spec.widths for layer in (dense(n), S.Activation(spec.act))]
    return S.serial(*layers, dense(d_out))


@PROPS
@given(specs(parameterizations=("ntk", "standard"), max_depth=3), inputs(), inputs(n=st.integers(1, 3)))
def test_dense_serial_equals_mlp(spec, X1, X2):
    X2 = X2[:, :1].repeat(X1.shape[1], axis=1)
    net = as_serial(spec)
    for B in (None, X2):
        ours, mlp = output_kernels(net, X1, B), output_kernels(spec, X1, B)
        for a, b in ((ours.nngp, mlp.nngp), (ours.ntk, mlp.ntk), (ours.diag1, mlp.diag1), (ours.diag2, mlp.diag2)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14 * np.abs(b).max())


@pytest.mark.parametrize("spec", [
    MLP(3, (5, 7, 4), "erf", sigma_w=1.3, sigma_b=0.2, parameterization="standard", d_out=2),
    MLP(2, 6, "relu", sigma_w=1.1, sigma_b=0.3, parameterization="mean_field", output_scale=2.5),
    MLP(1, 4, "gelu", output_scale=0.5),
])
def test_mlp_is_its_stax_network(spec):
    """An MLP is ``serial(Dense, act, ..., Dense)``: its network gives the same numbers to the bit on
    every path (kernels, exact and dense sampling), and the spec still compares, hashes and pickles
    by its fields."""
    import pickle

    from ntkcheck import sample_init

    net = spec.network()
    assert net.layers == spec.layers and len(net.layers) == 2 * spec.depth + 1
    readout = net.layers[-1]
    assert (readout.out_dim, readout.scale, readout.W_std) == (spec.d_out, spec.output_scale, spec.sigma_w)
    assert readout.parameterization == ("mean_field" if spec.parameterization == "mean_field"
                                        else spec.parameterization)
    X = np.random.default_rng(1).standard_normal((4, 3))
    for a, b in ((output_kernels(spec, X), output_kernels(net, X)),
                 (output_kernels(spec, X, X[:2]), output_kernels(net, X, X[:2]))):
        for name in ("nngp", "ntk", "diag1", "diag2"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for method in ("exact", "dense"):
        a, b = sample_init(spec, X, 3, seed=2, method=method), sample_init(net, X, 3, seed=2, method=method)
        for name in ("f", "ntk", "pre_grams", "post_grams"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec and hash(copy) == hash(spec) and repr(copy) == repr(spec) and copy.network() == net


def test_quadrature_activation_through_stax():
    X = np.random.default_rng(0).standard_normal((4, 3))
    spec = MLP(2, 10, "tanh", sigma_w=1.5, sigma_b=0.1)
    np.testing.assert_allclose(ntk_kernel(as_serial(spec), X), ntk_kernel(spec, X), rtol=1e-12)
    np.testing.assert_allclose(nngp_kernel(S.serial(S.Dense(3), S.Tanh(), S.Dense(1)), X),
                               nngp_kernel(MLP(1, 3, "tanh"), X), rtol=1e-12)


@pytest.mark.parametrize("act", ["relu", "erf", "gelu"])
def test_one_by_one_conv_is_dense_per_position(act):
    """A 1x1 conv network is the MLP applied at every position: after Flatten its kernel is the
    mean over positions p of K_MLP(x_p, x'_p); after GlobalAvgPool, the mean over all (p, q)."""
    X = np.random.default_rng(1).standard_normal((3, 4, 2, 3))
    spec = MLP(2, 8, act, sigma_w=1.4, sigma_b=0.2)
    conv = lambda: S.Conv(8, (1, 1), W_std=1.4, b_std=0.2)  # noqa: E731
    body = [conv(), S.Activation(act), conv(), S.Activation(act), S.Conv(1, (1, 1), W_std=1.4, b_std=0.2)]
    rows = X.reshape(-1, 3)                                 # (input, position) pairs
    flat = output_kernels(spec, rows)
    for pool, reduce in ((S.Flatten(), "flatten"), (S.GlobalAvgPool(), "gap")):
        k = output_kernels(S.serial(*body, pool), X)
        for got, full in ((k.nngp, flat.nngp), (k.ntk, flat.ntk)):
            blocks = full.reshape(3, 8, 3, 8)
            want = np.einsum("apbp->ab", blocks) / 8 if reduce == "flatten" else blocks.mean(axis=(1, 3))
            np.testing.assert_allclose(got, want, rtol=1e-12)
    # Dense on positions is the same layer as a 1x1 Conv
    dense = S.serial(S.Dense(8, 1.4, 0.2), S.Activation(act), S.Dense(8, 1.4, 0.2), S.GlobalAvgPool())
    k1x1 = S.serial(*body[:3], S.GlobalAvgPool())
    np.testing.assert_allclose(ntk_kernel(dense, X), ntk_kernel(k1x1, X), rtol=1e-13)


def _brute_conv_nngp(X, f, s, padding, W_std, b_std):
    """One linear 1-D conv layer by its definition: Cov(h_i(x), h_j(x')) =
    W_std^2/(C f) sum_{o,c} xpad[s i + o, c] x'pad[s j + o, c] + b_std^2."""
    N, L, C = X.shape
    if padding == "VALID":
        lo = hi = 0
    else:
        out = -(-L // s)
        total = max((out - 1) * s + f - L, 0)
        lo, hi = total // 2, total - total // 2
    idx = np.arange(-lo, L + hi)
    Xp = X[:, idx % L] if padding == "CIRCULAR" else np.where(((idx >= 0) & (idx < L))[None, :, None],
                                                               X[:, np.clip(idx, 0, L - 1)], 0.0)
    n_out = (L + lo + hi - f) // s + 1
    K = np.zeros((N, N, n_out, n_out))
    for i in range(n_out):
        for j in range(n_out):
            for o in range(f):
                K[:, :, i, j] += Xp[:, s * i + o] @ Xp[:, s * j + o].T
    return W_std**2 * K / (C * f) + b_std**2, n_out


@pytest.mark.parametrize("padding", ["VALID", "SAME", "CIRCULAR"])
@pytest.mark.parametrize("f,s", [(3, 1), (2, 2), (4, 3), (1, 1)])
def test_conv_kernel_and_shape_by_definition(padding, f, s):
    X = np.random.default_rng(2).standard_normal((3, 7, 2))
    layer = S.Conv(5, (f,), strides=(s,), padding=padding, W_std=1.3, b_std=0.4)
    state = layer.kernel(S.input_state(X, None))
    want, n_out = _brute_conv_nngp(X, f, s, padding, 1.3, 0.4)
    assert state.shape == (n_out, 5)
    assert n_out == {"VALID": (7 - f) // s + 1}.get(padding, -(-7 // s))
    np.testing.assert_allclose(state.nngp, want, rtol=1e-13)
    np.testing.assert_allclose(state.cov1, np.einsum("nnij->nij", want), rtol=1e-13)


def test_two_d_shapes():
    X = np.zeros((2, 7, 6, 3))
    state = S.input_state(X, None)
    for layer, shape in ((S.Conv(4, (3, 2)), (5, 5, 4)), (S.Conv(4, (3, 3), (2, 2), "SAME"), (4, 3, 4)),
                         (S.Conv(4, (2, 3), (3, 1), "CIRCULAR"), (3, 6, 4)), (S.AvgPool((2, 2)), (6, 5, 3)),
                         (S.AvgPool((2, 2), (2, 2), "SAME"), (4, 3, 3)), (S.GlobalAvgPool(), (3,)),
                         (S.Flatten(), (126,)), (S.Dense(9), (7, 6, 9))):
        out = layer.kernel(state)
        assert out.shape == shape, layer
        assert out.nngp.shape == (2, 2) + tuple(n for n in shape[:-1] for _ in (0, 1)), layer


def test_pooling_by_definition():
    """AvgPool is K' = A K A^T per axis (zero padding counted in SAME); a window over everything
    then Flatten is GlobalAvgPool; a 1-window pool is the identity."""
    X = np.random.default_rng(3).standard_normal((3, 6, 2))
    base = S.serial(S.Conv(4, (2,), padding="SAME"), S.Erf(), S.Conv(4, (3,), padding="CIRCULAR"))
    state = base.kernel(S.input_state(X, None))
    A = np.zeros((3, 6))              # AvgPool((3,), strides=(2,), padding="SAME"): pads 0 before, 1 after
    for i in range(3):
        for o in range(3):
            if 2 * i + o < 6:
                A[i, 2 * i + o] = 1 / 3
    pooled = S.AvgPool((3,), (2,), "SAME").kernel(state)
    np.testing.assert_allclose(pooled.nngp, np.einsum("ik,abkl,jl->abij", A, state.nngp, A), rtol=1e-13)
    np.testing.assert_allclose(pooled.ntk, np.einsum("ik,abkl,jl->abij", A, state.ntk, A), rtol=1e-13)
    whole = S.serial(base, S.AvgPool((6,)), S.Flatten(), S.Dense(1))
    np.testing.assert_allclose(ntk_kernel(whole, X), ntk_kernel(S.serial(base, S.GlobalAvgPool(), S.Dense(1)), X),
                               rtol=1e-13)
    same = S.AvgPool((1,)).kernel(state)
    np.testing.assert_array_equal(same.nngp, state.nngp)


def test_residual_block_is_sum_of_branches():
    X = np.random.default_rng(4).standard_normal((3, 5, 4, 2))
    stem = S.Conv(6, (3, 3), padding="CIRCULAR", W_std=1.3)
    branch = S.serial(S.Conv(6, (3, 3), padding="SAME"), S.Relu(), S.Conv(6, (3, 3), padding="SAME", b_std=0.1))
    block = S.serial(S.FanOut(2), S.parallel(branch, S.Identity()), S.FanInSum())
    head = S.serial(S.Relu(), S.GlobalAvgPool(), S.Dense(1))
    s0 = stem.kernel(S.input_state(X, None))
    res, skip, conv = block.kernel(s0), S.Identity().kernel(s0), branch.kernel(s0)
    np.testing.assert_allclose(res.nngp, skip.nngp + conv.nngp, rtol=1e-14)
    np.testing.assert_allclose(res.ntk, skip.ntk + conv.ntk, rtol=1e-14)
    K = output_kernels(S.serial(stem, block, block, head), X)
    for M in (K.nngp, K.ntk):
        np.testing.assert_allclose(M, M.T, rtol=1e-13)
        assert np.linalg.eigvalsh(M).min() > 0


def test_cross_kernel_is_block_of_joint_kernel():
    rng = np.random.default_rng(5)
    X1, X2 = rng.standard_normal((3, 5, 4, 2)), rng.standard_normal((2, 5, 4, 2))
    net = S.serial(S.Conv(4, (2, 2), padding="SAME", b_std=0.3), S.Gelu(), S.AvgPool((2, 2)),
                   S.Conv(4, (2, 2)), S.Relu(), S.Flatten(), S.Dense(1))
    joint, cross = output_kernels(net, np.concatenate([X1, X2])), output_kernels(net, X1, X2)
    np.testing.assert_allclose(cross.nngp, joint.nngp[:3, 3:], rtol=1e-12)
    np.testing.assert_allclose(cross.ntk, joint.ntk[:3, 3:], rtol=1e-12)
    np.testing.assert_allclose(cross.diag2, np.diag(joint.nngp)[3:], rtol=1e-12)


@PROPS
@given(stax_networks(), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_random_architectures_symmetric_psd_cross_block(net_shape, n, seed):
    net, shape = net_shape
    rng = np.random.default_rng(seed)
    X1, X2 = rng.standard_normal((n,) + shape), rng.standard_normal((2,) + shape)
    joint, cross = output_kernels(net, np.concatenate([X1, X2])), output_kernels(net, X1, X2)
    for K in (joint.nngp, joint.ntk):
        np.testing.assert_allclose(K, K.T, rtol=1e-12, atol=1e-14 * np.abs(K).max())
        assert np.linalg.eigvalsh((K + K.T) / 2).min() >= -1e-10 * np.abs(K).max()
    np.testing.assert_allclose(cross.nngp, joint.nngp[:n, n:], rtol=1e-10, atol=1e-13 * np.abs(joint.nngp).max())
    np.testing.assert_allclose(cross.ntk, joint.ntk[:n, n:], rtol=1e-10, atol=1e-13 * np.abs(joint.ntk).max())
    np.testing.assert_allclose(joint.diag1, np.diag(joint.nngp), rtol=1e-12, atol=1e-14 * np.abs(joint.nngp).max())


def test_neural_tangents_reference_values():
    """Values computed by neural-tangents 0.6.5 (stax kernel_fn, float64) for the same calls
    (scripts/compare_neural_tangents_stax.py compares many more networks)."""
    X = np.sin(1.0 + np.arange(3 * 5 * 4 * 2)).reshape(3, 5, 4, 2)
    res = S.serial(S.Conv(8, (3, 3), padding="CIRCULAR", W_std=1.3), S.FanOut(2),
                   S.parallel(S.serial(S.Conv(8, (3, 2), padding="SAME", b_std=0.2), S.Erf(),
                                       S.Conv(8, (2, 3), padding="SAME")), S.Identity()),
                   S.FanInSum(), S.Relu(), S.AvgPool((2, 2), strides=(2, 1), padding="SAME"),
                   S.Conv(8, (2, 2), W_std=1.2, b_std=0.1), S.Relu(), S.Flatten(), S.Dense(1, W_std=1.1, b_std=0.3))
    nngp = [[0.2862897932281335, 0.22105763837810913, 0.23658193673251168],
            [0.22105763837810916, 0.2813164912218825, 0.22228150660848472],
            [0.23658193673251168, 0.22228150660848472, 0.27792800907861503]]
    ntk = [[0.6625383819814032, 0.31684030468471597, 0.3846020219645716],
           [0.31684030468471597, 0.6461446268936757, 0.3268688328068699],
           [0.3846020219645716, 0.3268688328068699, 0.6350853501087523]]
    k = output_kernels(res, X)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-12)
    X1 = np.cos(np.arange(2 * 7 * 3)).reshape(2, 7, 3)
    std = dict(parameterization="standard")
    net = S.serial(S.Conv(8, (3,), strides=(2,), padding="SAME", W_std=1.5, b_std=0.1, **std), S.Gelu(),
                   S.Conv(8, (2,), W_std=1.5, **std), S.Sin(), S.Dense(4, b_std=0.5, **std), S.GlobalAvgPool(),
                   S.Dense(1, W_std=0.9, **std))
    k = output_kernels(net, X1)
    np.testing.assert_allclose(k.nngp, [[0.49813285232136595, 0.19129504944413595],
                                        [0.19129504944413595, 0.49964173096906966]], rtol=1e-12)
    np.testing.assert_allclose(k.ntk, [[10.181676295727156, 1.4999521043513842],
                                       [1.4999521043513844, 10.246483174075982]], rtol=1e-12)


@pytest.mark.parametrize("net,X,match", [
    (S.serial(S.Relu(), S.Dense(1)), np.ones((2, 3)), r"Activation\('relu'\): its input must be Gaussian"),
    (S.serial(S.Dense(3), S.Relu(), S.Relu(), S.Dense(1)), np.ones((2, 3)), r"Activation\('relu'\)"),
    (S.serial(S.Conv(3, (2, 2)), S.GlobalAvgPool()), np.ones((2, 5, 3)), r"Conv\(out_chan=3.*2 spatial axes"),
    (S.serial(S.Conv(3, (6,)), S.GlobalAvgPool()), np.ones((2, 5, 3)), r"Conv\(.*larger than the input's 5"),
    (S.serial(S.Conv(3, (2,)), S.Flatten(), S.Relu()), np.ones((2, 5, 3)), r"Activation\('relu'\)"),
    (S.serial(S.Dense(3), S.FanOut(2), S.parallel(S.Relu(), S.Relu()), S.FanInSum()), np.ones((2, 3)),
     r"FanInSum\(\): .*(Gaussian|correlated)"),
    (S.serial(S.Dense(3), S.FanOut(2), S.parallel(S.Identity(), S.Identity()), S.FanInSum()), np.ones((2, 3)),
     r"FanInSum\(\): .*correlated"),
    (S.serial(S.Dense(3), S.FanOut(2), S.parallel(S.Dense(2), S.Identity()), S.FanInSum()), np.ones((2, 3)),
     r"FanInSum\(\): all branches must have the same shape"),
    (S.serial(S.Dense(3), S.FanOut(2), S.Dense(1)), np.ones((2, 3)), r"Dense\(out_dim=1.*2 branches"),
    (S.serial(S.Dense(3), S.FanOut(3), S.parallel(S.Identity(), S.Identity())), np.ones((2, 3)),
     r"Parallel\(.*has 2 layers but got 3 branches"),
    (S.serial(S.Conv(3, (2,))), np.ones((2, 5, 3)), r"still has positions \(4,\)"),
    (S.serial(S.AvgPool((2, 2)), S.Flatten()), np.ones((2, 5)), r"AvgPool\(.*2 spatial axes"),
])
def test_errors_name_the_layer(net, X, match):
    with pytest.raises(ValueError, match=match):
        output_kernels(net, X)


def test_bad_arguments_and_inputs():
    for make, match in ((lambda: S.Conv(3, (2, 2), strides=(1,)), "Conv: strides"),
                        (lambda: S.Conv(3, (2,), padding="FULL"), "Conv: padding"),
                        (lambda: S.Dense(0), "Dense: out_dim"), (lambda: S.Dense(2, W_std=-1), "Dense: W_std"),
                        (lambda: S.Dense(2, parameterization="muP"), "Dense: parameterization"),
                            (lambda: S.Conv(2, (2,), parameterization="mean_field"), "Conv: parameterization"),
                        (lambda: S.Activation("swish"), "Activation: unknown activation"),
                        (lambda: S.Gelu(approximate=True), "Gelu"), (lambda: S.serial(S.Dense(1), 3), "serial")):
        with pytest.raises(ValueError, match=match):
            make()
    net = S.serial(S.Conv(2, (2,)), S.GlobalAvgPool())
    with pytest.raises(ValueError, match="same shape per input"):
        output_kernels(net, np.ones((2, 5, 3)), np.ones((2, 6, 3)))
    with pytest.raises(ValueError, match="X1 contains NaN"):
        output_kernels(net, np.full((2, 5, 3), np.nan))
    with pytest.raises(ValueError, match="spec must be an MLP or a stax network"):
        output_kernels("mlp", np.ones((2, 3)))


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_spatial_kernels_in_tiles(monkeypatch, act):
    """Large spatial recursions run in tiles of input pairs (only on and above the diagonal when
    X2 is X1, then mirrored), on one or two threads: bitwise the same whatever the thread count,
    equal to the recursion on the whole kernels up to rounding, and exactly symmetric."""
    net = S.serial(S.Conv(8, (3,), padding="CIRCULAR", strides=(2,), W_std=1.5, b_std=0.1), S.FanOut(2),
                   S.parallel(S.Identity(), S.serial(S.Activation(act), S.Conv(8, (2,), padding="SAME"))),
                   S.FanInSum(), S.LayerNorm(), S.GlobalSelfAttention(8, 4, 4, 2, b_std=0.2), S.Activation(act),
                   S.GlobalAvgPool(), S.Dense(1))
    rng = np.random.default_rng(0)
    X1, X2 = rng.standard_normal((9, 12, 2)), rng.standard_normal((4, 12, 2))
    for x2 in (None, X2):
        monkeypatch.setattr(network, "SPLIT_ENTRIES", 10**12)
        whole = S.spatial_kernels(net, X1, x2)
        monkeypatch.setattr(network, "SPLIT_ENTRIES", 1)
        monkeypatch.setattr(network, "TILE_ENTRIES", 4 * 36)      # tiles of 2 x 2 inputs (6 x 6 positions)
        tiled = [S.spatial_kernels(net, X1, x2, threads) for threads in (1, 2)]
        for name in ("nngp", "ntk", "diag1", "diag2"):
            assert np.array_equal(getattr(tiled[0], name), getattr(tiled[1], name)), name
            np.testing.assert_allclose(getattr(tiled[0], name), getattr(whole, name), rtol=1e-13, atol=0)
        if x2 is None:
            assert np.array_equal(tiled[0].nngp, tiled[0].nngp.T) and np.array_equal(tiled[0].ntk, tiled[0].ntk.T)


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_listed_pairs_equal_the_full_kernels(act):
    """A state listing input pairs (SpatialState.pairs, what the tiles on the diagonal of a square
    kernel run) gives the full recursion's kernels at those pairs, through every layer that
    relates a kernel entry to its two inputs (activations, LayerNorm over channels and over
    positions, attention with either scaling) and those acting on positions."""
    tail = [S.GlobalSelfAttention(6, 4, 4, 2, b_std=0.2), S.LayerNorm(axis=(1, 2)), S.Activation(act),
            S.GlobalSelfAttention(6, 3, 3, 2, linear_scaling=False, attention_mechanism="IDENTITY"),
            S.AvgPool((2,), padding="SAME"), S.Activation(act), S.GlobalAvgPool(), S.Dense(1)]
    net = S.serial(S.Conv(6, (3,), padding="CIRCULAR", W_std=1.5, b_std=0.1), S.FanOut(2),
                   S.parallel(S.Identity(), S.serial(S.Activation(act), S.Conv(6, (2,), padding="SAME"))),
                   S.FanInSum(), S.LayerNorm(), *tail)
    X = np.random.default_rng(1).standard_normal((5, 4, 2))
    full = network._spatial_output(net, X, None, 0)
    rows, cols = np.triu_indices(len(X))
    rows, cols = rows[[0, 3, 4, 8, 9, 14]], cols[[0, 3, 4, 8, 9, 14]]        # on and off the diagonal
    listed = network._spatial_output(net, X, None, 0, (rows, cols))
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(getattr(listed, name)[:, 0], getattr(full, name)[rows, cols], rtol=1e-13, atol=0)
    np.testing.assert_array_equal(listed.diag1, full.diag1)



def test_listed_pairs_equal_the_full_kernels_on_two_spatial_axes():
    """The same on images (two spatial axes): each member's variances gathered per listed pair with
    size-1 axes for the other member's positions, and attention's products per pair on the
    flattened positions."""
    net = S.serial(S.Conv(6, (2, 2), padding="SAME", W_std=1.5, b_std=0.1), S.LayerNorm(),
                   S.GlobalSelfAttention(6, 4, 4, 2, b_std=0.2), S.Relu(), S.Conv(6, (1, 1)), S.LayerNorm(axis=(1, 2, 3)),
                   S.GlobalSelfAttention(6, 3, 3, 1), S.Relu(), S.GlobalAvgPool(), S.Dense(1))
    X = np.random.default_rng(2).standard_normal((4, 3, 2, 2))
    full = network._spatial_output(net, X, None, 0)
    rows, cols = np.triu_indices(len(X))
    listed = network._spatial_output(net, X, None, 0, (rows, cols))
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(getattr(listed, name)[:, 0], getattr(full, name)[rows, cols], rtol=1e-13, atol=0)

# --- extreme scales ----------------------------------------------------------

#: Where a kernel's true value is below this it must come out finite (a margin for the layers
#: before the output, whose kernels may exceed the output's by the weights' scales).
FINITE = 1e290
OVERFLOW = r"the (NNGP|NTK) kernel exceeds float64 range at ((dense|conv) layer|.* affine layer) \d+ of \d+"
HOMOGENEOUS = ("relu", "leaky_relu(0.2)", "abs", "identity")


def _without_bias(layer):
    if isinstance(layer, (S.Serial, S.Parallel)):
        return replace(layer, layers=tuple(map(_without_bias, layer.layers)))
    return replace(layer, b_std=None) if layer.affine else layer


@settings(max_examples=30, deadline=None, derandomize=True)
@given(stax_networks(activations=HOMOGENEOUS), st.integers(1, 3), st.integers(-100, 170), st.integers(0, 2**32 - 1))
def test_extreme_input_scales_are_exact_or_refused_by_name(net_shape, n, log_c, seed):
    """Without biases and with positively homogeneous nonlinearities every layer is homogeneous
    of degree one in the input, so K(c X) = c^2 K(X) for both kernels: at input scales up to 1e170
    the kernels are that, or (only where it is beyond float64) an OverflowError naming the layer
    and the kernel -- never NaN or inf."""
    net, shape = net_shape
    net = _without_bias(net)
    X = np.random.default_rng(seed).standard_normal((n,) + shape)
    ref, c = output_kernels(net, X), 10.0**log_c
    top = max(np.abs(ref.nngp).max(), np.abs(ref.ntk).max())
    try:
        out = output_kernels(net, c * X)
    except OverflowError as err:
        assert re.search(OVERFLOW, str(err)), err
        assert 2 * log_c + np.log10(top) > np.log10(FINITE) - 20    # refused only near or beyond the range
        return
    for K, K1 in ((out.nngp, ref.nngp), (out.ntk, ref.ntk)):
        assert np.all(np.isfinite(K))
        np.testing.assert_allclose(K / c / c, K1, rtol=1e-9, atol=1e-12 * top)
    assert 2 * log_c + np.log10(top) < np.log10(np.finfo(float).max) + 1


@pytest.mark.parametrize("flatten", [False, True])
def test_extreme_weight_scale_is_refused_naming_the_layer(flatten):
    """100 x (Dense(8, W_std=1e3), Relu) was all NaN after Flatten (the spatial recursion);
    both recursions now name the same layer."""
    X = np.random.default_rng(0).standard_normal((3, 5))
    layers = [S.Dense(8, W_std=1e3), S.Relu()] * 100
    net = S.serial(*([S.Flatten()] if flatten else []), *layers, S.Dense(1))
    with pytest.raises(OverflowError, match=r"the NTK kernel exceeds float64 range at dense layer 54 of 101"):
        ntk_kernel(net, X)


def test_extreme_conv_weight_scale_is_refused_naming_the_layer():
    """10 x (Conv(8, (3, 3), W_std=1e40, "SAME"), Relu): 1e80 per layer, beyond float64 at the fourth."""
    X = np.random.default_rng(0).standard_normal((2, 4, 4, 3))
    net = S.serial(*[S.Conv(8, (3, 3), W_std=1e40, padding="SAME"), S.Relu()] * 10, S.GlobalAvgPool(), S.Dense(1))
    with pytest.raises(OverflowError, match=r"the NNGP kernel exceeds float64 range at conv layer 4 of 11"):
        output_kernels(net, X)
    res = S.serial(S.Conv(4, (2,), padding="SAME", W_std=1e100), S.FanOut(2),
                   S.parallel(S.serial(S.Relu(), S.Conv(4, (2,), padding="SAME", W_std=1e100)), S.Identity()),
                   S.FanInSum(), S.Relu(), S.GlobalAvgPool(), S.Dense(1))
    with pytest.raises(OverflowError, match=r"at conv layer 2 of 3"):     # counted depth first, branches too
        output_kernels(res, X[:, 0])


def test_overflow_a_layer_hides_is_refused_at_the_output():
    """Kernels are searched for entries beyond float64 only after a step that raised a
    floating-point flag; a nonlinearity that silences its own overflow is caught at the output."""
    def dual(k11, k12, k22):
        with np.errstate(over="ignore"):
            return k12 * 1e308 * 10, np.ones_like(k12)
    from ntkcheck.activations import Activation
    hiding = S.Activation(Activation("hiding", np.tanh, np.tanh, dual))
    X = np.random.default_rng(0).standard_normal((3, 4, 2))
    net = S.serial(S.Conv(4, (2,)), S.GlobalAvgPool(), hiding, S.Dense(1))    # no later step raises a flag
    with pytest.raises(OverflowError, match=r"the NNGP kernel exceeds float64 range at .* after affine layer 2 of 2"):
        output_kernels(net, X)
    assert np.all(np.isfinite(output_kernels(S.serial(S.Conv(4, (2,)), S.Relu(), S.GlobalAvgPool(), S.Dense(1)), X).ntk))
