"""Deciding, once per block id across threads, which thread stores a block."""

from __future__ import annotations

import threading

from shared.repo.index import Index

__all__ = ["Deduper"]


class Deduper:
    """Pipelines hash blocks on several threads at once; the first thread to claim an id stores
    the block, every other occurrence (in this run or already in the index) references it."""

    def __init__(self, index: Index) -> None:
        self._index = index
        self._claimed: set[bytes] = set()
        self._lock = threading.Lock()

    def claim(self, block_id: bytes) -> bool:
        with self._lock:
            if block_id in self._index or block_id in self._claimed:
                return False
            self._claimed.add(block_id)
            return True
