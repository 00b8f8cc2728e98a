"""What every fixed-VHD page blob source shares: the disk is the blob less its 512-byte footer.

Managed-disk snapshots (read through a SAS) and unmanaged disks (blob snapshots of a VHD page
blob) differ only in how the blob is reached and how a diff is asked for; sizing, allocated
ranges, reads and closing live here once.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Self

from shared.azure.pageblob import PageBlobReader, vhd_disk_size
from shared.core.ranges import Extent

__all__ = ["VhdPageBlobSource"]


class VhdPageBlobSource:
    def __init__(self, reader: PageBlobReader, source_id: str) -> None:
        self._reader = reader
        self._source_id = source_id
        try:
            self._size = vhd_disk_size(reader)
        except BaseException:
            reader.close()
            raise

    @property
    def size(self) -> int:
        return self._size

    @property
    def source_id(self) -> str:
        return self._source_id

    @property
    def address(self) -> str:
        """Where the blob is read from, without any SAS: for logs."""
        return self._reader.address

    def allocated(self) -> Iterator[Extent]:
        for item in self._reader.page_ranges():
            end = min(item.end, self._size)  # the footer is not part of the disk
            if end > item.offset:
                yield Extent(item.offset, end - item.offset)

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self._size - offset))
        return self._reader.read(offset, length)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
