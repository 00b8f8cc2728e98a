"""The repository: Bulwark's native format over a BlobStore (docs/format.md).

    config            encrypted repository settings
    keys/<slot>       the master key, wrapped once per secret that may open the repository
    packs/<xx>/<id>   sealed blocks plus an encrypted trailer
    index/<id>        which pack holds which block
    points/<id>       restore-point manifests
    sessions/<id>     markers of running writers, for safe garbage collection
    locks/maintenance the lease that makes prune exclusive

Writes go packs -> index -> point, so a writer that dies leaves only unreferenced data.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.core.clock import Clock, format_time
from shared.core.compression import decompress
from shared.core.crypto import DecryptionFailed, MasterKey, ScryptParams, new_master_key
from shared.core.envelope import EnvelopeError, ObjectType, open_object, seal_object
from shared.core.errors import (
    BlobNotFoundError,
    BulwarkError,
    IntegrityError,
    LeaseHeldError,
    PointNotFoundError,
    RepositoryExistsError,
    RepositoryLockedError,
    RepositoryNotFoundError,
    UsageError,
    WrongKeyError,
)
from shared.repo.index import INDEX_PREFIX, Index, Location, decode_index
from shared.repo.keys import KEYS_PREFIX, KeySlot, new_passphrase_slot, open_slot
from shared.repo.pack import PACKS_PREFIX, PackEntry, open_block, pack_key, read_trailer
from shared.repo.point import POINTS_PREFIX, Point, point_key
from shared.repo.session import SessionMarker
from shared.storage.port import BlobStore, Lease

__all__ = ["CONFIG_KEY", "MaintenanceLock", "RepoConfig", "Repository"]

CONFIG_KEY = "config"
MAINTENANCE_LOCK = "locks/maintenance"
_LOCK_TTL = 60


@dataclass(frozen=True)
class RepoConfig:
    repo_id: str
    created: str
    block_size: int = 1 << 20
    pack_target: int = 32 << 20
    zstd_level: int = 1

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": "bulwark-repository",
                "version": 1,
                "id": self.repo_id,
                "created": self.created,
                "block_size": self.block_size,
                "pack_target": self.pack_target,
                "compression": {"codec": "zstd", "level": self.zstd_level},
                "id_hash": "hmac-sha256",
                "cipher": "aes-256-gcm",
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RepoConfig:
        doc = json.loads(data)
        if doc.get("format") != "bulwark-repository" or doc.get("version") != 1:
            raise ValueError("not a version-1 Bulwark repository config")
        return cls(
            repo_id=str(doc["id"]),
            created=str(doc["created"]),
            block_size=int(doc["block_size"]),
            pack_target=int(doc["pack_target"]),
            zstd_level=int(doc["compression"]["level"]),
        )


class Repository:
    def __init__(self, store: BlobStore, key: MasterKey, config: RepoConfig, clock: Clock) -> None:
        self.store = store
        self.key = key
        self.config = config
        self.clock = clock

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: BlobStore,
        passphrase: str,
        clock: Clock,
        *,
        scrypt: ScryptParams | None = None,
        block_size: int = 1 << 20,
        pack_target: int = 32 << 20,
    ) -> Repository:
        if not passphrase:
            raise UsageError("the passphrase is empty", hint="set BULWARK_PASSWORD or use --password-file")
        if any(True for _ in store.list(KEYS_PREFIX)) or _exists(store, CONFIG_KEY):
            raise RepositoryExistsError(
                f"a repository already exists at {store.describe()}",
                hint="open it with the same --repo, or choose an empty location",
            )
        now = format_time(clock.now())
        key = new_master_key()
        config = RepoConfig(os.urandom(16).hex(), now, block_size=block_size, pack_target=pack_target)
        # Config first, key slot last: until a slot exists the location is not a repository,
        # so an interrupted init can simply be run again.
        store.put(CONFIG_KEY, seal_object(key, ObjectType.CONFIG, CONFIG_KEY, config.to_json()), overwrite=True)
        slot = new_passphrase_slot(key, passphrase, created=now, params=scrypt)
        store.put(slot.key_name, slot.to_json())
        return cls(store, key, config, clock)

    @classmethod
    def open(cls, store: BlobStore, passphrase: str, clock: Clock) -> Repository:
        slots = [info.key for info in store.list(KEYS_PREFIX)]
        if not slots:
            raise RepositoryNotFoundError(
                f"no Bulwark repository at {store.describe()}",
                hint=f"check --repo, or create one with `bulwark repo init --repo {store.describe()}`",
            )
        key: MasterKey | None = None
        for name in slots:
            try:
                slot = KeySlot.from_json(store.get(name))
            except (ValueError, KeyError) as exc:
                raise IntegrityError(f"key slot {name} is damaged: {exc}") from exc
            key = open_slot(slot, passphrase)
            if key is not None:
                break
        if key is None:
            raise WrongKeyError(
                f"the passphrase does not open the repository at {store.describe()}",
                hint="check BULWARK_PASSWORD or --password-file",
            )
        try:
            config = RepoConfig.from_json(open_object(key, ObjectType.CONFIG, CONFIG_KEY, store.get(CONFIG_KEY)))
        except BlobNotFoundError as exc:
            raise IntegrityError(f"repository config is missing at {store.describe()}") from exc
        except (EnvelopeError, ValueError, KeyError) as exc:
            raise IntegrityError(f"repository config is damaged: {exc}") from exc
        return cls(store, key, config, clock)

    # -- index -----------------------------------------------------------------------------

    def index_names(self) -> list[str]:
        return [info.key for info in self.store.list(INDEX_PREFIX)]

    def read_index_object(self, name: str) -> list[tuple[str, list[PackEntry]]]:
        try:
            return list(decode_index(open_object(self.key, ObjectType.INDEX, name, self.store.get(name))))
        except (EnvelopeError, ValueError) as exc:
            raise IntegrityError(
                f"index object {name} is damaged: {exc}",
                hint="run `bulwark verify` to see which restore points are affected",
            ) from exc

    def load_index(self) -> Index:
        """All index objects merged. A damaged index object does not stop readers: the packs it
        described are found again through their own trailers (``index.damaged`` names it)."""
        index = Index()
        for name in self.index_names():
            try:
                packs = self.read_index_object(name)
            except BlobNotFoundError:
                continue  # replaced by a concurrent prune between list and get
            except IntegrityError:
                index.damaged.append(name)
                continue
            for pack_id, entries in packs:
                index.add_pack(pack_id, entries)
        if index.damaged:
            self._recover_from_trailers(index)
        return index

    def _recover_from_trailers(self, index: Index) -> None:
        known = index.pack_ids()
        for info in self.store.list(PACKS_PREFIX):
            pack_id = info.key.rsplit("/", 1)[-1]
            if pack_id in known:
                continue
            try:
                index.add_pack(pack_id, read_trailer(self.key, pack_id, self.store.get(info.key)))
            except (EnvelopeError, ValueError, BlobNotFoundError):
                continue  # a damaged pack: its blocks stay missing, and verify says so

    # -- blocks ----------------------------------------------------------------------------

    def read_block(self, location: Location) -> bytes:
        """One block's plaintext; raises IntegrityError if it fails authentication."""
        entry = location.entry
        sealed = self.store.get(pack_key(location.pack_id), offset=entry.offset, length=entry.length)
        return self.open_sealed(location.pack_id, entry, sealed)

    def open_sealed(self, pack_id: str, entry: PackEntry, sealed: bytes | memoryview) -> bytes:
        try:
            body = open_block(self.key, entry, sealed)
            return decompress(entry.codec, body, entry.raw_length)
        except (DecryptionFailed, ValueError) as exc:
            raise IntegrityError(
                f"block {entry.block_id.hex()[:16]} in pack {pack_id} is damaged: {exc}",
                hint="run `bulwark verify --read-data` to find every affected restore point",
            ) from exc

    # -- points ----------------------------------------------------------------------------

    def save_point(self, point: Point) -> None:
        name = point_key(point.point_id)
        self.store.put(name, seal_object(self.key, ObjectType.POINT, name, point.to_json()))

    def load_point(self, point_id: str) -> Point:
        name = point_key(point_id)
        try:
            data = self.store.get(name)
        except BlobNotFoundError as exc:
            raise PointNotFoundError(
                f"no restore point {point_id} in {self.store.describe()}",
                hint="list them with `bulwark points`",
            ) from exc
        try:
            return Point.from_json(open_object(self.key, ObjectType.POINT, name, data))
        except (EnvelopeError, ValueError, KeyError) as exc:
            raise IntegrityError(f"restore point {point_id} is damaged: {exc}") from exc

    def point_ids(self) -> list[str]:
        return [info.key[len(POINTS_PREFIX) :] for info in self.store.list(POINTS_PREFIX)]

    def resolve_point(self, prefix: str, *, source: str | None = None) -> str:
        """A full point id from a unique prefix of at least 4 characters, or 'latest' (of
        ``source`` when given)."""
        ids = self.point_ids()
        if prefix == "latest":
            points = [p for p in self.list_points() if source is None or p.source == source]
            if not points:
                scope = f" of {source}" if source else ""
                raise PointNotFoundError(f"there are no restore points{scope} in {self.store.describe()}")
            return max(points, key=lambda p: p.time).point_id
        if len(prefix) < 4:
            raise UsageError(f"point id {prefix!r} is too short", hint="give at least 4 characters")
        matches = [i for i in ids if i.startswith(prefix)]
        if not matches:
            raise PointNotFoundError(
                f"no restore point {prefix} in {self.store.describe()}",
                hint="list them with `bulwark points`",
            )
        if len(matches) > 1:
            raise UsageError(f"point id {prefix!r} is ambiguous ({len(matches)} match)", hint="give more characters")
        return matches[0]

    def list_points(self) -> list[Point]:
        points = []
        for point_id in self.point_ids():
            try:
                points.append(self.load_point(point_id))
            except PointNotFoundError:
                continue  # forgotten between list and get
        return sorted(points, key=lambda p: p.time)

    def delete_point(self, point_id: str) -> None:
        self.store.delete(point_key(point_id))

    # -- coordination ----------------------------------------------------------------------

    def session(self) -> SessionMarker:
        return SessionMarker(self.store, self.key, self.clock)

    @contextmanager
    def maintenance_lock(self) -> Iterator[MaintenanceLock]:
        try:
            lease = self.store.acquire_lease(MAINTENANCE_LOCK, ttl_seconds=_LOCK_TTL)
        except LeaseHeldError as exc:
            raise RepositoryLockedError(
                f"another maintenance run (prune) holds the lock on {self.store.describe()}",
                hint="wait for it to finish; a crashed holder's lock expires within a minute",
            ) from exc
        lock = MaintenanceLock(lease, self.store.describe())
        try:
            yield lock
        finally:
            lock.close()


class MaintenanceLock:
    """Keeps the maintenance lease alive from a daemon thread while the holder works.

    Destructive steps call ``check`` first: if a renewal ever failed, another process may hold
    the lock by now, so the holder must stop.
    """

    def __init__(self, lease: Lease, where: str) -> None:
        self._lease = lease
        self._where = where
        self._stop = threading.Event()
        self._lost: BaseException | None = None
        self._thread = threading.Thread(target=self._keep_alive, name="maintenance-lease", daemon=True)
        self._thread.start()

    def _keep_alive(self) -> None:
        while not self._stop.wait(_LOCK_TTL / 3):
            try:
                self._lease.renew()
            except BulwarkError as exc:
                self._lost = exc
                return

    def check(self) -> None:
        if self._lost is not None:
            raise RepositoryLockedError(
                f"lost the maintenance lock on {self._where} ({self._lost}); stopped before deleting anything more",
                hint="run prune again",
            )

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._lease.release()


def _exists(store: BlobStore, key: str) -> bool:
    try:
        store.stat(key)
    except BlobNotFoundError:
        return False
    return True
