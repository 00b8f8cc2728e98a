"""Frozen dataclasses to and from JSON documents, with field-level problems and a JSON Schema.

A *document type* is a frozen dataclass whose field names are the JSON names and whose fields are
annotated with one of: ``str``, ``int``, ``bool``, ``datetime.time`` (``"HH:MM"``),
``datetime.datetime`` (ISO 8601 with a zone), a ``StrEnum``, another document type,
``tuple[T, ...]`` (a JSON array) or ``T | None`` (absent or ``null``). A field's metadata, made with
:func:`spec`, adds what JSON cannot say: a description, an example, bounds and a string format.

The three views are derived from the same declarations, so they cannot drift apart:

* :func:`decode` reads a document, rejects unknown fields with their path and collects *every*
  problem (never just the first) as :class:`~shared.core.errors.FieldProblem`;
* :func:`encode` writes the document (``None`` fields are left out, defaults are written);
* :func:`schema_definitions` gives JSON Schema (draft 2020-12, also OpenAPI 3.1) definitions.

Rules across fields (e.g. "monthly needs a day or a week") belong to the caller's own checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from shared.core.clock import format_time, parse_time
from shared.core.errors import FieldProblem, redact

__all__ = [
    "FieldSpec",
    "StringFormat",
    "decode",
    "encode",
    "field_names",
    "join_path",
    "required_field_names",
    "schema_definitions",
    "show",
    "spec",
]

T = TypeVar("T")

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_TIME_FIX = "use HH:MM, e.g. '02:30'"
_DATETIME_FIX = "use ISO 8601 with a zone, e.g. '2024-03-31T02:30:00Z'"


@dataclass(frozen=True)
class StringFormat:
    """A named rule for strings: ``check`` returns ``None`` or ``(message, fix)``."""

    name: str
    description: str
    check: Callable[[str], tuple[str, str] | None]
    pattern: str | None = None
    case_insensitive: bool = False
    """Values that differ only in case are the same value (ARM ids), e.g. for uniqueness."""


@dataclass(frozen=True)
class FieldSpec:
    description: str
    example: object = None
    minimum: int | None = None
    maximum: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    max_length: int | None = None
    format: StringFormat | None = None
    """For a tuple of strings, the format of each item."""
    unique: bool = False
    fix: str = ""
    """How to fill the field in when it is missing or of the wrong type (defaults to the example)."""
    range_fix: str = ""
    """What to do when a number is out of bounds (defaults to naming the bounds)."""
    if_string: tuple[str, str] | None = None
    """``(message, fix)`` when a string arrives where this object field belongs (e.g. a pasted secret)."""


def spec(description: str, **options: Any) -> dict[str, FieldSpec]:
    """Field metadata: ``field(metadata=spec("what it is", example=14, minimum=1))``."""
    return {"spec": FieldSpec(description, **options)}


def join_path(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def show(value: object) -> str:
    """A value quoted for a message: short, and with secrets redacted."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, default=str)
    text = redact(text)
    return text if len(text) <= 80 else text[:77] + "…'"


# -- decoding ---------------------------------------------------------------------------------------


def decode(cls: type[T], data: object, *, name: str = "the document") -> tuple[T | None, list[FieldProblem]]:
    """Read ``data`` (parsed JSON) as ``cls``; the value is ``None`` exactly when there are problems.

    ``name`` is what messages call the document itself, e.g. "the policy".
    """
    reader = _Reader(name)
    value = reader.read_object(cls, data, "")
    if reader.problems or value is _INVALID:
        return None, reader.problems
    return typing.cast(T, value), []


class _Invalid:
    pass


_INVALID: Any = _Invalid()


@dataclass(frozen=True)
class _Field:
    name: str
    annotation: Any
    spec: FieldSpec
    required: bool
    default: Any


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    result = []
    for item in dataclasses.fields(cls):
        field_spec = item.metadata.get("spec") or FieldSpec("")
        if item.default is not dataclasses.MISSING:
            default: Any = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = _INVALID
        result.append(_Field(item.name, hints[item.name], field_spec, default is _INVALID, default))
    return tuple(result)


def _optional_of(annotation: Any) -> Any | None:
    """``T`` for ``T | None``, else ``None``."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def _is_tuple(annotation: Any) -> bool:
    return typing.get_origin(annotation) is tuple


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _example_fix(field_spec: FieldSpec, fallback: str) -> str:
    if field_spec.fix:
        return field_spec.fix
    if field_spec.example is not None:
        return f"e.g. {json.dumps(field_spec.example)}"
    return fallback


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[FieldProblem] = []

    def problem(self, path: str, message: str, fix: str) -> Any:
        self.problems.append(FieldProblem(path, message, fix))
        return _INVALID

    def read_object(self, cls: type, data: object, path: str) -> Any:
        fields = _fields(cls)
        names = [item.name for item in fields]
        where = path or self.name
        if not isinstance(data, dict):
            return self.problem(path, f"is {_describe(data)}, not an object", f"use an object with {_list(names)}")
        values: dict[str, Any] = {}
        valid = True
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.problem(
                    join_path(path, str(key)),
                    f"is not a field of {where}",
                    f"{hint}the fields are {_list(names)}",
                )
                valid = False
        for item in fields:
            item_path = join_path(path, item.name)
            if item.name not in data:
                if item.required:
                    self.problem(item_path, "is missing", _example_fix(item.spec, "add it"))
                    valid = False
                else:
                    values[item.name] = item.default
                continue
            value = self.value(item.annotation, data[item.name], item_path, item.spec)
            if value is _INVALID:
                valid = False
            else:
                values[item.name] = value
        return cls(**values) if valid else _INVALID

    def value(self, annotation: Any, data: object, path: str, field_spec: FieldSpec) -> Any:
        inner = _optional_of(annotation)
        if inner is not None:
            return None if data is None else self.value(inner, data, path, field_spec)
        if data is None:
            return self.problem(path, "is null", _example_fix(field_spec, "give it a value or leave it out"))
        if _is_tuple(annotation):
            return self.array(typing.get_args(annotation)[0], data, path, field_spec)
        if dataclasses.is_dataclass(annotation):
            if isinstance(data, str) and field_spec.if_string is not None:
                return self.problem(path, *field_spec.if_string)
            return self.read_object(typing.cast(type, annotation), data, path)
        if annotation is bool:
            if not isinstance(data, bool):
                return self.problem(path, f"is {_describe(data)}, not true or false", "use true or false")
            return data
        if annotation is int:
            return self.integer(data, path, field_spec)
        if annotation is str:
            return self.string(data, path, field_spec)
        if annotation is dt.time:
            if not isinstance(data, str) or not _TIME_OF_DAY.match(data):
                shown = show(data) if isinstance(data, str) else f"{_describe(data)},"
                return self.problem(path, f"{shown} is not a time of day", _TIME_FIX)
            hour, minute = data.split(":")
            return dt.time(int(hour), int(minute))
        if annotation is dt.datetime:
            if isinstance(data, str):
                try:
                    return parse_time(data)
                except ValueError:
                    pass
            return self.problem(path, f"{show(data)} is not a date and time with a zone", _DATETIME_FIX)
        if isinstance(annotation, type) and issubclass(annotation, StrEnum):
            return self.enum(annotation, data, path)
        raise TypeError(f"{path}: the codec does not support {annotation!r}")  # a programming error

    def integer(self, data: object, path: str, field_spec: FieldSpec) -> Any:
        bounds = _bounds(field_spec)
        if isinstance(data, bool) or not isinstance(data, int):
            return self.problem(path, f"is {_describe(data)}, not a whole number", f"use a whole number{bounds}")
        too_low = field_spec.minimum is not None and data < field_spec.minimum
        too_high = field_spec.maximum is not None and data > field_spec.maximum
        if too_low or too_high:
            return self.problem(path, f"{data} is out of range", field_spec.range_fix or f"use a whole number{bounds}")
        return data

    def string(self, data: object, path: str, field_spec: FieldSpec) -> Any:
        if not isinstance(data, str):
            return self.problem(path, f"is {_describe(data)}, not a string", _example_fix(field_spec, "use a string"))
        if field_spec.max_length is not None and len(data) > field_spec.max_length:
            return self.problem(
                path, f"is {len(data)} characters long", f"shorten it to {field_spec.max_length} characters"
            )
        if field_spec.format is not None:
            problem = field_spec.format.check(data)
            if problem is not None:
                return self.problem(path, *problem)
        return data

    def enum(self, cls: type[StrEnum], data: object, path: str) -> Any:
        choices = [member.value for member in cls]
        fix = f"use one of {_list(choices)}"
        if not isinstance(data, str):
            return self.problem(path, f"is {_describe(data)}, not one of the names", fix)
        try:
            return cls(data)
        except ValueError:
            # An enum may name other spellings it accepts (``aliases()``: alias -> member) to suggest from.
            aliases: dict[str, str] = {choice: choice for choice in choices}
            extra = getattr(cls, "aliases", None)
            if callable(extra):
                aliases.update({alias: member.value for alias, member in extra().items()})
            close = difflib.get_close_matches(data.lower(), list(aliases), n=1)
            hint = f"did you mean '{aliases[close[0]]}'? " if close else ""
            return self.problem(path, f"{show(data)} is not one of the accepted values", f"{hint}{fix}")

    def array(self, item_type: Any, data: object, path: str, field_spec: FieldSpec) -> Any:
        if not isinstance(data, list):
            return self.problem(path, f"is {_describe(data)}, not a list", _example_fix(field_spec, "use a list"))
        if field_spec.min_items is not None and len(data) < field_spec.min_items:
            needed = "at least one item" if field_spec.min_items == 1 else f"at least {field_spec.min_items} items"
            return self.problem(path, "is empty" if not data else f"has {len(data)} items", f"list {needed}")
        if field_spec.max_items is not None and len(data) > field_spec.max_items:
            return self.problem(path, f"has {len(data)} items", f"list at most {field_spec.max_items}")
        item_spec = dataclasses.replace(field_spec, min_items=None, max_items=None)
        items = [self.value(item_type, item, join_path(path, index), item_spec) for index, item in enumerate(data)]
        if any(item is _INVALID for item in items):
            return _INVALID
        if field_spec.unique:
            fold = field_spec.format is not None and field_spec.format.case_insensitive
            seen: dict[object, int] = {}
            for index, item in enumerate(items):
                key = item.lower() if fold and isinstance(item, str) else item
                if key in seen:
                    return self.problem(
                        join_path(path, index),
                        f"repeats {join_path(path, seen[key])}" + (" (ids ignore case)" if fold else ""),
                        "remove the duplicate",
                    )
                seen[key] = index
        return tuple(items)


def _bounds(field_spec: FieldSpec) -> str:
    low, high = field_spec.minimum, field_spec.maximum
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def _list(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


# -- encoding ---------------------------------------------------------------------------------------


def encode(value: object) -> Any:
    """The JSON form of a document value (dicts, lists, strings, numbers, booleans)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        result: dict[str, Any] = {}
        for item in _fields(type(value)):
            field_value = getattr(value, item.name)
            if field_value is not None:
                result[item.name] = encode(field_value)
        return result
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return value


# -- JSON Schema ------------------------------------------------------------------------------------


def schema_definitions(root: type, *, ref_prefix: str = "#/$defs/") -> dict[str, dict[str, Any]]:
    """JSON Schema definitions of ``root`` and every document type it uses, keyed by class name.

    ``ref_prefix`` is where the definitions will live: ``#/$defs/`` in a standalone schema,
    ``#/components/schemas/`` in an OpenAPI 3.1 description.
    """
    definitions: dict[str, dict[str, Any]] = {}
    _define(root, definitions, ref_prefix)
    return definitions


def _define(cls: type, definitions: dict[str, dict[str, Any]], ref_prefix: str) -> None:
    if cls.__name__ in definitions:
        return
    definitions[cls.__name__] = {}  # placeholder against cycles
    properties: dict[str, Any] = {}
    required: list[str] = []
    for item in _fields(cls):
        schema = _schema_of(item.annotation, item.spec, definitions, ref_prefix)
        if item.spec.description:
            schema = {"description": item.spec.description, **schema}
        if item.required:
            required.append(item.name)
        elif item.default is not None:
            schema["default"] = encode(item.default)
        if item.spec.example is not None:
            schema["examples"] = [item.spec.example]
        properties[item.name] = schema
    definition: dict[str, Any] = {"type": "object"}
    doc = _first_paragraph(cls.__doc__)
    if doc:
        definition["description"] = doc
    definition["properties"] = properties
    if required:
        definition["required"] = required
    definition["additionalProperties"] = False
    definitions[cls.__name__] = definition


def _schema_of(annotation: Any, field_spec: FieldSpec, definitions: dict[str, dict[str, Any]], prefix: str) -> Any:
    inner = _optional_of(annotation)
    if inner is not None:
        return {"anyOf": [_schema_of(inner, field_spec, definitions, prefix), {"type": "null"}]}
    if _is_tuple(annotation):
        item_spec = dataclasses.replace(field_spec, min_items=None, max_items=None, description="")
        schema: dict[str, Any] = {
            "type": "array",
            "items": _schema_of(typing.get_args(annotation)[0], item_spec, definitions, prefix),
        }
        if field_spec.min_items is not None:
            schema["minItems"] = field_spec.min_items
        if field_spec.max_items is not None:
            schema["maxItems"] = field_spec.max_items
        if field_spec.unique:
            schema["uniqueItems"] = True
        return schema
    if dataclasses.is_dataclass(annotation):
        cls = typing.cast(type, annotation)
        _define(cls, definitions, prefix)
        return {"$ref": f"{prefix}{cls.__name__}"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        schema = {"type": "integer"}
        if field_spec.minimum is not None:
            schema["minimum"] = field_spec.minimum
        if field_spec.maximum is not None:
            schema["maximum"] = field_spec.maximum
        return schema
    if annotation is str:
        schema = {"type": "string"}
        if field_spec.max_length is not None:
            schema["maxLength"] = field_spec.max_length
        if field_spec.format is not None:
            schema["x-bulwark-format"] = field_spec.format.name
            if field_spec.format.pattern:
                schema["pattern"] = field_spec.format.pattern
            schema["description"] = field_spec.format.description
        return schema
    if annotation is dt.time:
        return {"type": "string", "pattern": _TIME_OF_DAY.pattern, "description": "a time of day, HH:MM"}
    if annotation is dt.datetime:
        return {"type": "string", "format": "date-time"}
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return {"type": "string", "enum": [member.value for member in annotation]}
    raise TypeError(f"the codec does not support {annotation!r}")


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(item.name for item in _fields(cls))


def required_field_names(cls: type) -> tuple[str, ...]:
    return tuple(item.name for item in _fields(cls) if item.required)
