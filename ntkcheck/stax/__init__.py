"""Networks built like neural-tangents' ``stax``: dense, conv (shared, local, transposed), pooling,
flatten, layer-norm, residual and concatenated layers.

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

The package has one module per family of layers, as neural-tangents' ``_src/stax``: the layer
protocol (:mod:`.layer`), windows over positions (:mod:`.windows`), affine layers
(:mod:`.linear`), pooling (:mod:`.pooling`), nonlinearities (:mod:`.elementwise`), normalization
(:mod:`.normalization`), attention (:mod:`.attention`), branching
(:mod:`.branching`), combinators (:mod:`.combinators`), widths (:mod:`.widths`) and whole
networks (:mod:`.network`); the kernel states are :mod:`ntkcheck.states`.

Sources: the convolutional NNGP recursion, Novak et al. 2019 (ICLR, "Bayesian deep
convolutional networks with many channels are Gaussian processes") and Garriga-Alonso et al. 2019
(ICLR, "Deep convolutional networks as shallow Gaussian processes"); the convolutional NTK
recursion, Arora et al. 2019 (NeurIPS, "On exact computation with an infinitely wide neural net");
Gaussianity of any such architecture and sums of independent branches, Yang 2019 ("Wide feedforward
or recurrent neural networks of any architecture are Gaussian processes", the master theorem).
"""

from __future__ import annotations

from ..activations import get_activation  # noqa: F401 -- stax.Activation(stax.get_activation(...))
from ..states import KernelState, SpatialState
from .attention import GlobalSelfAttention
from .branching import FanInConcat, FanInSum, FanOut
from .combinators import Identity, Parallel, Serial, parallel, serial
from .elementwise import Abs, Activation, Cos, Erf, Gelu, LeakyRelu, Relu, Sigmoid, Sin, Softplus, Tanh
from .layer import PADDINGS, Layer, _check_inputs, input_state
from .linear import (Conv, ConvLocal, ConvTranspose, Dense, _AffineParams, _affine_backward, _affine_forward,
                     _affine_init, _affine_ntk, _kernel_scales, _scales, affine_kernel, draw_affine)
from .network import (SPLIT_ENTRIES, _affine_params, bytes_per_network, flat_chain, init_params, output_shape,
                      outputs_and_ntk, spatial_kernels)
from .normalization import LayerNorm
from .pooling import AvgPool, Flatten, GlobalAvgPool, GlobalSumPool, SumPool
from .widths import depth, fan_in_scaled, layers, with_width
from .windows import _patches_adjoint, _windows

__all__ = [
    "Abs", "Activation", "AvgPool", "Conv", "ConvLocal", "ConvTranspose", "Cos", "Dense", "Erf", "FanInConcat",
    "FanInSum", "FanOut", "Flatten", "Gelu", "GlobalAvgPool", "GlobalSumPool", "Identity", "KernelState", "Layer",
    "LayerNorm", "LeakyRelu", "PADDINGS", "Parallel", "Relu", "SPLIT_ENTRIES", "Serial", "Sigmoid", "Sin",
    "Softplus", "SpatialState", "SumPool", "Tanh", "affine_kernel",
    "bytes_per_network", "depth", "draw_affine", "fan_in_scaled", "flat_chain", "init_params", "input_state",
    "layers", "output_kernels", "output_shape", "outputs_and_ntk", "parallel", "serial", "spatial_kernels",
    "with_width",
    "GlobalSelfAttention",
    # private names other modules use
    "_AffineParams", "_affine_backward", "_affine_forward", "_affine_init", "_affine_ntk", "_affine_params",
    "_check_inputs", "_kernel_scales", "_patches_adjoint", "_scales", "_windows",
]


def output_kernels(net: Layer, X1, X2=None) -> KernelState:
    """The output's NNGP and NTK, (N1, N2): :func:`ntkcheck.kernels.output_kernels`."""
    from ..kernels import output_kernels as _output_kernels   # ntkcheck.kernels drives these layers: it imports them
    return _output_kernels(net, X1, X2)
