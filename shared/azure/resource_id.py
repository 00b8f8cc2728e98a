"""ARM resource ids: parse, compare (case-insensitively, as ARM does) and format.

``/subscriptions/{sub}/resourceGroups/{rg}/providers/{Namespace}/{type}/{name}[/{child type}/{child name}...]``
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.errors import UsageError

__all__ = ["ResourceId", "same_resource"]

_EXAMPLE = "/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>"


@dataclass(frozen=True)
class ResourceId:
    subscription: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, *, expect: str | None = None) -> ResourceId:
        """Parse an ARM id; ``expect`` (e.g. ``"Microsoft.Compute/disks"``) checks the resource type."""
        parts = text.strip().strip("/").split("/")
        ok = (
            len(parts) >= 8
            and len(parts) % 2 == 0
            and parts[0].lower() == "subscriptions"
            and parts[2].lower() == "resourcegroups"
            and parts[4].lower() == "providers"
            and all(parts)
        )
        if not ok:
            raise UsageError(f"'{text}' is not an Azure resource id", hint=f"expected {_EXAMPLE}")
        rest = parts[6:]
        parsed = cls(
            subscription=parts[1],
            resource_group=parts[3],
            namespace=parts[5],
            types=tuple(rest[0::2]),
            names=tuple(rest[1::2]),
        )
        if expect is not None and parsed.kind.lower() != expect.lower():
            raise UsageError(
                f"'{text}' is a {parsed.kind}, not a {expect}",
                hint=f"pass the id of a {expect.rsplit('/', 1)[-1].rstrip('s')}",
            )
        return parsed

    @property
    def kind(self) -> str:
        """``Namespace/type[/child type...]``, e.g. ``Microsoft.Sql/servers/databases``."""
        return "/".join((self.namespace, *self.types))

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def key(self) -> str:
        """The lower-cased id: equal keys name the same resource."""
        return str(self).lower()

    def parent(self) -> ResourceId:
        if len(self.names) < 2:
            raise UsageError(f"{self} has no parent resource")
        return ResourceId(self.subscription, self.resource_group, self.namespace, self.types[:-1], self.names[:-1])

    def __str__(self) -> str:
        tail = "/".join(f"{t}/{n}" for t, n in zip(self.types, self.names, strict=True))
        group = f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
        return f"{group}/providers/{self.namespace}/{tail}"


def same_resource(a: str, b: str) -> bool:
    """True if two ARM ids name the same resource (ARM ids are case-insensitive)."""
    return a.strip("/").lower() == b.strip("/").lower()
