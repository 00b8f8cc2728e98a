"""An unmanaged (VHD page blob) disk, read from a blob snapshot, as a BlockSource.

Unmanaged VM disks are page blobs in the customer's storage account; Bulwark snapshots the blob
(``azure.pageblob.VhdBlobs.create_snapshot``) and reads the snapshot with the identity's Entra ID
credential. Like a managed snapshot, the blob ends in a 512-byte fixed-VHD footer that is not part
of the disk. ``changes_since(previous_snapshot)`` is Get Page Ranges with ``prevsnapshot``: changed
ranges are read, cleared ranges become holes.

The source id is the VHD's URL (without a snapshot), shared by every point of that disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from shared.azure.pageblob import DataPlaneOptions, PageBlobReader, to_change_set, vhd_disk_size
from shared.core.ranges import ChangeSet, Extent
from shared.engine.source import BlockSource

__all__ = ["PageBlobSnapshotSource"]


class PageBlobSnapshotSource:
    def __init__(
        self,
        vhd_uri: str,
        snapshot: str,
        *,
        options: DataPlaneOptions | None = None,
        source_id: str | None = None,
        reader: PageBlobReader | None = None,
    ) -> None:
        self._reader = reader if reader is not None else PageBlobReader(vhd_uri, snapshot=snapshot, options=options)
        self._source_id = source_id or vhd_uri
        self._snapshot = snapshot
        try:
            self._size = vhd_disk_size(self._reader)
        except BaseException:
            self._reader.close()
            raise

    @property
    def size(self) -> int:
        return self._size

    @property
    def source_id(self) -> str:
        return self._source_id

    @property
    def snapshot(self) -> str:
        return self._snapshot

    def allocated(self) -> Iterator[Extent]:
        for item in self._reader.page_ranges():
            end = min(item.end, self._size)
            if end > item.offset:
                yield Extent(item.offset, end - item.offset)

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self._size - offset))
        return self._reader.read(offset, length)

    def changes_since(self, previous_snapshot: str) -> ChangeSet:
        """What changed since an older blob snapshot of the same VHD."""
        return to_change_set(self._reader.diff_snapshot(previous_snapshot), self._size)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> PageBlobSnapshotSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


if TYPE_CHECKING:  # mypy checks that the class implements the engine's port

    def _conforms(source: PageBlobSnapshotSource) -> BlockSource:
        return source
