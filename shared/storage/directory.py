"""A blob store in a local (or mounted) directory: one file per key.

Layout: the key ``packs/ab/abcd`` is the file ``<root>/packs/ab/abcd``. Names that start with a dot
are the store's own: ``.tmp-*`` files are puts in progress, ``.lease-<name>`` holds the lease state
of the object ``<name>`` next to it. ``list`` skips them, and keys may not contain such names.
A key cannot also be the folder of another key (``a`` and ``a/b``); repository keys never are.

Crash safety: a put writes a temporary file in the target folder, fsyncs it, then moves it into place
(``os.replace`` to overwrite, ``os.link`` to create without overwriting, which fails atomically when the
key exists) and fsyncs the folder, so after a crash a key holds either its old or its new content.

Leases: the state (owner and expiry, JSON) lives in the ``.lease-<name>`` file, which is never replaced
or deleted, so every acquire, renew and release can read, decide and write under ``flock`` on it. The
kernel drops a flock when its holder dies; the lease itself outlives the process until it expires.
This needs a file system with working ``flock`` (local disks do; some network file systems do not).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from shared.core.errors import (
    BlobExistsError,
    BlobNotFoundError,
    LeaseHeldError,
    StorageError,
    TransientStorageError,
    UsageError,
)
from shared.storage.port import BlobInfo, BlobStore, Buffer

__all__ = [
    "MAX_LEASE_SECONDS",
    "DirectoryLease",
    "DirectoryStore",
    "DirectoryWriter",
    "check_key",
    "check_lease_ttl",
]

MAX_LEASE_SECONDS = 60
"""Longest lease any store grants (Azure's limit); holders renew well within it."""

_TMP_PREFIX = ".tmp-"
# Stale temporaries of other hosts are only swept after this long: we cannot see their processes.
_FOREIGN_TMP_AGE = 24 * 3600


def _tmp_prefix() -> str:
    """Temporaries name their writer, so ``sweep`` can tell a dead put from a running one."""
    return f"{_TMP_PREFIX}{socket.gethostname()}.{os.getpid()}."


def _tmp_is_dead(name: str, age: float) -> bool:
    parts = name[len(_TMP_PREFIX) :].split(".")
    if len(parts) < 3 or not parts[-2].isdigit():
        return age > _FOREIGN_TMP_AGE
    host, pid = ".".join(parts[:-2]), int(parts[-2])
    if host != socket.gethostname():
        return age > _FOREIGN_TMP_AGE
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_LEASE_PREFIX = ".lease-"
_TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.EINTR})


def check_key(key: str) -> None:
    """Raise UsageError unless ``key`` follows the port's key rules.

    A key is ``/``-separated segments of printable ASCII; no segment is empty or starts with a dot
    (that also rules out ``.`` and ``..``). Every store applies these rules, so a repository that
    works on one store works on all of them.
    """
    if not key:
        raise UsageError("A blob key must not be empty.")
    if not all(" " <= char <= "~" for char in key):
        raise UsageError(f"Blob key {key!r} must be printable ASCII.")
    for segment in key.split("/"):
        if not segment:
            raise UsageError(f"Blob key {key!r} has an empty segment or a leading or trailing '/'.")
        if segment.startswith("."):
            raise UsageError(f"Blob key {key!r} has a segment starting with '.', which stores reserve.")


def check_lease_ttl(ttl_seconds: int) -> None:
    """Raise UsageError unless ``1 <= ttl_seconds <= MAX_LEASE_SECONDS``."""
    if not 1 <= ttl_seconds <= MAX_LEASE_SECONDS:
        raise UsageError(
            f"A lease lasts 1 to {MAX_LEASE_SECONDS} seconds, not {ttl_seconds}.",
            hint="keep the ttl short and renew the lease while you hold it",
        )


class DirectoryStore:
    """The blob-store port over a directory tree."""

    def __init__(self, root: Path, *, fsync: bool = True, clock: Callable[[], float] = time.time) -> None:
        self._root = Path(root)
        self._fsync = fsync
        self._clock = clock

    def describe(self) -> str:
        return str(self._root)

    # -- objects -------------------------------------------------------------------------------------

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None:
        path = self._path(key)
        try:
            self._make_parents(path.parent)
            fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(), dir=path.parent)
        except OSError as exc:
            raise _translate(exc, key, self.describe()) from exc
        tmp = Path(tmp_name)
        try:
            try:
                _write_all(fd, memoryview(data))
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if overwrite:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)
                tmp.unlink()
            if self._fsync:
                _fsync_dir(path.parent)
        except FileExistsError as exc:
            raise BlobExistsError(f"Object '{key}' already exists in {self.describe()}.") from exc
        except OSError as exc:
            raise _translate(exc, key, self.describe()) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise UsageError(f"Invalid range offset={offset} length={length} for '{key}'.")
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise _translate(exc, key, self.describe()) from exc
        try:
            available = max(os.fstat(fd).st_size - offset, 0)
            length = available if length is None else min(length, available)
            chunks: list[bytes] = []
            while length > 0:
                chunk = os.pread(fd, length, offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                length -= len(chunk)
        except OSError as exc:
            raise _translate(exc, key, self.describe()) from exc
        finally:
            os.close(fd)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except OSError as exc:
            raise _translate(exc, key, self.describe()) from exc
        if not stat.S_ISREG(st.st_mode):
            raise BlobNotFoundError(f"No object '{key}' in {self.describe()}.")
        return BlobInfo(key=key, size=st.st_size, modified=st.st_mtime)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        # Start at the deepest folder the prefix names, then filter by the rest of it.
        folder, _, _ = prefix.rpartition("/")
        if folder:
            try:
                check_key(folder)
            except UsageError:
                return  # no key lies under a folder that is not a key (and we never leave the root)
        start = f"{folder}/" if folder else ""
        try:
            yield from self._walk(self._root / folder if folder else self._root, start, prefix)
        except OSError as exc:
            raise _translate(exc, prefix, self.describe()) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise _translate(exc, key, self.describe()) from exc

    def open_writer(self, key: str) -> DirectoryWriter:
        path = self._path(key)
        try:
            self._make_parents(path.parent)
            fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(), dir=path.parent)
        except OSError as exc:
            raise _translate(exc, key, self.describe()) from exc
        return DirectoryWriter(self, key, path, fd, Path(tmp_name))

    def sweep(self) -> int:
        freed = 0
        now = self._clock()
        for folder, _, files in os.walk(self._root):
            for name in files:
                if not name.startswith(_TMP_PREFIX):
                    continue
                path = Path(folder, name)
                try:
                    info = path.stat()
                    if _tmp_is_dead(name, now - info.st_mtime):
                        path.unlink()
                        freed += info.st_size
                except FileNotFoundError:
                    continue  # its put finished or another sweep got it
                except OSError as exc:
                    raise _translate(exc, str(path.relative_to(self._root)), self.describe()) from exc
        return freed

    # -- leases --------------------------------------------------------------------------------------

    def acquire_lease(self, key: str, *, ttl_seconds: int) -> DirectoryLease:
        check_lease_ttl(ttl_seconds)
        with suppress(BlobExistsError):
            self.put(key, b"", overwrite=False)
        path = self._path(key)
        lease = DirectoryLease(
            path.with_name(_LEASE_PREFIX + path.name),
            key=key,
            where=self.describe(),
            ttl_seconds=ttl_seconds,
            clock=self._clock,
            fsync=self._fsync,
        )
        lease.take()
        return lease

    # -- internals -----------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        check_key(key)
        return self._root / key

    def _make_parents(self, folder: Path) -> None:
        if folder.is_dir():
            return
        missing: list[Path] = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise
            if self._fsync:
                _fsync_dir(path.parent)

    def _walk(self, folder: Path, rel: str, prefix: str) -> Iterator[BlobInfo]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sort by the key each entry leads to ("name/" for folders) so keys come out in string order.
        named = sorted(
            (rel + entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""), entry)
            for entry in entries
            if not entry.name.startswith(".")
        )
        for name, entry in named:
            if name.endswith("/"):
                if name.startswith(prefix) or prefix.startswith(name):
                    yield from self._walk(Path(entry.path), name, prefix)
            elif name.startswith(prefix):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted while we listed
                yield BlobInfo(key=name, size=st.st_size, modified=st.st_mtime)


class DirectoryLease:
    """A lease on one key of a :class:`DirectoryStore`, held as JSON in its ``.lease-`` file."""

    def __init__(
        self,
        path: Path,
        *,
        key: str,
        where: str,
        ttl_seconds: int,
        clock: Callable[[], float],
        fsync: bool,
    ) -> None:
        self._path = path
        self._key = key
        self._where = where
        self._owner = uuid.uuid4().hex
        self._ttl = ttl_seconds
        self._clock = clock
        self._fsync = fsync

    def take(self) -> None:
        """Become the holder unless another holder's lease is live."""
        self._update(require_owner=False)

    def renew(self) -> None:
        self._update(require_owner=True)

    def release(self) -> None:
        with self._locked() as fd:
            if _read_state(fd).get("owner") == self._owner:
                self._write(fd, b"")

    def _update(self, *, require_owner: bool) -> None:
        with self._locked() as fd:
            state = _read_state(fd)
            now = self._clock()
            holder, expires = state.get("owner"), state.get("expires")
            mine = holder == self._owner
            live = bool(holder) and isinstance(expires, int | float) and expires > now
            if not mine and (require_owner or live):
                raise LeaseHeldError(
                    f"Object '{self._key}' in {self._where} is leased by another holder.",
                    hint="wait for that lease to be released or to expire",
                )
            self._write(fd, json.dumps({"owner": self._owner, "expires": now + self._ttl}).encode())

    def _write(self, fd: int, payload: bytes) -> None:
        os.ftruncate(fd, 0)
        _write_all(fd, memoryview(payload), offset=0)
        if self._fsync:
            os.fsync(fd)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """Open the lease file (creating it) and hold ``flock(LOCK_EX)`` on it; closing drops it."""
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _translate(exc, self._key, self._where) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        except OSError as exc:
            raise _translate(exc, self._key, self._where) from exc
        finally:
            os.close(fd)


def _read_state(fd: int) -> dict[str, object]:
    raw = os.pread(fd, 4096, 0)
    try:
        state = json.loads(raw) if raw else {}
    except ValueError:
        return {}  # torn by a crash mid-write: its writer is gone, so the lease is free
    return state if isinstance(state, dict) else {}


class DirectoryWriter:
    """A temporary file next to the target, linked into place on commit (see put)."""

    def __init__(self, store: DirectoryStore, key: str, path: Path, fd: int, tmp: Path) -> None:
        self._store = store
        self._key = key
        self._path = path
        self._fd: int | None = fd
        self._tmp = tmp

    def write(self, data: Buffer) -> None:
        if self._fd is None:
            raise StorageError(f"writer for '{self._key}' is closed")
        try:
            _write_all(self._fd, memoryview(data))
        except OSError as exc:
            self.abort()
            raise _translate(exc, self._key, self._store.describe()) from exc

    def commit(self) -> None:
        if self._fd is None:
            raise StorageError(f"writer for '{self._key}' is closed")
        fd, self._fd = self._fd, None
        try:
            try:
                if self._store._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.link(self._tmp, self._path)
            if self._store._fsync:
                _fsync_dir(self._path.parent)
        except FileExistsError as exc:
            raise BlobExistsError(f"Object '{self._key}' already exists in {self._store.describe()}.") from exc
        except OSError as exc:
            raise _translate(exc, self._key, self._store.describe()) from exc
        finally:
            self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._tmp.unlink(missing_ok=True)


def _write_all(fd: int, view: memoryview, *, offset: int | None = None) -> None:
    view = view.cast("B")
    written = 0
    while written < len(view):
        chunk = view[written:]
        if offset is None:
            written += os.write(fd, chunk)
        else:
            written += os.pwrite(fd, chunk, offset + written)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _translate(exc: OSError, key: str, where: str) -> StorageError:
    """Map an OSError on ``key`` to the error tree."""
    subject = f"'{key}' in {where}"
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return BlobNotFoundError(f"No object {subject}.")
    if isinstance(exc, PermissionError):
        return StorageError(
            f"Permission denied for {subject}.", hint="check the owner and mode of the repository folder"
        )
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientStorageError(f"Temporary failure on {subject}: {exc.strerror}.")
    return StorageError(f"Storage failure on {subject}: {exc.strerror or exc}.")


if TYPE_CHECKING:  # mypy checks that the class implements the port (and its leases)

    def _conforms(root: Path) -> BlobStore:
        return DirectoryStore(root)
