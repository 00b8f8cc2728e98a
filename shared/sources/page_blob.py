"""An unmanaged (VHD page blob) disk, read from a blob snapshot, as a BlockSource.

Unmanaged VM disks are page blobs in the customer's storage account; Bulwark snapshots the blob
(``azure.pageblob.VhdBlobs.create_snapshot``) and reads the snapshot with the identity's Entra ID
credential. Like a managed snapshot, the blob ends in a 512-byte fixed-VHD footer that is not part
of the disk. ``changes_since(previous_snapshot)`` is Get Page Ranges with ``prevsnapshot``: changed
ranges are read, cleared ranges become holes.

The source id is the VHD's URL (without a snapshot), shared by every point of that disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.azure.pageblob import DataPlaneOptions, PageBlobReader, to_change_set
from shared.core.ranges import ChangeSet
from shared.engine.source import BlockSource
from shared.sources.vhd import VhdPageBlobSource

__all__ = ["PageBlobSnapshotSource"]


class PageBlobSnapshotSource(VhdPageBlobSource):
    def __init__(
        self,
        vhd_uri: str,
        snapshot: str,
        *,
        options: DataPlaneOptions | None = None,
        source_id: str | None = None,
        reader: PageBlobReader | None = None,
    ) -> None:
        super().__init__(
            reader if reader is not None else PageBlobReader(vhd_uri, snapshot=snapshot, options=options),
            source_id or vhd_uri,
        )
        self._snapshot = snapshot

    @property
    def snapshot(self) -> str:
        return self._snapshot

    def changes_since(self, previous_snapshot: str) -> ChangeSet:
        """What changed since an older blob snapshot of the same VHD."""
        return to_change_set(self._reader.diff_snapshot(previous_snapshot), self._size)


if TYPE_CHECKING:  # mypy checks that the class implements the engine's port

    def _conforms(source: PageBlobSnapshotSource) -> BlockSource:
        return source
