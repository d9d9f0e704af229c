"""Network specification: the fully connected network every claim reads.

A spec is a frozen dataclass; it fixes the fully connected network
``x -> h^1 -> phi -> h^2 -> ... -> h^L -> phi -> f = h^{L+1}`` and its
parameterization (Jacot et al. 2018, eq. 1; Lee et al. 2019, sec. 2;
Mei, Montanari & Nguyen 2018 for the mean-field readout).  It builds that network
from :mod:`ntkcheck.stax` layers (:meth:`MLP.network`), which own the kernel steps,
the finite-network passes and the exact sampler's conditional steps.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields

from . import stax
from .activations import Activation, get_activation
from .kernels import check_inputs

PARAMETERIZATIONS = ("ntk", "standard", "mean_field")


@dataclass(frozen=True)
class MLP:
    """A fully connected network of ``depth`` hidden layers.

    Parameters
    ----------
    depth : int
        L, the number of hidden layers (>= 1).
    width : int or tuple of int
        n, hidden-layer widths: one int for all layers or one per layer.
    activation : str or Activation
        A name known to :func:`ntkcheck.activations.get_activation` or an
        :class:`Activation`.
    sigma_w, sigma_b : float
        Weight and bias scales, the same on every dense layer (readout too).
    parameterization : {"ntk", "standard", "mean_field"}
        ``"ntk"``: ``h = sigma_w/sqrt(fan_in) W x + sigma_b b`` with standard
        normal W, b (Jacot et al. 2018).  ``"standard"``: ``h = W x + b`` with
        ``W ~ N(0, sigma_w^2/fan_in)``, ``b ~ N(0, sigma_b^2)``.
        ``"mean_field"``: as ``"ntk"`` but the readout multiplier is
        ``sigma_w/n_L`` instead of ``sigma_w/sqrt(n_L)``.
    d_out : int
        Output dimension.
    output_scale : float
        alpha, a constant multiplying the output (Chizat, Oyallon & Bach 2019).
    """

    depth: int
    width: int | tuple[int, ...]
    activation: str | Activation = "relu"
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    parameterization: str = "ntk"
    d_out: int = 1
    output_scale: float = 1.0
    act: Activation = field(init=False, repr=False, compare=False)
    _network: stax.Serial = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not _is_int(self.depth) or self.depth < 1:
            raise ValueError(f"MLP.depth must be an integer >= 1, got {self.depth!r}")
        object.__setattr__(self, "depth", int(self.depth))
        widths = (self.width,) * self.depth if _is_int(self.width) else self.width
        if not isinstance(widths, (tuple, list)) or not all(_is_int(w) for w in widths):
            raise ValueError(f"MLP.width must be a positive int or a tuple of them, got {self.width!r}")
        if len(widths) != self.depth:
            raise ValueError(f"MLP.width has {len(widths)} entries but depth is {self.depth}")
        if any(w < 1 for w in widths):
            raise ValueError(f"MLP.width must be >= 1, got {self.width!r}")
        object.__setattr__(self, "width", int(self.width) if _is_int(self.width) else tuple(int(w) for w in widths))
        for name in ("sigma_w", "sigma_b", "output_scale"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"MLP.{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"MLP.parameterization must be one of {PARAMETERIZATIONS}, got {self.parameterization!r}")
        if not _is_int(self.d_out) or self.d_out < 1:
            raise ValueError(f"MLP.d_out must be an integer >= 1, got {self.d_out!r}")
        object.__setattr__(self, "d_out", int(self.d_out))
        try:
            act = get_activation(self.activation)
        except ValueError as err:
            raise ValueError(f"MLP.activation: {err}") from None
        object.__setattr__(self, "act", act)
        object.__setattr__(self, "_network", self._build())

    def __reduce__(self):
        # by its fields, so it pickles (to worker processes) although a named activation's
        # functions are lambdas; a custom Activation object pickles as itself (or not at all)
        return _rebuild, ({f.name: getattr(self, f.name) for f in fields(self) if f.init},)

    def _build(self) -> stax.Serial:
        hidden = "standard" if self.parameterization == "standard" else "ntk"
        readout = "mean_field" if self.parameterization == "mean_field" else hidden
        layers = []
        for n in self.widths:
            layers += [stax.Dense(n, self.sigma_w, self.sigma_b, hidden), stax.Activation(self.activation)]
        layers.append(stax.Dense(self.d_out, self.sigma_w, self.sigma_b, readout, scale=self.output_scale))
        return stax.serial(*layers)

    def network(self) -> stax.Serial:
        """The network as :mod:`ntkcheck.stax` layers: ``serial(Dense(n_1, sigma_w, sigma_b),
        Activation(activation), ..., Dense(d_out, sigma_w, sigma_b, scale=output_scale))``, the
        readout with ``parameterization="mean_field"`` for a mean-field spec (hidden layers NTK)."""
        return self._network

    @property
    def layers(self) -> tuple[stax.Layer, ...]:
        """The layers of :meth:`network`."""
        return self._network.layers

    def check_inputs(self, X1, X2=None, names=("X1", "X2")):
        """Inputs (N, d), validated (:func:`ntkcheck.kernels.check_inputs`)."""
        return check_inputs(X1, X2, names)

    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths (n_1, ..., n_L)."""
        return (self.width,) * self.depth if isinstance(self.width, int) else self.width

    def layer_scales(self, d_in: int) -> list[tuple[float, float, float, float]]:
        """Per dense layer l = 1..L+1: (weight multiplier a_l, bias multiplier c_l,
        weight init std, bias init std), so that ``h = a W x + c b``.

        The empirical NTK contribution of layer l is then
        ``<delta, delta'> (a_l^2 <x, x'> + c_l^2)`` whatever the parameterization.
        """
        fans = (d_in,) + self.widths
        return [stax._scales(layer, fan) for layer, fan in zip(self.layers[::2], fans)]


def _rebuild(kwargs: dict) -> MLP:
    return MLP(**kwargs)


def _is_int(x) -> bool:
    """Python and numpy integers (``numbers.Integral``), not bools."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
