"""Readable names for the code names that claims put in labels: cells ("cnn-flatten, relu,
L=2, $\\sigma_b$=0.1" -> "CNN (flatten), ReLU, $L = 2$, $\\sigma_b = 0.1$"), quantities
("weight_change_layer1" -> "weights, layer 1") and numbers with a true minus sign.

Math stays in ``$...$`` (LaTeX and matplotlib's mathtext render it); :func:`plain` turns a
cell name into Unicode text for markdown, CSV and the terminal.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

MINUS = "\u2212"

#: Code names of architectures, activations, parameterizations and measured quantities.
NAMES = {"mlp": "MLP", "cnn-flatten": "CNN (flatten)", "cnn-gap": "CNN (GAP)", "resnet": "ResNet",
         "relu": "ReLU", "erf": "erf", "tanh": "tanh", "ntk": "NTK parameterization",
         "standard": "standard parameterization", "mean_field": "mean-field", "nngp": "NNGP",
         "kernel_change": "kernel change", "feature_change": "feature change", "spread": "spread"}
_LAYER = re.compile(r"^weight_change_layer(\d+)$")
_SETTING = re.compile(r"^\$?(L|\\?sigma_[bw]|n)\$?\s*=\s*(\S+)$")


def quantity(code: str) -> str:
    """A measured quantity's name: ``weight_change_layer1`` -> "weights, layer 1"."""
    m = _LAYER.match(code)
    if m:
        return f"weights, layer {m.group(1)}"
    return NAMES.get(code, code.replace("_", " ") if re.fullmatch(r"[a-z0-9_]+", code) else code)


def _token(token: str) -> str:
    m = _SETTING.match(token)
    if m:
        name = m.group(1).lstrip("\\")
        name = "\\" + name if name.startswith("sigma") else name
        return f"${name} = {m.group(2)}$"
    return NAMES.get(token, token)


def cell(text: str) -> str:
    """A cell's comma-separated code names, each made readable (unknown words are kept);
    a trailing "(control: ...)" is dropped: the control is the verdict's, not the cell's."""
    text = re.sub(r"\s*\(control:[^()]*\)$", "", text.strip())
    return ", ".join(_token(t.strip()) for t in text.split(",") if t.strip())


def split_label(label: str, claim: str = "") -> tuple[str, str]:
    """(quantity, cell) of a series label "quantity: cell": split at the first ": " outside
    math and parentheses; a leading "<claim>: " is dropped; no cell gives ""."""
    if claim and label.startswith(claim + ": "):
        label = label[len(claim) + 2:]
    depth, math_mode = 0, False
    for i, ch in enumerate(label):
        if ch == "$" and (i == 0 or label[i - 1] != "\\"):
            math_mode = not math_mode
        elif not math_mode and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not math_mode and depth == 0 and label.startswith(": ", i):
            return quantity(label[:i]), cell(label[i + 2:])
    return quantity(re.sub(r"\s*\((control|power check):[^()]*(\([^()]*\)[^()]*)*\)$", "", label)), ""


def title(label: str, claim: str = "") -> str:
    """A panel title: "quantity: cell" with both made readable."""
    q, c = split_label(label, claim)
    return f"{q}: {c}" if c else q


_GREEK = {"alpha": "\u03b1", "beta": "\u03b2", "eta": "\u03b7", "kappa": "\u03ba", "lambda": "\u03bb",
          "sigma": "\u03c3", "Theta": "\u0398"}
_LETTER = re.compile(r"\\(" + "|".join(_GREEK) + r")(?![A-Za-z])")


def plain(text: str) -> str:
    """Simple math as Unicode text: "$\\sigma_b = 0.1$" -> "σ_b = 0.1" (Greek letters and
    the dollar signs; other commands are kept)."""
    return re.sub(r"\$([^$]*)\$", lambda m: _LETTER.sub(lambda g: _GREEK[g.group(1)], m.group(1)), text)


def number(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits with a true minus sign; "n/a" if not finite."""
    if not math.isfinite(x):
        return "n/a"
    decimals = max(digits - 1 - math.floor(math.log10(abs(x))), 0) if x else digits - 1
    return f"{x:.{decimals}f}".replace("-", MINUS)


def fraction(x: float) -> str:
    """A theoretical value as a short fraction with a true minus sign: -0.5 -> "−1/2"."""
    f = Fraction(x).limit_denominator(12)
    text = f"{f.numerator}/{f.denominator}" if f.denominator != 1 else str(f.numerator)
    return text.replace("-", MINUS) if abs(float(f) - x) < 1e-12 else number(x)


def percent(level: float) -> str:
    """A confidence level as a percentage: 0.95 -> '95%', 0.99875 -> '99.88%', 0.999988 ->
    '99.9988%' (digits enough that a level below 1 never prints as 100%)."""
    digits = max(4, math.ceil(-math.log10(1 - level)) + 1) if 0 < level < 1 else 4
    return f"{100 * level:.{digits}g}%"


def statistic(key: str) -> str:
    """A statistic's name: "exponent[cnn-flatten,relu,L=2,sigma_b=0.1]" -> "exponent: CNN
    (flatten), ReLU, $L = 2$, $\\sigma_b = 0.1$"; other names are kept."""
    m = re.fullmatch(r"([\w ]+)\[([^\[\]]+)\]", key)
    return f"{quantity(m.group(1))}: {cell(m.group(2))}" if m else key
