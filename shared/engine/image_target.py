"""Where a restored disk image is written: a new sparse file, with direct I/O where it works.

A restored image is written once and not read back soon. Going through the page cache would make
the kernel allocate (and on a VM, often fault in) a page per 4 KiB written and evict everything
else cached, so whole aligned blocks are written with O_DIRECT from a page-aligned buffer per
thread. File systems without O_DIRECT, and unaligned pieces (a short last block), use ordinary
writes. Holes are never written, so the file stays sparse.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from pathlib import Path
from types import TracebackType

from shared.core.errors import SourceError, UsageError

__all__ = ["ImageTarget"]

_ALIGN = 4096  # covers 512-byte and 4 KiB logical sectors


class ImageTarget:
    def __init__(self, path: Path, size: int, *, overwrite: bool, block_size: int) -> None:
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists", hint="choose a new file, or pass --overwrite")
        if path.exists() and not path.is_file():
            raise UsageError(f"{path} is not a regular file", hint="restore into a file path")
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
        self._path = path
        self._block_size = block_size
        self._local = threading.local()
        try:
            os.ftruncate(self._fd, size)  # everything not written stays a hole
        except OSError as exc:
            self.discard()
            raise SourceError(f"cannot size {path} to {size} bytes: {exc.strerror}") from exc
        self._direct: int | None = None
        if hasattr(os, "O_DIRECT"):
            try:
                self._direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                self._direct = None  # e.g. tmpfs: ordinary writes it is

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset``; safe from several threads for distinct ranges."""
        direct = self._direct
        if direct is not None and offset % _ALIGN == 0 and len(data) % _ALIGN == 0 and len(data) <= self._block_size:
            buffer: mmap.mmap | None = getattr(self._local, "buffer", None)
            if buffer is None:
                buffer = self._local.buffer = mmap.mmap(-1, self._block_size)  # page-aligned
            buffer[: len(data)] = data
            try:
                os.pwrite(direct, memoryview(buffer)[: len(data)], offset)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct = None  # stricter alignment than we assumed: stop trying
        os.pwrite(self._fd, data, offset)

    def close(self) -> None:
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        os.close(self._fd)

    def discard(self) -> None:
        """Close and remove the file: nothing half-written is left behind."""
        try:
            self.close()
        finally:
            self._path.unlink(missing_ok=True)

    def __enter__(self) -> ImageTarget:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self.discard()
