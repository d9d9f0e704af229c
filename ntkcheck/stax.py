"""Networks built like neural-tangents' ``stax``: conv, pooling, flatten and residual layers.

The same calls build the same network as in neural-tangents (names, arguments, defaults,
NWC/NHWC layouts): ``serial(Conv(8, (3, 3), padding="SAME"), Relu(), GlobalAvgPool(), Dense(1))``.
Each layer is a frozen dataclass owning its step of the infinite-width recursion on a
:class:`SpatialState`, the NNGP and NTK over (input, position) pairs with the full spatial
covariance (neural-tangents' ``diagonal_spatial=False``), so the kernels hold no
per-architecture branches.  A layer's ``kernel`` method is its analytic step; its ``init``,
``forward`` and ``backward`` methods are the same layer in finite networks, M at once
(:func:`init_params`, :func:`outputs_and_ntk`; sampled by ``sample_init(net, X, M, seed,
method="dense")``), with the empirical NTK summed layer by layer, never from a Jacobian;
Dense and Conv also give the exact conditional sampler their patch rows (``patch_rows``,
``patch_adjoint``: a conv is a dense layer on its patches; ``method="exact"``).
An :class:`ntkcheck.MLP` is the network ``serial(Dense, Activation, ..., Dense)``
(:meth:`ntkcheck.MLP.network`); Dense layers with nonlinearities between them on inputs
(N, d) also have a ``flat_kernel`` step on (N1, N2) arrays, which
:func:`ntkcheck.kernels.output_kernels` tiles.
:func:`with_width` sets every hidden channel count at once (the widths ``check_kernel`` chooses)
and :func:`depth` counts the hidden affine layers.

Sources: the convolutional NNGP recursion, Novak et al. 2019 (ICLR, "Bayesian deep
convolutional networks with many channels are Gaussian processes") and Garriga-Alonso et al. 2019
(ICLR, "Deep convolutional networks as shallow Gaussian processes"); the convolutional NTK
recursion, Arora et al. 2019 (NeurIPS, "On exact computation with an infinitely wide neural net");
Gaussianity of any such architecture and sums of independent branches, Yang 2019 ("Wide feedforward
or recurrent neural networks of any architecture are Gaussian processes", the master theorem).
"""
from __future__ import annotations

import math
import numbers
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .activations import Activation as _Act
from .activations import get_activation
from .kernels import KernelState, check_inputs, refuse_overflow
from .seeding import network_rngs

PADDINGS = ("VALID", "SAME", "CIRCULAR")
_LETTERS = "abcdefghijklm"


@dataclass(frozen=True)
class SpatialState:
    """Kernels between inputs X1 and X2 at one point of a network.

    ``nngp``, ``ntk``: (N1, N2, L1, L1', L2, L2', ...) -- for every spatial dimension a pair of
    axes (position in x1, position in x2), neural-tangents' layout.  ``cov1``: (N1, L1, L1', ...),
    the covariance of each input of X1 with itself over all position pairs; ``cov2`` likewise for
    X2, or None when X2 is X1 (then ``nngp`` is square and ``cov1`` serves both).
    ``shape``: one input's shape after the layer, (L1, L2, ..., channels).
    ``is_gaussian``: the entries are jointly Gaussian (after an affine layer, not after a
    nonlinearity or Flatten); a nonlinearity needs it to apply its dual kernel.
    ``fresh``: the value is an affine layer's output, zero-mean and uncorrelated with any
    other branch (what a sum of branches needs for its kernel to be the sum of kernels).
    ``affine_seen`` of the network's ``n_affine`` Dense and Conv layers (depth first) are behind
    the value: where an overflow error says it arose.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    cov1: np.ndarray
    cov2: np.ndarray | None
    shape: tuple[int, ...]
    is_gaussian: bool
    fresh: bool
    affine_seen: int = 0
    n_affine: int = 0

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.shape[:-1]

    def map(self, fn: Callable[[np.ndarray, int], np.ndarray], **changes) -> "SpatialState":
        """Apply a linear map of the spatial axes, ``fn(array, n_batch_axes)``, to every kernel."""
        return replace(self, nngp=fn(self.nngp, 2), ntk=fn(self.ntk, 2), cov1=fn(self.cov1, 1),
                       cov2=None if self.cov2 is None else fn(self.cov2, 1), **changes)


def input_state(X1: np.ndarray, X2: np.ndarray | None) -> SpatialState:
    """The input kernel x . x' / C over channels, for every pair of positions (Theta = 0)."""
    k = X1.ndim - 2
    sp1, sp2 = _LETTERS[:k], _LETTERS[k:2 * k]
    pairs = "".join(a + b for a, b in zip(sp1, sp2))
    C = X1.shape[-1]
    gram = np.einsum(f"n{sp1}z,N{sp2}z->nN{pairs}", X1, X1 if X2 is None else X2, optimize=True) / C
    cov = lambda X: np.einsum(f"n{sp1}z,n{sp2}z->n{pairs}", X, X, optimize=True) / C  # noqa: E731
    return SpatialState(gram, np.zeros_like(gram), cov(X1), None if X2 is None else cov(X2),
                        X1.shape[1:], is_gaussian=False, fresh=False)


class Layer:
    """A layer of a network.  ``kernel(state)`` is its step of the infinite-width recursion;
    branching layers take and return tuples of states.

    Finite networks, M at once (see :func:`init_params`, :func:`apply`):
    ``init(rngs, shape, dtype) -> (params, out_shape)`` draws the parameters of network i from
    ``rngs[i]`` for one input of ``shape`` (positions..., channels); ``forward(params, x) ->
    (y, cache)`` maps x (M or 1, N, *shape) to y (M, N, *out_shape); ``backward(params, cache, g)
    -> (g_in, ntk)`` maps cotangents g (M, K, N, *out_shape) of K outputs to those of the input
    and returns the layer's parameters' share of sum_k Theta_hat_k, (M, N, N), or 0.0.
    Branching layers take and return tuples of shapes, arrays and cotangents."""

    def kernel(self, state):
        raise NotImplementedError

    def out_shape(self, shape):
        """The shape of one input after the layer, for a parameter-free layer."""
        raise NotImplementedError

    def init(self, rngs, shape, dtype=np.float64):
        return (), self.out_shape(shape)

    #: Dense and Conv: the layers :func:`with_width` scales and kernel overflow checks count.
    affine = False
    #: Why the exact conditional sampler cannot run this layer (None: it can).
    exact_refusal: str | None = None

    def network(self) -> "Layer":
        """The network of layers (itself; an :class:`ntkcheck.MLP` builds one)."""
        return self

    def check_inputs(self, X1, X2=None, names=("X1", "X2")):
        """Inputs (N, d), (N, W, C) or (N, H, W, C), validated (see :func:`_check_inputs`)."""
        return _check_inputs(X1, X2, names)

    def chain(self) -> tuple["Layer", ...] | None:
        """The layers in order when every one acts on inputs (N, d) entry by entry of the kernel
        (Dense and nonlinearities: the flat recursion of :mod:`ntkcheck.kernels`, tiled), else None."""
        return None

    def _fail(self, msg: str):
        raise ValueError(f"{self!r}: {msg}")

    def _single(self, state) -> SpatialState:
        if isinstance(state, tuple):
            self._fail(f"got {len(state)} branches (FanOut without FanInSum); expected one input")
        return state


# --- affine layers --------------------------------------------------------

def _check_affine(layer, W_std, b_std, parameterization):
    if not isinstance(W_std, numbers.Real) or not math.isfinite(W_std) or W_std < 0:
        raise ValueError(f"{type(layer).__name__}: W_std must be a finite number >= 0, got {W_std!r}")
    if b_std is not None and (not isinstance(b_std, numbers.Real) or not math.isfinite(b_std) or b_std < 0):
        raise ValueError(f"{type(layer).__name__}: b_std must be None or a finite number >= 0, got {b_std!r}")
    allowed = ("ntk", "standard", "mean_field") if isinstance(layer, Dense) else ("ntk", "standard")
    if parameterization not in allowed:
        raise ValueError(f"{type(layer).__name__}: parameterization must be one of {allowed}, "
                         f"got {parameterization!r}")


def affine_kernel(nngp, ntk, a: float, c: float, s_w: float, s_b: float, fan_in: int):
    """The step of ``h = a W x + c b`` (W ~ N(0, s_w^2), b ~ N(0, s_b^2), fan-in n) on the
    (patch-averaged) post-activation kernel P = ``nngp`` and NTK Theta = ``ntk``:
    ``K' = a^2 s_w^2 n P + c^2 s_b^2``, ``Theta' = (a^2 n P + c^2) + a^2 s_w^2 n Theta``
    (Jacot et al. 2018, proof of Prop. 1 / Thm 1; Lee et al. 2019, sec. 2).  In the NTK
    parameterization (a = W_std/sqrt(n), s_w = 1) this is ``K' = W_std^2 P + b_std^2``,
    ``Theta' = K' + W_std^2 Theta``.  Returns (K', Theta', fwd, bias_fwd) with
    ``fwd = a^2 s_w^2 n`` and ``bias_fwd = c^2 s_b^2``, the map of the variances."""
    fwd, grad = a * a * s_w * s_w * fan_in, a * a * fan_in
    bias_fwd, bias_grad = c * c * s_b * s_b, c * c
    out = nngp * fwd
    if bias_fwd:
        out += bias_fwd
    if grad == fwd:                     # the NTK parameterization: one pass fewer
        theta = ntk + nngp
        theta *= fwd
    else:
        theta = ntk * fwd
        theta += grad * nngp
    if bias_grad:
        theta += bias_grad
    return out, theta, fwd, bias_fwd


def _affine(layer, patch: SpatialState, fan_in, shape):
    """:func:`affine_kernel` on the patch covariances (the input kernel averaged over the
    filter; fan-in = channels x filter size) and on the variances."""
    a, c, s_w, s_b = _kernel_scales(layer, fan_in)
    nngp, ntk, fwd, bias = affine_kernel(patch.nngp, patch.ntk, a, c, s_w, s_b, fan_in)
    cov2 = None if patch.cov2 is None else fwd * patch.cov2 + bias
    return SpatialState(nngp, ntk, fwd * patch.cov1 + bias, cov2, shape, is_gaussian=True, fresh=True,
                        affine_seen=patch.affine_seen + 1, n_affine=patch.n_affine)


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected over the channel axis (at every position), as ``stax.Dense``.

    Two extensions for :class:`ntkcheck.MLP`'s parameterizations: ``parameterization=
    "mean_field"`` multiplies by ``W_std/fan_in`` instead of ``W_std/sqrt(fan_in)`` (standard
    normal parameters; Mei, Montanari & Nguyen 2018), and ``scale`` multiplies the layer's
    output (alpha of Chizat, Oyallon & Bach 2019; 1 in neural-tangents)."""

    out_dim: int
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: str = "ntk"
    scale: float = 1.0

    affine = True

    def __post_init__(self):
        _check_positive_int(self, "out_dim", self.out_dim)
        _check_affine(self, self.W_std, self.b_std, self.parameterization)
        if not isinstance(self.scale, numbers.Real) or not math.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"Dense: scale must be a finite number >= 0, got {self.scale!r}")

    def __repr__(self):
        extra = "" if self.scale == 1.0 else f", scale={self.scale!r}"
        return (f"Dense(out_dim={self.out_dim!r}, W_std={self.W_std!r}, b_std={self.b_std!r}, "
                f"parameterization={self.parameterization!r}{extra})")

    def chain(self):
        return (self,)

    def kernel(self, state):
        state = self._single(state)
        return _affine(self, state, state.shape[-1], state.spatial + (self.out_dim,))

    def flat_kernel(self, state: KernelState, fan_in: int, same: bool, post_diag=None) -> KernelState:
        """:func:`affine_kernel` on a flat state (``post_diag`` unused: the variances map linearly)."""
        a, c, s_w, s_b = _kernel_scales(self, fan_in)
        nngp, ntk, fwd, bias = affine_kernel(state.nngp, state.ntk, a, c, s_w, s_b, fan_in)
        return KernelState(nngp, ntk, fwd * state.diag1 + bias, fwd * state.diag2 + bias)

    def init(self, rngs, shape, dtype=np.float64):
        shape = _single_shape(self, shape)
        return _affine_init(self, rngs, shape[-1], self.out_dim, dtype), shape[:-1] + (self.out_dim,)

    @property
    def features(self) -> int:
        return self.out_dim

    def patch_rows(self, x):
        """The vectors the weights act on, (..., fan_in), and what :meth:`patch_adjoint` needs."""
        return x, None

    def patch_adjoint(self, g, cache):
        return g

    def forward(self, params, x):
        return _affine_forward(self, params, x), x

    def backward(self, params, cache, g):
        return _affine_backward(self, params, cache, g)


@dataclass(frozen=True)
class Conv(Layer):
    """Convolution with shared weights over 1 or 2 (or more) spatial axes, NWC/NHWC layout, as
    ``stax.Conv``.  Kernel step: K'(x,i; x',j) = W_std^2 mean_o K(x, s i + o; x', s j + o) + b_std^2
    over the filter offsets o (Novak et al. 2019; Arora et al. 2019, the CNTK recursion)."""

    out_chan: int
    filter_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: str = "ntk"

    affine = True
    scale = 1.0

    def __post_init__(self):
        _check_positive_int(self, "out_chan", self.out_chan)
        _check_window(self, "filter_shape")
        _check_affine(self, self.W_std, self.b_std, self.parameterization)

    def kernel(self, state):
        state = self._single(state)
        windows, out = _windows(self, state.shape, self.filter_shape)

        def conv(x, nb):   # one filter tap o is shared by both positions: distinct taps have independent weights
            for d, window in enumerate(windows):
                x = _window_mean(x, (nb + 2 * d, nb + 2 * d + 1), *window, self.padding)
            return x
        fan_in = state.shape[-1] * math.prod(self.filter_shape)
        return _affine(self, state.map(conv), fan_in, out + (self.out_chan,))

    def init(self, rngs, shape, dtype=np.float64):
        shape = _single_shape(self, shape)
        _, out = _windows(self, shape, self.filter_shape)
        fan_in = shape[-1] * math.prod(self.filter_shape)
        return _affine_init(self, rngs, fan_in, self.out_chan, dtype), out + (self.out_chan,)

    @property
    def features(self) -> int:
        return self.out_chan

    def patch_rows(self, x):
        """Patches (B, N, positions..., filter taps x channels) of x (B, N, positions..., channels):
        the conv is a dense layer on them.  Also the input shape, for :meth:`patch_adjoint`."""
        maps = self._maps(x.shape[2:])
        patches = _patches(x, maps)
        return patches.reshape(patches.shape[:2 + len(maps)] + (-1,)), x.shape[2:]

    def patch_adjoint(self, g, shape):
        """Cotangents of the patches (..., positions..., taps x channels) -> of the input."""
        g = g.reshape(g.shape[:-1] + self.filter_shape + shape[-1:])
        return _patches_adjoint(g, self._maps(shape))

    def forward(self, params, x):
        """The conv as a dense layer on patches (positions..., filter taps x channels)."""
        patches, shape = self.patch_rows(x)
        return _affine_forward(self, params, patches), (patches, shape)

    def backward(self, params, cache, g):
        patches, shape = cache
        g_patches, ntk = _affine_backward(self, params, patches, g)
        return self.patch_adjoint(g_patches, shape), ntk

    def _maps(self, shape):
        return _patch_maps(_windows(self, shape, self.filter_shape)[0], self.padding, shape[:-1])


# --- pooling and reshaping ------------------------------------------------

@dataclass(frozen=True)
class AvgPool(Layer):
    """Average over windows, as ``stax.AvgPool`` (strides default to 1; SAME divides by the
    full window, neural-tangents' ``normalize_edges=False``).  K' = A K A^T per spatial axis."""

    window_shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"

    def __post_init__(self):
        _check_window(self, "window_shape")

    def kernel(self, state):
        state = self._single(state)
        windows, out = _windows(self, state.shape, self.window_shape)

        def pool(x, nb):
            for d, window in enumerate(windows):
                for axis in (nb + 2 * d, nb + 2 * d + 1):
                    x = _window_mean(x, (axis,), *window, self.padding)
            return x
        return state.map(pool, shape=out + state.shape[-1:])

    def out_shape(self, shape):
        shape = _single_shape(self, shape)
        return _windows(self, shape, self.window_shape)[1] + shape[-1:]

    def forward(self, params, x):
        maps = self._maps(x.shape[2:])
        k = len(maps)
        return _patches(x, maps).mean(axis=tuple(range(2 + k, 2 + 2 * k))), x.shape[2:]

    def backward(self, params, shape, g):
        maps = self._maps(shape)
        k = len(maps)
        g = np.broadcast_to(np.expand_dims(g, tuple(range(3 + k, 3 + 2 * k))),
                            g.shape[:3 + k] + self.window_shape + g.shape[-1:])
        return _patches_adjoint(g / math.prod(self.window_shape), maps), 0.0

    def _maps(self, shape):
        return _patch_maps(_windows(self, shape, self.window_shape)[0], self.padding, shape[:-1])


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """Mean over all positions, as ``stax.GlobalAvgPool``: K' = mean_{i,j} K(x,i; x',j)."""

    def kernel(self, state):
        state = self._single(state)
        return state.map(lambda x, nb: x.mean(axis=tuple(range(nb, x.ndim))), shape=state.shape[-1:])

    def out_shape(self, shape):
        return _single_shape(self, shape)[-1:]

    def forward(self, params, x):
        return x.mean(axis=tuple(range(2, x.ndim - 1))), x.shape[2:]

    def backward(self, params, shape, g):
        k = len(shape) - 1
        g = np.expand_dims(g / math.prod(shape[:-1]), tuple(range(3, 3 + k)))
        return np.broadcast_to(g, g.shape[:3] + shape), 0.0


@dataclass(frozen=True)
class Flatten(Layer):
    """Flatten positions and channels, as ``stax.Flatten``: the kernel of the flattened vector
    (per coordinate, on average) is the mean over positions of K(x,i; x',i).  Like
    neural-tangents, the result no longer counts as Gaussian with i.i.d. coordinates, so a
    nonlinearity after it is refused (kept Gaussian when there are no positions)."""

    def kernel(self, state):
        state = self._single(state)

        def trace(x, nb):
            while x.ndim > nb:
                x = np.trace(x, axis1=-2, axis2=-1) / x.shape[-1]
            return x
        gaussian = state.is_gaussian and not state.spatial
        return state.map(trace, shape=(math.prod(state.shape),), is_gaussian=gaussian)

    def out_shape(self, shape):
        return (math.prod(_single_shape(self, shape)),)

    def forward(self, params, x):
        return x.reshape(x.shape[:2] + (-1,)), x.shape[2:]

    def backward(self, params, shape, g):
        return g.reshape(g.shape[:3] + shape), 0.0


# --- nonlinearities -------------------------------------------------------

@dataclass(frozen=True, repr=False)
class Activation(Layer):
    """An elementwise nonlinearity by name (any of :data:`ntkcheck.activations.NAMES`, e.g.
    ``"leaky_relu(0.2)"``) or an :class:`ntkcheck.activations.Activation`.  Kernel step: its dual,
    P = E[phi(u) phi(v)], Theta' = E[phi'(u) phi'(v)] Theta, at every position pair (Jacot et al.
    2018, Thm 1; Novak et al. 2019)."""

    name: str | _Act
    act: _Act = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        try:
            object.__setattr__(self, "act", get_activation(self.name))
        except ValueError as err:
            raise ValueError(f"Activation: {err}") from None

    def __repr__(self):
        return f"Activation({self.name if isinstance(self.name, str) else self.act.name!r})"

    def __reduce__(self):
        # by name, so networks of named activations pickle (to worker processes) although the
        # functions are lambdas; an Activation object pickles as itself (or not at all)
        return Activation, (self.name,)

    def kernel(self, state):
        state = self._single(state)
        if not state.is_gaussian:
            self._fail("its input must be Gaussian: put Dense, Conv or a pooling layer after the "
                       "network input, a nonlinearity or Flatten")
        k = len(state.spatial)
        var1 = _variances(state.cov1, k)
        var2 = var1 if state.cov2 is None else _variances(state.cov2, k)
        nngp, dot = self.act.dual(_spread(var1, k, 0, 2), state.nngp, _spread(var2, k, 1, 2))
        cov1 = self.act.dual(_spread(var1, k, 0, 1), state.cov1, _spread(var1, k, 1, 1))[0]
        cov2 = None if state.cov2 is None else \
            self.act.dual(_spread(var2, k, 0, 1), state.cov2, _spread(var2, k, 1, 1))[0]
        return replace(state, nngp=nngp, ntk=dot * state.ntk, cov1=cov1, cov2=cov2,
                       is_gaussian=False, fresh=False)

    def chain(self):
        return (self,)

    def flat_kernel(self, state: KernelState, fan_in: int, same: bool, post_diag=None) -> KernelState:
        """The dual on a flat state.  ``post_diag`` = (P(x1, x1), P(x2, x2)) when already known
        (the tiled recursion computes the diagonal once for all tiles)."""
        k11, k22 = state.variances()
        nngp, dot = self.act.dual(k11, state.nngp, k22)
        dot *= state.ntk
        if post_diag is None:
            diag1 = self.act.dual(state.diag1, state.diag1, state.diag1)[0]
            diag2 = diag1 if same else self.act.dual(state.diag2, state.diag2, state.diag2)[0]
        else:
            diag1, diag2 = post_diag
        return KernelState(nngp, dot, diag1, diag2)

    def out_shape(self, shape):
        return _single_shape(self, shape)

    def forward(self, params, x):
        return np.asarray(self.act.fn(x), dtype=x.dtype), x

    def backward(self, params, x, g):
        return g * np.asarray(self.act.deriv(x), dtype=x.dtype)[:, None], 0.0


def Relu():  # noqa: N802 -- neural-tangents' names
    return Activation("relu")


def LeakyRelu(alpha: float = 0.01):  # noqa: N802
    return Activation(f"leaky_relu({float(alpha)!r})")   # by name: it pickles


def Abs():  # noqa: N802
    return Activation("abs")


def Erf():  # noqa: N802
    return Activation("erf")


def Sin():  # noqa: N802
    return Activation("sin")


def Cos():  # noqa: N802
    return Activation("cos")


def Gelu(approximate: bool = False):  # noqa: N802
    if approximate:
        raise ValueError("Gelu: only the exact gelu x Phi(x) is supported (approximate=False)")
    return Activation("gelu")


def Tanh():  # noqa: N802
    return Activation("tanh")


def Sigmoid():  # noqa: N802 -- the logistic function (not neural-tangents' erf-based Sigmoid_like)
    return Activation("sigmoid")


def Softplus():  # noqa: N802
    return Activation("softplus")


# --- combinators ----------------------------------------------------------

@dataclass(frozen=True)
class Identity(Layer):
    """The identity map, as ``stax.Identity`` (the skip branch of a residual block)."""

    def kernel(self, state):
        return state

    def out_shape(self, shape):
        return shape

    def forward(self, params, x):
        return x, None

    def backward(self, params, cache, g):
        return g, 0.0


@dataclass(frozen=True)
class FanOut(Layer):
    """``n`` copies of the input, as ``stax.FanOut``."""

    exact_refusal = ("the conditional sampler conditions each affine layer on the span of its inputs, and a "
                     "sum of branches reads a layer's input again after it (the skip connection) -- that "
                     "conditioning is not built")

    num: int

    def __post_init__(self):
        _check_positive_int(self, "num", self.num)

    def kernel(self, state):
        state = self._single(state)
        return (replace(state, fresh=False),) * self.num   # the copies are one value, not independent

    def out_shape(self, shape):
        return (_single_shape(self, shape),) * self.num

    def forward(self, params, x):
        return (x,) * self.num, None

    def backward(self, params, cache, g):
        return sum(g[1:], g[0]), 0.0


@dataclass(frozen=True)
class FanInSum(Layer):
    """Sum of branches, as ``stax.FanInSum``.  The kernel of a sum is the sum of the kernels
    only when the cross-covariances vanish: every branch but at most one must end in an affine
    layer (its zero-mean weights are independent of the other branches; Yang 2019),
    which is checked here (neural-tangents warns that it does not verify it)."""

    exact_refusal = ("the conditional sampler conditions each affine layer on the span of its inputs, and a "
                     "sum of branches reads a layer's input again after it (the skip connection) -- that "
                     "conditioning is not built")

    def kernel(self, state):
        if not isinstance(state, tuple):
            self._fail("expected branches (after FanOut and parallel), got a single input")
        shapes = {s.shape for s in state}
        if len(shapes) > 1:
            self._fail(f"all branches must have the same shape, got {sorted(shapes)}")
        if len(state) > 1 and not all(s.is_gaussian for s in state):
            self._fail("all branches must be Gaussian (end in Dense, Conv, pooling or Identity of one)")
        if sum(not s.fresh for s in state) > 1:
            self._fail("more than one branch does not end in an affine layer: the branches are "
                       "correlated and the kernel of their sum is not the sum of their kernels")
        first = state[0]
        total = lambda name: sum(getattr(s, name) for s in state)  # noqa: E731
        return replace(first, nngp=total("nngp"), ntk=total("ntk"), cov1=total("cov1"),
                       cov2=None if first.cov2 is None else total("cov2"),
                       is_gaussian=all(s.is_gaussian for s in state), fresh=all(s.fresh for s in state),
                       affine_seen=max(s.affine_seen for s in state))

    def out_shape(self, shape):
        if not isinstance(shape, tuple) or not shape or not isinstance(shape[0], tuple):
            self._fail("expected branches (after FanOut and parallel), got a single input")
        if len(set(shape)) > 1:
            self._fail(f"all branches must have the same shape, got {sorted(set(shape))}")
        return shape[0]

    def forward(self, params, x):
        return sum(x[1:], x[0]), len(x)

    def backward(self, params, n, g):
        return (g,) * n, 0.0


@dataclass(frozen=True)
class Parallel(Layer):
    """Layer i on branch i, as ``stax.parallel``."""

    exact_refusal = ("the conditional sampler conditions each affine layer on the span of its inputs, and a "
                     "sum of branches reads a layer's input again after it (the skip connection) -- that "
                     "conditioning is not built")

    layers: tuple[Layer, ...]

    def kernel(self, state):
        if not isinstance(state, tuple) or len(state) != len(self.layers):
            got = len(state) if isinstance(state, tuple) else 1
            self._fail(f"has {len(self.layers)} layers but got {got} branches")
        out, seen = [], _seen(state[0])
        for layer, s in zip(self.layers, state):     # affine layers counted depth first, branch by branch
            s = _checked(layer, replace(s, affine_seen=seen) if isinstance(s, SpatialState) else s)
            out.append(s)
            seen = _seen(s)
        return tuple(out)

    def init(self, rngs, shape, dtype=np.float64):
        if not _is_branches(shape) or len(shape) != len(self.layers):
            got = len(shape) if _is_branches(shape) else 1
            self._fail(f"has {len(self.layers)} layers but got {got} branches")
        parts = [layer.init(rngs, s, dtype) for layer, s in zip(self.layers, shape)]
        return tuple(p for p, _ in parts), tuple(o for _, o in parts)

    def forward(self, params, x):
        parts = [layer.forward(p, xi) for layer, p, xi in zip(self.layers, params, x)]
        return tuple(y for y, _ in parts), tuple(c for _, c in parts)

    def backward(self, params, cache, g):
        parts = [layer.backward(p, c, gi) for layer, p, c, gi in zip(self.layers, params, cache, g)]
        return tuple(gi for gi, _ in parts), sum(t for _, t in parts)


@dataclass(frozen=True)
class Serial(Layer):
    """Layers applied in order, as ``stax.serial``; a network is a Serial (or any layer)."""

    layers: tuple[Layer, ...]

    def kernel(self, state):
        for layer in self.layers:
            state = _checked(layer, state)
        return state

    def chain(self):
        parts = [layer.chain() for layer in self.layers]
        return None if any(p is None for p in parts) else sum(parts, ())

    def init(self, rngs, shape, dtype=np.float64):
        params = []
        for layer in self.layers:
            p, shape = layer.init(rngs, shape, dtype)
            params.append(p)
        return tuple(params), shape

    def forward(self, params, x):
        caches = []
        for layer, p in zip(self.layers, params):
            x, c = layer.forward(p, x)
            caches.append(c)
        return x, caches

    def backward(self, params, cache, g):
        ntk = 0.0
        for layer, p, c in zip(self.layers[::-1], params[::-1], cache[::-1]):
            g, t = layer.backward(p, c, g)
            ntk = ntk + t
        return g, ntk


def serial(*layers: Layer) -> Serial:
    return Serial(_check_layers("serial", layers))


def parallel(*layers: Layer) -> Parallel:
    return Parallel(_check_layers("parallel", layers))


# --- widths of a network --------------------------------------------------

def layers(net: Layer):
    """Every layer of ``net``, depth first, with ``serial`` and ``parallel`` expanded."""
    if isinstance(net, (Serial, Parallel)):
        for layer in net.layers:
            yield from layers(layer)
    else:
        yield net


def with_width(net: Layer, n: int) -> Layer:
    """The same network with every hidden channel count (``Dense.out_dim``, ``Conv.out_chan``) set
    to ``n``; the readout -- the affine layers whose output reaches the network's output through
    parameter-free layers only -- keeps its size.  The infinite-width limit takes all hidden
    channel counts to infinity together (Novak et al. 2019; Yang 2019); this is one
    path of that limit, and the one ``check_kernel`` extrapolates along."""
    _check_positive_int(net, "n", n)
    hidden = _width_flow(net)[0]
    return _rebuild(net, (), hidden, int(n))


def depth(net: Layer) -> int:
    """L, the number of hidden affine layers (those :func:`with_width` scales), branches included."""
    return len(_width_flow(net)[0])


def fan_in_scaled(net: Layer) -> list[Layer]:
    """The affine layers whose fan-in grows with the width (they read a hidden layer's output)."""
    hidden, _, fed = _width_flow(net)
    return [_layer_at(net, path) for path, sources in fed.items() if sources & hidden]


def _width_flow(net: Layer) -> tuple[frozenset, frozenset, dict]:
    """(hidden, readout, fed): the affine layers by their path in the network tree, and for each
    the sources it reads.  A source is an affine layer (or the input, path None) whose channels a
    value carries unchanged; the readout are the sources of the output."""
    fed: dict = {}
    out = _flow(net, frozenset({None}), (), fed)
    if isinstance(out, tuple):
        raise ValueError(f"the network ends with {len(out)} branches: join them with FanInSum()")
    readout = out - {None}
    for path, sources in fed.items():
        if sources & readout:
            raise ValueError(f"{_layer_at(net, min(sources & readout))!r} is the readout and also feeds "
                             f"{_layer_at(net, path)!r}: its channel count can neither grow (it sets the "
                             "output's size) nor stay fixed (it is a hidden layer)")
    return frozenset(fed) - readout, readout, fed


def _flow(layer, sources, path, fed):
    if isinstance(layer, (Dense, Conv)):
        fed[path] = _single(layer, sources)
        return frozenset({path})
    if isinstance(layer, Serial):
        for i, sub in enumerate(layer.layers):
            sources = _flow(sub, sources, path + (i,), fed)
        return sources
    if isinstance(layer, Parallel):
        if not isinstance(sources, tuple) or len(sources) != len(layer.layers):
            got = len(sources) if isinstance(sources, tuple) else 1
            layer._fail(f"has {len(layer.layers)} layers but got {got} branches")
        return tuple(_flow(sub, s, path + (i,), fed) for i, (sub, s) in enumerate(zip(layer.layers, sources)))
    if isinstance(layer, FanOut):
        return (_single(layer, sources),) * layer.num
    if isinstance(layer, FanInSum):
        if not isinstance(sources, tuple):
            layer._fail("expected branches (after FanOut and parallel), got a single input")
        return frozenset().union(*sources)
    return _single(layer, sources)


def _single(layer, sources):
    if isinstance(sources, tuple):
        layer._fail(f"got {len(sources)} branches (FanOut without FanInSum); expected one input")
    return sources


def _layer_at(net, path):
    for i in path:
        net = net.layers[i]
    return net


def _rebuild(layer, path, hidden, n):
    if path in hidden:
        return replace(layer, **{"out_dim" if isinstance(layer, Dense) else "out_chan": n})
    if isinstance(layer, (Serial, Parallel)):
        return replace(layer, layers=tuple(_rebuild(sub, path + (i,), hidden, n) for i, sub in enumerate(layer.layers)))
    return layer


# --- kernels of a network -------------------------------------------------

def output_kernels(net: Layer, X1, X2=None) -> KernelState:
    """The output's NNGP and NTK, (N1, N2): :func:`ntkcheck.kernels.output_kernels`."""
    from .kernels import output_kernels as _output_kernels
    return _output_kernels(net, X1, X2)


#: A spatial recursion whose kernels have more entries than this (input pairs x position pairs)
#: runs as two row blocks of X1 on up to two threads (numpy releases the GIL in its loops).  Every
#: step is entrywise in the input pair, so each entry is computed by the same operations; the
#: split depends on the sizes only, so the result does not depend on the thread count.
SPLIT_ENTRIES = 2**21


def spatial_kernels(net: Layer, X1: np.ndarray, X2: np.ndarray | None, threads: int = 1) -> KernelState:
    """The output's NNGP and NTK by every layer's :meth:`Layer.kernel` step on the full spatial
    covariance, for validated inputs (N, d), (N, W, C) or (N, H, W, C).  The network must end
    without positions (GlobalAvgPool, Flatten or dense inputs)."""
    with np.errstate(over="ignore"):        # an input Gram beyond float64 is refused at the first layer
        state = replace(input_state(X1, X2), n_affine=sum(layer.affine for layer in layers(net)))
    if state.nngp.size <= SPLIT_ENTRIES or len(X1) < 2:
        return _spatial_output(net, state)
    cov2 = state.cov1 if state.cov2 is None else state.cov2
    half = len(X1) // 2
    blocks = [replace(state, nngp=state.nngp[a:b], ntk=state.ntk[a:b], cov1=state.cov1[a:b], cov2=cov2)
              for a, b in ((0, half), (half, len(X1)))]
    with ThreadPoolExecutor(max(1, min(threads, 2))) as pool:
        parts = list(pool.map(lambda block: _spatial_output(net, block), blocks))
    diag1 = np.concatenate([p.diag1 for p in parts])
    return KernelState(np.concatenate([p.nngp for p in parts]), np.concatenate([p.ntk for p in parts]),
                       diag1, diag1 if X2 is None else parts[0].diag2)


def _spatial_output(net: Layer, state: SpatialState) -> KernelState:
    with np.errstate(over="ignore", invalid="ignore"):    # refused by name after each layer (_checked)
        state = _checked(net, state)
    if isinstance(state, tuple):
        raise ValueError(f"the network ends with {len(state)} branches: join them with FanInSum()")
    if state.spatial:
        raise ValueError(f"the network's output still has positions {state.spatial}: "
                         "end it with GlobalAvgPool() or Flatten()")
    cov2 = state.cov1 if state.cov2 is None else state.cov2
    return KernelState(state.nngp, state.ntk, state.cov1, cov2)


def _seen(state) -> int:
    """The affine layers behind a state or behind the last of branches."""
    return max(map(_seen, state)) if isinstance(state, tuple) else state.affine_seen


def _checked(layer: Layer, state):
    """``layer.kernel(state)``, refused with an OverflowError naming the layer and the kernel
    where an entry exceeds float64 range (a NaN only ever comes from such an entry)."""
    out = layer.kernel(state)
    if not isinstance(layer, (Serial, Parallel)):      # their layers are checked one by one
        for s in out if isinstance(out, tuple) else (out,):
            nngp = [("NNGP kernel", x) for x in (s.cov1, s.cov2, s.nngp) if x is not None]
            refuse_overflow(nngp + [("NTK kernel", s.ntk)], layer, s.affine_seen, s.n_affine)
    return out


def flat_chain(net: Layer) -> tuple[Layer, ...] | None:
    """The layers of ``net`` when it is Dense layers with at most one nonlinearity after each
    (each nonlinearity then sees a Gaussian input), acting on inputs (N, d) entry by entry of
    the kernel; else None.  An :class:`ntkcheck.MLP`'s network is one."""
    layers = net.chain()
    if not layers or not layers[0].affine:
        return None
    for prev, layer in zip(layers, layers[1:]):
        if not (prev.affine or layer.affine):
            return None
    return layers


# --- finite networks ------------------------------------------------------

def init_params(net: Layer, shape: tuple[int, ...], seed, start: int = 0, stop: int = 1,
                dtype=np.float64):
    """Initial parameters of networks ``start .. stop-1`` of the run seeded by ``seed``, for inputs
    of ``shape`` (d,), (W, C) or (H, W, C).  Network i draws every affine layer's W then b, in
    network order, from its own generator (:func:`ntkcheck.seeding.network_rngs`), so the same i
    is the same network whatever the chunking -- and a serial of Dense layers draws what the
    equivalent :class:`ntkcheck.MLP` draws (a bias is drawn even when ``b_std`` is None)."""
    output_shape(net, shape)
    return net.init(network_rngs(seed, start, stop), tuple(shape), dtype)[0]


def output_shape(net: Layer, shape: tuple[int, ...]) -> tuple[int]:
    """(out,): the output shape of one input of ``shape``; a ValueError naming the layer when the
    shapes do not fit, or when the output has branches or positions."""
    out = net.init([_NoDraw()], tuple(shape))[1]
    if _is_branches(out):
        raise ValueError(f"the network ends with {len(out)} branches: join them with FanInSum()")
    if len(out) != 1:
        raise ValueError(f"the network's output still has positions {out[:-1]}: "
                         "end it with GlobalAvgPool() or Flatten()")
    return out


def outputs_and_ntk(net: Layer, params, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs f (M, N, out) and empirical NTKs Theta_hat(X, X) (M, N, N) of the networks of
    ``params``; for out > 1 the NTK is the mean over outputs of each output's kernel (as
    :mod:`ntkcheck.networks`).  One forward pass and one backward pass with the ``out`` unit
    cotangents batched; every affine layer adds its parameters' share of the tangent kernel
    (Jacot et al. 2018, proof of Thm 1: Theta_hat = sum over parameters of df/dp df'/dp)."""
    dtype = _first_weight(params).dtype
    f, cache = net.forward(params, np.asarray(X, dtype=dtype)[None])
    M, N, d_out = f.shape
    unit = np.broadcast_to(np.eye(d_out, dtype=dtype)[None, :, None, :], (M, d_out, N, d_out))
    _, ntk = net.backward(params, cache, unit)
    return f, ntk / d_out


def bytes_per_network(net: Layer, shape: tuple[int, ...], n_inputs: int, itemsize: int = 8) -> int:
    """Working memory of one network in :func:`outputs_and_ntk` (an upper estimate): its
    parameters, and per layer its output kept for the backward pass, conv patches and cotangents of
    every output (with a 2x allowance for the temporaries of the NTK terms)."""
    params = net.init([_NoDraw()], tuple(shape))[0]
    d_out = output_shape(net, shape)[0]
    total = sum(W.size + b.size for W, b in _affine_params(params))
    total += n_inputs * (2 + 2 * d_out) * _activation_size(net, tuple(shape))[0]
    return itemsize * total


class _NoDraw:
    """A stand-in generator: only the parameters' shapes are needed."""

    def standard_normal(self, out, dtype=None):
        return out


def _activation_size(net: Layer, shape) -> tuple[int, tuple]:
    """Sum over layers of one input's output size (conv patches included), and the output shape."""
    if isinstance(net, Serial):
        total = 0
        for layer in net.layers:
            size, shape = _activation_size(layer, shape)
            total += size
        return total, shape
    if isinstance(net, Parallel):
        parts = [_activation_size(layer, s) for layer, s in zip(net.layers, shape)]
        return sum(n for n, _ in parts), tuple(o for _, o in parts)
    out = net.init([_NoDraw()], shape)[1]
    size = sum(math.prod(s) for s in out) if _is_branches(out) else math.prod(out)
    if isinstance(net, Conv):
        size += math.prod(out[:-1]) * shape[-1] * math.prod(net.filter_shape)
    return size, out


def _affine_params(params):
    if isinstance(params, _AffineParams):
        yield params
    elif isinstance(params, tuple):
        for p in params:
            yield from _affine_params(p)


def _first_weight(params):
    for W, _ in _affine_params(params):
        return W
    raise ValueError("the network has no Dense or Conv layer (no parameters)")


@dataclass(frozen=True)
class _AffineParams:
    """Weights (M, out, fan_in) and biases (M, out) of one affine layer of M networks."""

    W: np.ndarray
    b: np.ndarray

    def __iter__(self):
        return iter((self.W, self.b))


def _scales(layer, fan_in) -> tuple[float, float, float, float]:
    """(a, c, weight init std, bias init std) of ``h = a W x + c b`` (before ``layer.scale``):
    NTK parameterization a = W_std/sqrt(fan_in), c = b_std with N(0, 1) parameters; mean field
    a = W_std/fan_in, c = b_std; standard a = c = 1 with W ~ N(0, W_std^2/fan_in),
    b ~ N(0, b_std^2).  No bias (b_std None): c = 0."""
    bias = 0.0 if layer.b_std is None else layer.b_std
    if layer.parameterization == "ntk":
        return layer.W_std / math.sqrt(fan_in), bias, 1.0, 1.0
    if layer.parameterization == "mean_field":
        return layer.W_std / fan_in, bias, 1.0, 1.0
    return 1.0, 0.0 if layer.b_std is None else 1.0, layer.W_std / math.sqrt(fan_in), bias


def _kernel_scales(layer, fan_in) -> tuple[float, float, float, float]:
    """:func:`_scales` with the layer's output multiplier folded into a and c."""
    a, c, s_w, s_b = _scales(layer, fan_in)
    return layer.scale * a, layer.scale * c, s_w, s_b


def draw_affine(rng: np.random.Generator, W: np.ndarray, b: np.ndarray, s_w: float, s_b: float) -> None:
    """Fill one network's weight W with N(0, s_w^2) and then its bias b with N(0, s_b^2), in
    place; each draw is scaled while still in cache (a later pass over the stack costs a
    memory pass).  The draw order fixes the numbers every dense path shares."""
    rng.standard_normal(out=W, dtype=W.dtype)
    if s_w != 1.0:
        W *= s_w
    rng.standard_normal(out=b, dtype=b.dtype)
    if s_b != 1.0:
        b *= s_b


def _affine_init(layer, rngs, fan_in, out, dtype):
    _, _, s_w, s_b = _scales(layer, fan_in)
    W = np.empty((len(rngs), out, fan_in), dtype=dtype)
    b = np.empty((len(rngs), out), dtype=dtype)
    for i, rng in enumerate(rngs):
        draw_affine(rng, W[i], b[i], s_w, s_b)
    return _AffineParams(W, b)


def _affine_forward(layer, params, x):
    """``scale (a W x + c b)`` over the last axis of x (M or 1, N, positions..., fan_in)."""
    W, b = params
    a, c, _, _ = _scales(layer, x.shape[-1])
    h = np.matmul(x.reshape(x.shape[0], -1, x.shape[-1]), W.transpose(0, 2, 1))
    h *= a
    if c != 0.0:
        h += c * b[:, None, :]
    if layer.scale != 1.0:
        h *= layer.scale
    return h.reshape((len(W),) + x.shape[1:-1] + (W.shape[1],))


def _affine_backward(layer, params, x, g):
    """Cotangents of the layer input, ``scale a g W``, and the layer's NTK share (:func:`_affine_ntk`)."""
    W, _ = params
    a, c, _, _ = _scales(layer, x.shape[-1])
    if layer.scale != 1.0:
        g = layer.scale * g
    ntk = _affine_ntk(g, x, a, c)
    g_in = np.matmul(g.reshape(g.shape[0], -1, g.shape[-1]), W)
    g_in *= a
    return g_in.reshape(g.shape[:-1] + (W.shape[2],)), ntk


def _affine_ntk(g, x, a, c, form=None):
    """sum_k <df_k/dW, df_k/dW'> + <df_k/db, df_k/db'> of ``h = a W x + c b`` applied at every
    position, from the cotangents g (M, K, N, positions..., out) and the inputs x (M or 1, N,
    positions..., fan_in), (M, N, N).  Weights shared over positions p: df_k/dW = a sum_p
    g_p x_p^T, the correlation of the backward signal with the input (conv: with its patches).
    ``form`` "gradient" forms these per-input gradients (N, out x fan_in) and takes their Gram;
    "pairs" uses a^2 sum_{p,q} <g_p, g'_q> <x_p, x'_q> instead (without positions: the MLP
    formula of :mod:`ntkcheck.networks`); by default the one with the smaller arrays."""
    M, K, N = g.shape[:3]
    out, fan_in = g.shape[-1], x.shape[-1]
    g = g.reshape(M, K, N, -1, out)
    x = x.reshape(x.shape[0], N, -1, fan_in)
    P = g.shape[3]
    ntk = np.zeros((M, N, N), dtype=g.dtype)
    if c != 0.0:
        gs = g.sum(axis=3).transpose(0, 2, 1, 3).reshape(M, N, K * out)
        ntk += c * c * _gram(gs)
    if form is None:      # the cheaper one, in multiply-adds (both divided by N)
        form = "gradient" if K * out * fan_in * (P + N) < N * P * P * (K * out + fan_in) else "pairs"
    if form == "gradient":
        grads = np.matmul(g.transpose(0, 1, 2, 4, 3), x[:, None])     # (M, K, N, out, fan_in)
        ntk += a * a * _gram(grads.transpose(0, 2, 1, 3, 4).reshape(M, N, -1))
    else:
        gg = _gram(g.transpose(0, 2, 3, 1, 4).reshape(M, N * P, K * out)).reshape(M, N, P, N, P)
        xx = _gram(x.reshape(x.shape[0], N * P, fan_in)).reshape(-1, N, P, N, P)
        ntk += a * a * np.einsum("aipjq,aipjq->aij", gg, np.broadcast_to(xx, gg.shape))
    return ntk


def _gram(A):
    return np.matmul(A, A.transpose(0, 2, 1))


def _patch_maps(windows, padding, spatial) -> list[tuple[int, int, int, int, int, bool]]:
    """Per spatial axis (window f, stride s, padding lo and hi, input positions L, circular):
    tap o of output i reads input s i + o - lo (wrapped for CIRCULAR, zero outside for VALID/SAME)."""
    return [(f, s, lo, hi, L, padding == "CIRCULAR") for (f, s, lo, hi), L in zip(windows, spatial)]


def _patches(x, maps):
    """x (B1, B2, L1..Lk, C) -> patches (B1, B2, n1..nk, f1..fk, C), a strided view of the padded x."""
    k, nb = len(maps), x.ndim - len(maps) - 1
    if any(lo or hi for _, _, lo, hi, _, _ in maps):
        width = [(0, 0)] * nb + [(lo, hi) for _, _, lo, hi, _, _ in maps] + [(0, 0)]
        x = np.pad(x, width, mode="wrap" if maps[0][5] else "constant")
    axes = tuple(range(nb, nb + k))
    view = np.lib.stride_tricks.sliding_window_view(x, [m[0] for m in maps], axis=axes)
    view = view[(slice(None),) * nb + tuple(slice(None, None, m[1]) for m in maps)]
    return np.moveaxis(view, nb + k, -1)


def _patches_adjoint(p, maps):
    """The adjoint of :func:`_patches`: cotangents of patches (B..., n1..nk, f1..fk, C) -> (B..., L1..Lk, C):
    each tap adds back where it read, then padding is dropped (CIRCULAR: folded back onto the positions it copies)."""
    k = len(maps)
    nb = p.ndim - 2 * k - 1
    n = p.shape[nb:nb + k]
    out = np.zeros(p.shape[:nb] + tuple(L + lo + hi for _, _, lo, hi, L, _ in maps) + p.shape[-1:], p.dtype)
    lead = (slice(None),) * nb
    for taps in np.ndindex(*(m[0] for m in maps)):
        dst = tuple(slice(o, o + s * (m - 1) + 1, s) for o, (_, s, _, _, _, _), m in zip(taps, maps, n))
        out[lead + dst] += p[lead + (slice(None),) * k + taps]
    for d, (_, _, lo, hi, L, circular) in enumerate(maps):
        if not (lo or hi):
            continue
        ax = nb + d
        core = np.take(out, np.arange(lo, lo + L), axis=ax)
        if circular:
            for j in (*range(lo), *range(lo + L, L + lo + hi)):
                at = [slice(None)] * core.ndim
                at[ax] = (j - lo) % L
                core[tuple(at)] += np.take(out, j, axis=ax)
        out = core
    return out


def _is_branches(shape) -> bool:
    return isinstance(shape, tuple) and bool(shape) and isinstance(shape[0], tuple)


def _single_shape(layer, shape):
    if _is_branches(shape):
        layer._fail(f"got {len(shape)} branches (FanOut without FanInSum); expected one input")
    return shape


# --- helpers --------------------------------------------------------------

def _variances(cov: np.ndarray, k: int) -> np.ndarray:
    """K(x,i; x,i) from (N, L1, L1, L2, L2, ...): the diagonal of every position pair."""
    sp = _LETTERS[:k]
    return np.einsum(f"n{''.join(c + c for c in sp)}->n{sp}", cov)


def _spread(var: np.ndarray, k: int, which: int, nb: int) -> np.ndarray:
    """Variances (N, L1, ..., Lk) broadcast against kernels with ``nb`` batch axes, as the
    first (which=0) or second (which=1) member of each pair (and of the batch pair)."""
    shape = [1] * (nb + 2 * k)
    if nb == 2:
        shape[which] = var.shape[0]
    else:
        shape[0] = var.shape[0]
    for d in range(k):
        shape[nb + 2 * d + which] = var.shape[1 + d]
    return var.reshape(shape)


def _windows(layer, shape, window) -> tuple[list[tuple[int, int, int, int]], tuple[int, ...]]:
    """Per spatial axis (window, stride, padding before, padding after), and the output positions,
    for one input of ``shape`` (positions..., channels).
    Padding is TensorFlow/JAX SAME's (CIRCULAR wraps the same amounts); none for VALID."""
    _check_spatial(layer, shape, len(window))
    out, out_shape = [], []
    for L, f, s in zip(shape[:-1], window, layer.strides):
        if layer.padding == "VALID":
            if L < f:
                layer._fail(f"window {f} is larger than the input's {L} positions with VALID padding")
            lo = hi = 0
        else:
            total = max((-(-L // s) - 1) * s + f - L, 0)
            lo, hi = total // 2, total - total // 2
        out.append((f, s, lo, hi))
        out_shape.append((L + lo + hi - f) // s + 1)
    return out, tuple(out_shape)


def _window_mean(x, axes, f, s, lo, hi, padding):
    """Mean over the offsets o < f of x[.., s i + o - lo, ..], the same offset on every axis in
    ``axes``; zero padding contributes nothing, so only the in-range part of each slice is added
    (in place: these arrays are the largest of the recursion)."""
    if padding == "CIRCULAR" and (lo or hi):
        width = [(0, 0)] * x.ndim
        for a in axes:
            width[a] = (lo, hi)
        x, lo, hi = np.pad(x, width, mode="wrap"), 0, 0
    L = x.shape[axes[0]]
    n = (L + lo + hi - f) // s + 1
    shape = list(x.shape)
    for a in axes:
        shape[a] = n
    out = np.empty(shape)   # not np.zeros: with numpy < 2 its calloc'd pages fault in 4 kB at a time (7x slower)
    out.fill(0.0)
    dst, src = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    for o in range(f):
        i0 = max(0, -((o - lo) // s))                 # first i with s i + o - lo >= 0
        i1 = min(n, (L - 1 - o + lo) // s + 1)        # last i with s i + o - lo <= L - 1, plus one
        if i1 <= i0:
            continue
        start = s * i0 + o - lo
        for a in axes:
            dst[a], src[a] = slice(i0, i1), slice(start, start + s * (i1 - i0 - 1) + 1, s)
        out[tuple(dst)] += x[tuple(src)]
    out /= f
    return out


def _check_spatial(layer, shape, k):
    if len(shape) - 1 != k:
        layer._fail(f"acts on {k} spatial axes but its input has shape {shape} "
                    f"({len(shape) - 1} spatial axes, channels last)")


def _check_window(layer, name):
    """Window (filter) shape and strides as int tuples (strides default to 1), padding upper case."""
    window = _int_tuple(layer, name, getattr(layer, name))
    object.__setattr__(layer, name, window)
    strides = (1,) * len(window) if layer.strides is None else layer.strides
    object.__setattr__(layer, "strides", _int_tuple(layer, "strides", strides, len(window)))
    _check_padding(layer)


def _check_padding(layer):
    if not isinstance(layer.padding, str) or layer.padding.upper() not in PADDINGS:
        raise ValueError(f"{type(layer).__name__}: padding must be one of {PADDINGS}, got {layer.padding!r}")
    object.__setattr__(layer, "padding", layer.padding.upper())


def _check_positive_int(layer, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{type(layer).__name__}: {name} must be an integer >= 1, got {value!r}")


def _int_tuple(layer, name, value, length=None):
    value = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        out = tuple(value)
    except TypeError:
        out = None
    if (not out or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in out)
            or (length is not None and len(out) != length)):
        want = f"{length} " if length is not None else ""
        raise ValueError(f"{type(layer).__name__}: {name} must be a tuple of {want}integers >= 1, got {value!r}")
    return tuple(int(v) for v in out)


def _check_layers(name, layers):
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ValueError(f"{name}: argument {i} must be a layer, got {type(layer).__name__} {layer!r:.40}")
    return tuple(layers)


def _check_inputs(X1, X2, names=("X1", "X2")):
    """Inputs (N, d), (N, W, C) or (N, H, W, C) with the same shape per input; the values are
    checked (numeric, real, finite) by :func:`ntkcheck.kernels.check_inputs` on flattened rows."""
    shapes = []
    for X, name in ((X1, names[0]), (X2, names[1])):
        if X is None:
            continue
        try:
            shape = np.shape(X)
        except ValueError:     # ragged nested sequences
            shape = ()
        if not 2 <= len(shape) <= 2 + len(_LETTERS) // 2 or min(shape) < 1:
            raise ValueError(f"{name} must have shape (N, d), (N, W, C) or (N, H, W, C) with sizes >= 1, "
                             f"got shape {shape}")
        shapes.append(shape)
    if len(shapes) == 2 and shapes[0][1:] != shapes[1][1:]:
        raise ValueError(f"X1 and X2 must have the same shape per input, got {shapes[0][1:]} and {shapes[1][1:]}")
    flat = check_inputs(*(None if X is None else np.reshape(X, (len(X), -1)) for X in (X1, X2)), names=names)
    return tuple(None if F is None else F.reshape(shape) for F, shape in zip(flat, shapes + [None]))
