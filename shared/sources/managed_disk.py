"""A managed-disk snapshot, read through the SAS that ``beginGetAccess`` granted, as a BlockSource.

The SAS names a page blob of ``diskSizeBytes + 512`` bytes whose last page is a fixed-VHD footer;
the source is the disk the guest sees (the blob less the footer), so restore points hold the disk
and a restore to an upload disk writes a fresh footer.

* full backup: ``allocated()`` is Get Page Ranges (every page of the listing), so holes the guest
  never wrote or trimmed are not even read;
* incremental backup: ``changes_since(previous_sas)`` is Get Page Ranges Diff against the previous
  image-level snapshot of the same disk (``x-ms-previous-snapshot-url``, every page over
  ``NextMarker``): changed ranges are read, cleared ranges become holes (see shared.core.ranges);
* ``read()`` is one ranged GET per call, safe from several threads, retried on connection resets;
  with ``renew`` (e.g. ``lambda: compute.grant_read(snapshot_id)``) a SAS refused mid-backup
  (expired or revoked early) is replaced and the read goes on.

The source id is the disk's resource id (not the snapshot's), so every point of one disk shares it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.azure.model import SasUrl
from shared.azure.pageblob import DataPlaneOptions, PageBlobReader, to_change_set
from shared.core.ranges import ChangeSet
from shared.engine.source import BlockSource
from shared.sources.vhd import VhdPageBlobSource

__all__ = ["ManagedDiskSnapshotSource"]


class ManagedDiskSnapshotSource(VhdPageBlobSource):
    def __init__(
        self,
        sas: SasUrl,
        *,
        source_id: str,
        options: DataPlaneOptions | None = None,
        renew: Callable[[], SasUrl] | None = None,
        reader: PageBlobReader | None = None,
    ) -> None:
        super().__init__(reader if reader is not None else PageBlobReader(sas, options=options, renew=renew), source_id)

    @property
    def renewals(self) -> int:
        """How often a refused SAS was replaced through ``renew``."""
        return self._reader.renewals

    def changes_since(self, previous: SasUrl) -> ChangeSet:
        """What changed since ``previous`` (a SAS of an older snapshot of the same disk, still valid)."""
        return to_change_set(self._reader.diff_managed(previous), self._size)


if TYPE_CHECKING:  # mypy checks that the class implements the engine's port

    def _conforms(source: ManagedDiskSnapshotSource) -> BlockSource:
        return source
