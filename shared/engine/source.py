"""The port the backup engine reads disks through.

Contract: ``size`` is the disk's length in bytes. ``allocated()`` yields ascending,
non-overlapping extents outside of which the disk reads as zeros (a source that cannot tell
yields one extent covering the disk). ``read`` returns exactly ``length`` bytes (short only at
the end of the disk), is safe to call from several threads at once, and raises SourceError
(TransientSourceError-free: retrying is the source's own business) when the data cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from shared.core.ranges import Extent

__all__ = ["BlockSource"]


class BlockSource(Protocol):
    @property
    def size(self) -> int: ...

    @property
    def source_id(self) -> str:
        """A stable name for the disk (a path, an Azure resource id)."""

    def allocated(self) -> Iterator[Extent]: ...

    def read(self, offset: int, length: int) -> bytes: ...
