"""The upload-lanes benchmark: what writing packs on two lanes buys when every request has latency.

    python -m scripts.bench_lanes [--size-mib 512] [--put-ms 40] [--commit-ms 30] [--json FILE]

Azure charges each request a round trip: a pack is staged as 4 MiB Put Block calls and published
with one Put Block List. On one lane those round trips add up; on two, one pack's staging and
commit overlap the next one's. This runs the same full backup of a generated mixed image into a
directory store whose writers wait ``--put-ms`` per 4 MiB staged and ``--commit-ms`` per commit
(a latency model, not Azure itself: local Azurite answers in microseconds, which would show
nothing), once with one pack lane and once with the writer's default, and reports both times.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

import shared.repo.writer as writer_module
from scripts.make_image import build_image, plan_layout
from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.engine.backup import backup_image
from shared.repo.repository import Repository
from shared.sources.image_file import ImageFileSource
from shared.storage.directory import DirectoryStore
from shared.storage.port import BlobWriter, Buffer

__all__ = ["LanesBench", "lanes_table", "run_lanes_bench"]

MIB = 1 << 20
_STAGE = 4 * MIB


@dataclass(frozen=True)
class LanesBench:
    data_bytes: int
    put_ms: float
    commit_ms: float
    one_lane_s: float
    lanes: int
    lanes_s: float

    @property
    def gain(self) -> float:
        return self.one_lane_s / self.lanes_s if self.lanes_s else 0.0


class _SlowWriter:
    """A real directory writer that first waits as a remote store's round trips would."""

    def __init__(self, inner: BlobWriter, put_s: float, commit_s: float) -> None:
        self._inner = inner
        self._put_s = put_s
        self._commit_s = commit_s
        self._unstaged = 0

    def write(self, data: Buffer) -> None:
        self._unstaged += len(memoryview(data))
        while self._unstaged >= _STAGE:
            time.sleep(self._put_s)
            self._unstaged -= _STAGE
        self._inner.write(data)

    def commit(self) -> None:
        time.sleep(self._put_s * (self._unstaged > 0) + self._commit_s)
        self._inner.commit()

    def abort(self) -> None:
        self._inner.abort()


class _SlowStore(DirectoryStore):
    def __init__(self, root: Path, put_s: float, commit_s: float) -> None:
        super().__init__(root, fsync=False)
        self._put_s = put_s
        self._commit_s = commit_s

    # Narrower than the directory store's own writer type, which nothing here relies on.
    def open_writer(self, key: str) -> BlobWriter:  # type: ignore[override]
        return _SlowWriter(super().open_writer(key), self._put_s, self._commit_s)


def _backup_seconds(image: Path, root: Path, lanes: int, put_ms: float, commit_ms: float) -> tuple[float, int]:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    store = _SlowStore(root, put_ms / 1000, commit_ms / 1000)
    repo = Repository.init(store, "bench", SystemClock(), scrypt=ScryptParams(n=1 << 10))
    default = writer_module.PACK_LANES
    writer_module.PACK_LANES = lanes
    try:
        with ImageFileSource(image) as source:
            started = time.perf_counter()
            result = backup_image(repo, source)
            return time.perf_counter() - started, result.bytes_read
    finally:
        writer_module.PACK_LANES = default


def run_lanes_bench(
    *, size_mib: int = 512, put_ms: float = 40, commit_ms: float = 30, workdir: Path | None = None
) -> LanesBench:
    with tempfile.TemporaryDirectory(prefix="bulwark-lanes-", dir=workdir) as scratch:
        image = Path(scratch) / "image.img"
        build_image(image, plan_layout(size_mib, 11), 11)
        one, data = _backup_seconds(image, Path(scratch) / "one", 1, put_ms, commit_ms)
        many, _ = _backup_seconds(image, Path(scratch) / "many", writer_module.PACK_LANES, put_ms, commit_ms)
    return LanesBench(data, put_ms, commit_ms, round(one, 2), writer_module.PACK_LANES, round(many, 2))


def lanes_table(result: LanesBench) -> Table:
    table = Table(
        title=f"Pack upload lanes ({result.data_bytes // MIB} MiB of data; modelled round trips: "
        f"{result.put_ms:.0f} ms per 4 MiB staged, {result.commit_ms:.0f} ms per commit)"
    )
    for column in ("lanes", "full backup s"):
        table.add_column(column)
    table.add_row("1", f"{result.one_lane_s:.2f}")
    table.add_row(f"{result.lanes} (default)", f"{result.lanes_s:.2f}: {result.gain:.2f}x faster")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_lanes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512, help="generated image size (default 512)")
    parser.add_argument("--put-ms", type=float, default=40, help="wait per 4 MiB staged (default 40)")
    parser.add_argument("--commit-ms", type=float, default=30, help="wait per commit (default 30)")
    parser.add_argument("--workdir", type=Path, help="parent of the scratch directory")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the result here")
    args = parser.parse_args(argv)
    result = run_lanes_bench(size_mib=args.size_mib, put_ms=args.put_ms, commit_ms=args.commit_ms, workdir=args.workdir)
    from rich.console import Console

    Console().print(lanes_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result) | {"gain": result.gain}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
