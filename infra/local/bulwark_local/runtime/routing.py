"""HTTP trigger route templates, matched the way ASP.NET Core routing (and so Functions) does.

Supported: literal segments (case-insensitive), ``{name}``, optional ``{name?}``, defaults
``{name=value}``, catch-all ``{*name}``, the common constraints ``{name:int}``, ``:long``,
``:alpha``, ``:bool``, ``:guid``, ``:double`` (others are accepted without checking) and
parameters inside a segment (``{name}.{ext}``). When several routes match, the most specific wins:
literals beat constrained parameters, which beat plain, optional and catch-all parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["RouteTemplate"]

_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "double": r"-?\d+(?:\.\d+)?",
}
_PARAMETER = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class RouteTemplate:
    text: str
    pattern: re.Pattern[str]
    defaults: tuple[tuple[str, str], ...]
    precedence: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> RouteTemplate:
        segments = [segment for segment in text.strip("/").split("/") if segment]
        regex = ""
        defaults: list[tuple[str, str]] = []
        precedence: list[int] = []
        for segment in segments:
            part, rank, optional = cls._segment(segment, defaults)
            regex += f"(?:/{part})?" if optional else f"/{part}"
            precedence.append(rank)
        return cls(
            text=text,
            pattern=re.compile(f"^{regex}/?$", re.IGNORECASE),
            defaults=tuple(defaults),
            precedence=tuple(precedence),
        )

    @staticmethod
    def _segment(segment: str, defaults: list[tuple[str, str]]) -> tuple[str, int, bool]:
        regex, position, rank, optional = "", 0, 0, False
        for match in _PARAMETER.finditer(segment):
            regex += re.escape(segment[position : match.start()])
            position = match.end()
            spec = match.group(1)
            catch_all = spec.startswith("*")
            spec = spec.lstrip("*")
            spec, _, default = spec.partition("=")
            optional = spec.endswith("?") or bool(default) or catch_all
            spec = spec.rstrip("?")
            name, *constraints = spec.split(":")
            if default:
                defaults.append((name, default))
            if catch_all:
                body, rank = ".*", 4
            elif constraints and constraints[0] in _CONSTRAINTS:
                body, rank = _CONSTRAINTS[constraints[0]], max(rank, 1)
            else:
                body, rank = "[^/]+", max(rank, 3 if optional else 2)
            regex += f"(?P<{name}>{body})"
        regex += re.escape(segment[position:])
        return regex, rank, optional

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for ``path`` (the part after the route prefix), or ``None``."""
        found = self.pattern.match("/" + path.strip("/") if path.strip("/") else "")
        if found is None:
            return None
        values = {name: unquote(value) for name, value in found.groupdict().items() if value}
        for name, default in self.defaults:
            values.setdefault(name, default)
        return values
