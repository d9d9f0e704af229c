"""Short reprs for result objects: a notebook shows what an object is, never a dump of its arrays."""
from __future__ import annotations

import dataclasses

import numpy as np

#: characters of a field's own repr shown before it is cut
_WIDTH = 60


def field_text(value) -> str:
    """A field in a few characters: arrays and tables by shape, containers by size."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{', '.join(map(str, value.shape))}]"
    if hasattr(value, "shape") and hasattr(value, "columns"):      # a DataFrame, without importing pandas
        return f"DataFrame[{value.shape[0]} rows x {value.shape[1]} columns]"
    if isinstance(value, dict) and len(value) > 3:
        return f"{{{len(value)} items}}"
    if isinstance(value, (list, tuple)) and len(value) > 3:
        return f"({len(value)} items)"
    text = repr(value)
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."


def short_repr(obj) -> str:
    """``Name(field=..., ...)`` of a dataclass with every field shortened by :func:`field_text`."""
    parts = ", ".join(f"{f.name}={field_text(getattr(obj, f.name))}" for f in dataclasses.fields(obj) if f.repr)
    return f"{type(obj).__name__}({parts})"
