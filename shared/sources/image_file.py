"""A raw disk image (or block device) on the local file system as a BlockSource."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from shared.core.errors import SourceError
from shared.core.ranges import Extent

__all__ = ["ImageFileSource"]


class ImageFileSource:
    """Reads with pread (thread-safe); finds data with SEEK_DATA/SEEK_HOLE so holes cost nothing."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise SourceError(f"image {path} does not exist") from exc
        except OSError as exc:
            raise SourceError(f"cannot open image {path}: {exc.strerror}") from exc
        mode = os.fstat(self._fd).st_mode
        if stat.S_ISDIR(mode):
            os.close(self._fd)
            raise SourceError(f"{path} is a directory, not a disk image")
        self._size = os.lseek(self._fd, 0, os.SEEK_END)

    @property
    def size(self) -> int:
        return self._size

    @property
    def source_id(self) -> str:
        return str(self._path.resolve())

    def allocated(self) -> Iterator[Extent]:
        pos = 0
        while pos < self._size:
            try:
                start = os.lseek(self._fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    return
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no hole support: all data
                    yield Extent(pos, self._size - pos)
                    return
                raise SourceError(f"cannot map the data of {self._path}: {exc.strerror}") from exc
            end = os.lseek(self._fd, start, os.SEEK_HOLE)
            yield Extent(start, end - start)
            pos = end

    def read(self, offset: int, length: int) -> bytes:
        try:
            return os.pread(self._fd, length, offset)
        except OSError as exc:
            raise SourceError(f"cannot read {self._path} at offset {offset}: {exc.strerror}") from exc

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> ImageFileSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
