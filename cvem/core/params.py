"""Validated parameter sets: frozen dataclasses built from config text or keyword values.

Each field may carry ``metadata={"min": .., "max": .., "help": ..}``; :func:`build_params`
converts strings to the field's type, checks the bounds and names the offending key in the
error, so a bad ``[policy:vpa]`` line fails at start-up with a message an operator can act on.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping, Type, TypeVar

from ..errors import ConfigError

try:  # numpy's bool is not a Python bool, but is no number either
    from numpy import bool_ as np_bool
except ImportError:  # pragma: no cover
    np_bool = bool

P = TypeVar("P")

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def _convert(name: str, kind: Any, raw: Any) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if not isinstance(raw, str):
        number = isinstance(raw, numbers.Real) and not isinstance(raw, (bool, np_bool))
        if kind_name == "float":
            if number and not math.isnan(raw):
                return float(raw)
            raise ConfigError(f"{name}: expected a number, got {raw!r}")
        if kind_name == "int":
            if number and float(raw).is_integer():
                return int(raw)
            raise ConfigError(f"{name}: expected an integer, got {raw!r}")
        if kind_name == "bool" and not isinstance(raw, bool):
            raise ConfigError(f"{name}: expected true or false, got {raw!r}")
        return raw
    text = raw.strip()
    try:
        if kind_name == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if kind_name == "int":
            return int(text)
        if kind_name == "float":
            value = float(text)
            if math.isnan(value):
                raise ValueError(text)
            return value
    except ValueError:
        raise ConfigError(f"{name}: expected {kind_name}, got {raw!r}") from None
    return text


def build_params(cls: Type[P], values: Mapping[str, Any] | None = None, where: str = "") -> P:
    """An instance of the frozen dataclass ``cls`` from ``values``; unknown keys are errors."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    label = f"[{where}] " if where else ""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{label}unknown parameter(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(fields))}")
    kwargs = {k: _convert(label + k, fields[k].type, v) for k, v in values.items()}
    params = cls(**kwargs)
    for f in dataclasses.fields(cls):
        value = getattr(params, f.name)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value < lo:
            raise ConfigError(f"{label}{f.name}={value} is below its minimum {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{label}{f.name}={value} is above its maximum {hi}")
    check = getattr(params, "validate", None)
    if check is not None:
        check()
    return params


def describe_params(cls) -> list:
    """(name, default, help) rows for ``cvem policies`` and the docs."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        rows.append((f.name, default, f.metadata.get("help", "")))
    return rows
