"""Hyperparameter dataclasses that round-trip through the registry's JSON."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

T = TypeVar("T", bound="Hyperparameters")


class Hyperparameters:
    """Mixin for a dataclass of hyperparameters: ``to_dict`` for JSON (tuples as lists) and
    ``from_dict`` back (lists as tuples where the field is a tuple; unknown keys ignored, so
    models stored by older versions still load)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        out = {}
        for key, value in values.items():
            if key not in known:
                continue
            default = known[key].default
            out[key] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
        return cls(**out)
