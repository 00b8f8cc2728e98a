"""Appending blocks to a repository: packs first, then the index that names them.

One BlockWriter serves one writing session and is driven from a single thread (the pipeline's
ordering thread); the CPU-heavy work (hash, compress, encrypt) happens before ``add``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.compression import Codec
from shared.core.envelope import ObjectType, seal_object
from shared.repo.index import Index, encode_index, new_index_key
from shared.repo.pack import PackEntry, PackWriter, pack_key
from shared.repo.repository import Repository

__all__ = ["BlockWriter", "WriterStats"]

# Write an index object after this many packs, so a resumed run re-uses what a killed one stored.
_INDEX_EVERY_PACKS = 8


@dataclass
class WriterStats:
    packs: int = 0
    blocks: int = 0
    bytes_stored: int = 0
    index_objects: int = 0


class BlockWriter:
    def __init__(self, repo: Repository, index: Index, *, max_block: int | None = None) -> None:
        self._repo = repo
        self._index = index
        self._pack = PackWriter(repo.key, repo.config.pack_target, max_block or repo.config.block_size)
        self._unindexed: list[tuple[str, list[PackEntry]]] = []
        self._pending: set[bytes] = set()
        self.stats = WriterStats()

    def has(self, block_id: bytes) -> bool:
        """Whether the repository, or this writer's open pack, already holds the block."""
        return block_id in self._index or block_id in self._pending

    def add(self, block_id: bytes, kind: ObjectType, codec: Codec, sealed: bytes | bytearray, raw_length: int) -> None:
        if not self._pack.fits(len(sealed)):
            self._seal_pack()
        self._pack.add(block_id, kind, codec, sealed, raw_length)
        self._pending.add(block_id)
        self.stats.blocks += 1

    def _seal_pack(self) -> None:
        if self._pack.is_empty:
            return
        pack_id, data, entries = self._pack.finish()
        self._repo.store.put(pack_key(pack_id), data)
        self.stats.packs += 1
        self.stats.bytes_stored += len(data)
        self._index.add_pack(pack_id, entries)
        self._pending.clear()
        self._unindexed.append((pack_id, entries))
        if len(self._unindexed) >= _INDEX_EVERY_PACKS:
            self._write_index()

    def _write_index(self) -> None:
        if not self._unindexed:
            return
        name = new_index_key()
        payload = encode_index(self._unindexed)
        self._repo.store.put(name, seal_object(self._repo.key, ObjectType.INDEX, name, payload))
        self._unindexed = []
        self.stats.index_objects += 1

    def flush(self) -> None:
        """Store the open pack and index everything stored; call before saving a point."""
        self._seal_pack()
        self._write_index()
