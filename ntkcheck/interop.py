"""Translations of ntkcheck networks into other libraries' layers (neural-tangents).

:func:`to_neural_tangents` builds the neural-tangents network that the same stax calls build
(``ntkcheck.stax`` mirrors neural-tangents' names, arguments and defaults), so a property test
can compare neural-tangents' ``kernel_fn`` with ntkcheck's analytic kernels or hand it to
:func:`ntkcheck.testing.assert_kernel`.  neural-tangents is not a dependency: it is imported when
the function is called.
"""
from __future__ import annotations

from . import stax
from .spec import MLP

#: ntkcheck activation name -> neural-tangents layer name, for the activations whose
#: neural-tangents layer is the same function with a closed-form kernel.  Not here: tanh, softplus
#: and the logistic sigmoid (neural-tangents has no closed form; its ``Sigmoid_like`` is an erf).
ACTIVATIONS = {"relu": "Relu", "abs": "Abs", "identity": "Identity", "erf": "Erf", "sin": "Sin",
               "cos": "Cos", "gelu": "Gelu"}


def to_neural_tangents(net: MLP | stax.Layer):
    """neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` of the network ``net``: an
    :class:`ntkcheck.MLP` (its :meth:`~ntkcheck.MLP.network`) or :mod:`ntkcheck.stax` layers.

    The translation is layer for layer (``Dense``, ``Conv``, ``ConvLocal``, ``ConvTranspose``,
    ``AvgPool``, ``SumPool``, ``GlobalAvgPool``, ``GlobalSumPool``, ``Flatten``, ``LayerNorm``,
    ``Identity``, ``FanOut``, ``FanInSum``, ``FanInConcat``, ``serial``, ``parallel`` and the
    activations of :data:`ACTIVATIONS` plus ``leaky_relu(slope)``); the kernels are those of
    Novak et al. 2019 (ICLR, "Neural Tangents: fast and easy infinite neural networks in Python").
    A Dense ``scale`` alpha != 1 (an MLP's ``output_scale``) becomes ``W_std`` and ``b_std`` times
    alpha, the same function and NTK in the NTK parameterization.

    Raises ImportError when neural-tangents is not installed and ValueError naming a layer
    neural-tangents has no exact counterpart of (mean-field parameterization, a scaled standard-
    parameterization layer, tanh/sigmoid/softplus or a custom activation).
    """
    if not isinstance(net, (MLP, stax.Layer)):
        raise ValueError(f"net must be an ntkcheck.MLP or ntkcheck.stax network, got {type(net).__name__}")
    try:
        from neural_tangents import stax as nt
    except ImportError:
        raise ImportError("to_neural_tangents needs neural-tangents (pip install neural-tangents)") from None
    return _layer(nt, net.network())


def _layer(nt, layer: stax.Layer):
    """The neural-tangents layer (a triple of functions) of one ntkcheck layer, recursively."""
    if isinstance(layer, (stax.Serial, stax.Parallel)):
        combine = nt.serial if isinstance(layer, stax.Serial) else nt.parallel
        return combine(*(_layer(nt, sub) for sub in layer.layers))
    if isinstance(layer, stax.Dense):
        W_std, b_std = _scaled(layer)
        return nt.Dense(layer.out_dim, W_std=W_std, b_std=b_std, parameterization=layer.parameterization)
    if isinstance(layer, (stax.Conv, stax.ConvLocal, stax.ConvTranspose)):
        return getattr(nt, type(layer).__name__)(
            layer.out_chan, layer.filter_shape, strides=layer.strides, padding=layer.padding, W_std=layer.W_std,
            b_std=layer.b_std, parameterization=layer.parameterization)
    if isinstance(layer, (stax.AvgPool, stax.SumPool)):
        return getattr(nt, type(layer).__name__)(layer.window_shape, strides=layer.strides, padding=layer.padding)
    if isinstance(layer, stax.LayerNorm):
        return nt.LayerNorm(axis=layer.axis, eps=layer.eps)
    if isinstance(layer, stax.FanInConcat):
        return nt.FanInConcat(axis=layer.axis)
    if isinstance(layer, stax.FanOut):
        return nt.FanOut(layer.num)
    if isinstance(layer, stax.Activation):
        return _activation(nt, layer)
    for same in (stax.GlobalAvgPool, stax.GlobalSumPool, stax.Flatten, stax.Identity, stax.FanInSum):
        if isinstance(layer, same):
            return getattr(nt, same.__name__)()
    raise ValueError(f"to_neural_tangents: no neural-tangents counterpart of {layer!r}")


def _scaled(layer: stax.Dense) -> tuple[float, float | None]:
    """W_std and b_std with the layer's output scale folded in (exact for the NTK parameterization,
    where W_std and b_std multiply standard normal parameters, as alpha does)."""
    if layer.parameterization not in ("ntk", "standard"):
        raise ValueError(f"to_neural_tangents: {layer!r}: neural-tangents has no {layer.parameterization} "
                         "parameterization (only ntk and standard)")
    if layer.scale == 1.0:
        return layer.W_std, layer.b_std
    if layer.parameterization != "ntk":
        raise ValueError(f"to_neural_tangents: {layer!r}: an output scale != 1 is translated only in the "
                         "ntk parameterization")
    return layer.W_std * layer.scale, None if layer.b_std is None else layer.b_std * layer.scale


def _activation(nt, layer: stax.Activation):
    if not isinstance(layer.name, str):
        raise ValueError(f"to_neural_tangents: {layer!r}: only activations given by name are translated")
    name = layer.act.name
    if name.startswith("leaky_relu"):
        # the slope, exactly: phi(-1) = -slope (the name prints it rounded)
        return nt.LeakyRelu(float(-layer.act.fn(-1.0)))
    if name not in ACTIVATIONS:
        raise ValueError(f"to_neural_tangents: activation {name!r} has no closed-form neural-tangents layer "
                         f"(translated: {', '.join(ACTIVATIONS)}, leaky_relu)")
    return getattr(nt, ACTIVATIONS[name])()


__all__ = ["to_neural_tangents", "ACTIVATIONS"]
