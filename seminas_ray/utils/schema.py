"""Typed validation of settings dictionaries (YAML files, ``--set`` overrides) against a frozen dataclass.

Why: a value of the wrong type (``--set valid_fraction=abc``, ``--set controller=5``) used to reach a comparison or
an attribute access deep inside the config class and end in a traceback. A strict pydantic model with the
dataclass's own fields, types and defaults checks types first and names the setting; the dataclass keeps its range
checks and stays the one definition of the defaults.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import ValidationError
from pydantic import create_model

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def dataclass_schema(cls: type, nested: dict[str, type[BaseModel]] | None = None) -> type[BaseModel]:
    """A strict model (no coercion, no unknown keys, no inf/nan) with the fields and defaults of dataclass ``cls``;
    ``nested`` replaces the type of fields that are dataclasses themselves with their own schema."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            default = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        else:
            default = ...
        fields[f.name] = ((nested or {}).get(f.name, hints[f.name]), default)
    return create_model(f"{cls.__name__}Settings", __config__=_STRICT, **fields)


def validate_settings(schema: type[BaseModel], data: Any, what: str) -> dict[str, Any]:
    """``data`` checked against ``schema`` (defaults filled in); one ``ValueError`` naming the first bad setting."""
    try:
        return schema.model_validate(data).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(all)"
        if first["type"] == "model_type":
            first = dict(first, msg="Input should be a mapping of settings (e.g. controller.hidden_size=32)")
        raise ValueError(f"{what} setting {where}: {first['msg']}, got {first.get('input')!r} "
                         f"(fix it in the --config file or --set)") from None


__all__ = ["dataclass_schema", "validate_settings"]
