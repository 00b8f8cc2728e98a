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

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from shared.azure.model import SasUrl
from shared.azure.pageblob import DataPlaneOptions, PageBlobReader, to_change_set, vhd_disk_size
from shared.core.ranges import ChangeSet, Extent
from shared.engine.source import BlockSource

__all__ = ["ManagedDiskSnapshotSource"]


class ManagedDiskSnapshotSource:
    def __init__(
        self,
        sas: SasUrl,
        *,
        source_id: str,
        options: DataPlaneOptions | None = None,
        renew: Callable[[], SasUrl] | None = None,
        reader: PageBlobReader | None = None,
    ) -> None:
        self._reader = reader if reader is not None else PageBlobReader(sas, options=options, renew=renew)
        self._source_id = source_id
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
    def renewals(self) -> int:
        """How often a refused SAS was replaced through ``renew``."""
        return self._reader.renewals

    @property
    def address(self) -> str:
        """Where the snapshot is read from, without the SAS: for logs."""
        return self._reader.address

    def allocated(self) -> Iterator[Extent]:
        for item in self._reader.page_ranges():
            end = min(item.end, self._size)  # the footer is not part of the disk
            if end > item.offset:
                yield Extent(item.offset, end - item.offset)

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self._size - offset))
        return self._reader.read(offset, length)

    def changes_since(self, previous: SasUrl) -> ChangeSet:
        """What changed since ``previous`` (a SAS of an older snapshot of the same disk, still valid)."""
        return to_change_set(self._reader.diff_managed(previous), self._size)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> ManagedDiskSnapshotSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


if TYPE_CHECKING:  # mypy checks that the class implements the engine's port

    def _conforms(source: ManagedDiskSnapshotSource) -> BlockSource:
        return source
