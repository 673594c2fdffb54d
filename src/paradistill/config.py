"""Dataclass configs from dicts / YAML, with strict keys and `key=value` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")


def closest_hint(key: str, valid: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest valid key, or ''."""
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (float, str)) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except ValueError:
            as_float = None
        if as_float is not None and as_float.is_integer():
            return int(as_float)
    raise UserError(f"{where}: expected an integer, got {value!r}")


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise UserError(f"{where}: expected a number, got {value!r}")


def _to_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise UserError(f"{where}: expected true/false, got {value!r}")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert `value` to the annotated type `tp`, raising UserError naming `where` on mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        first_error = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UserError as e:
                first_error = first_error or e
        raise first_error or UserError(f"{where}: cannot be None")
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{where}: {value!r} is not one of {list(args)}{closest_hint(str(value), [str(a) for a in args])}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, where) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where=where)
    if tp is bool:
        return _to_bool(value, where)
    if tp is int:
        return _to_int(value, where)
    if tp is float:
        return _to_float(value, where)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data`; unknown keys and wrong types raise UserError naming the key."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise UserError(f"{where}: unknown key '{key}'{closest_hint(key, list(fields))}; "
                            f"valid keys: {', '.join(sorted(fields))}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    try:
        obj = cls(**kwargs)
    except TypeError as e:
        raise UserError(f"{where}: {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def check_ranges(obj: Any, section: str, ranges: dict[str, tuple]) -> None:
    """Raise a UserError naming `section.key` when a field is outside its range. A range is (low, high): low
    inclusive or None; high inclusive, None, or "<x" for an exclusive bound. None values are skipped."""
    for key, (low, high) in ranges.items():
        value = getattr(obj, key)
        if value is None:
            continue
        exclusive = isinstance(high, str)
        top = float(high[1:]) if exclusive else high
        ok = (low is None or value >= low) and (top is None or (value < top if exclusive else value <= top))
        if not ok or value != value:  # NaN is never in range
            if top is None:
                want = f">= {low}"
            elif low is None:
                want = f"{'<' if exclusive else '<='} {top:g}"
            else:
                want = f"in [{low:g}, {top:g}{')' if exclusive else ']'}"
            name = f"--{key.replace('_', '-')} " if section == "--" else f"{section}.{key}="
            raise UserError(f"{name}{value}: must be {want}")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` strings to a nested dict (values parsed as YAML scalars)."""
    import copy

    import yaml

    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override '{item}' is not of the form key=value (e.g. train.max_steps=200)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node.setdefault(part, {})
            if not isinstance(node[part], dict):
                raise UserError(f"override '{item}': '{part}' is not a section")
            node = node[part]
        node[parts[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"recipe file '{p}' does not exist: pass a recipe name (see `paradistill recipes`) or a YAML path")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"recipe file '{p}' is not valid YAML: {e}") from None
    if data is None:
        raise UserError(f"recipe file '{p}' is empty")
    if not isinstance(data, dict):
        raise UserError(f"recipe file '{p}' must be a mapping of sections, got {type(data).__name__}")
    return data
