"""Network specification: the architecture every other module reads.

A spec is a frozen dataclass; it fixes the fully connected network
``x -> h^1 -> phi -> h^2 -> ... -> h^L -> phi -> f = h^{L+1}`` and its
parameterization (Jacot et al. 2018, eq. 1; Lee et al. 2019, sec. 2;
Mei, Montanari & Nguyen 2018 for the mean-field readout).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from .activations import Activation, get_activation

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
        out = []
        for l, fan in enumerate(fans):
            readout = l == len(fans) - 1
            if self.parameterization == "standard":
                out.append((1.0, 1.0, self.sigma_w / math.sqrt(fan), self.sigma_b))
            else:
                a = self.sigma_w / (fan if (readout and self.parameterization == "mean_field") else math.sqrt(fan))
                out.append((a, self.sigma_b, 1.0, 1.0))
        return out


def _is_int(x) -> bool:
    """Python and numpy integers (``numbers.Integral``), not bools."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
