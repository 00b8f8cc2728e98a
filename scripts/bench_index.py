"""The in-memory index benchmark: what opening a big repository costs in memory and time.

    python -m scripts.bench_index [--blocks 1000000] [--json FILE]

A repository holding 1 TiB of unique data has about a million 1 MiB blocks, and every process that
opens it (a worker, a restore, ``bulwark verify``) loads their locations. This builds that many
synthetic index entries, encoded as index objects hold them, and loads them the way
``Repository.load_index`` does (decode each pack's entries, ``Index.add_pack``), in a fresh process
so its memory is its own. Reported: resident memory held after loading and at its peak (above
what the encoded entries themselves take), load time, and the time of a lookup that finds a block
and of one that does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

__all__ = ["IndexBench", "index_table", "run_index_bench"]

_PACK_BLOCKS = 40  # blocks per 32 MiB pack of ~0.8 MiB compressed blocks


@dataclass(frozen=True)
class IndexBench:
    blocks: int
    held_bytes_per_block: float
    peak_bytes_per_block: float
    load_s: float
    hit_us: float
    miss_us: float


def _resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(blocks: int) -> IndexBench:
    """Runs in its own process (``--child``): the baseline is taken after the input is built."""
    from shared.repo.index import Index
    from shared.repo.pack import PackEntry, decode_entries, encode_entries

    def pack() -> bytes:
        return encode_entries(
            [PackEntry(os.urandom(32), 1, 1, i * 800_000, 800_000, 1 << 20) for i in range(_PACK_BLOCKS)]
        )

    packs = [(os.urandom(16).hex(), pack()) for _ in range(blocks // _PACK_BLOCKS)]
    present = [decode_entries(data)[0][0].block_id for _, data in packs[:: max(1, len(packs) // 20_000)]]
    absent = [os.urandom(32) for _ in range(20_000)]
    held_before, peak_before = _resident(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    index = Index()
    for pack_id, data in packs:
        index.add_pack(pack_id, decode_entries(data)[0])
    count = len(index)
    load = time.perf_counter() - started
    held = _resident() - held_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    started = time.perf_counter()
    found = sum(index.get(block_id) is not None for block_id in present)
    hit = (time.perf_counter() - started) / len(present)
    started = time.perf_counter()
    missing = sum(block_id not in index for block_id in absent)
    miss = (time.perf_counter() - started) / len(absent)
    if found != len(present) or missing != len(absent) or count != len(packs) * _PACK_BLOCKS:
        raise SystemExit("the index lost or invented blocks")
    return IndexBench(count, round(held / count, 1), round(max(peak, held) / count, 1), round(load, 2),
                      round(hit * 1e6, 2), round(miss * 1e6, 2))  # fmt: skip


def run_index_bench(*, blocks: int = 1_000_000) -> IndexBench:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench_index", "--blocks", str(blocks), "--child"],
        capture_output=True,
        text=True,
        check=True,
    )
    return IndexBench(**json.loads(done.stdout))


def index_table(result: IndexBench) -> Table:
    table = Table(
        title=f"In-memory index: {result.blocks:,} blocks (1 MiB each: {result.blocks / 2**20:.2f} TiB unique)"
    )
    for column in ("measure", "value"):
        table.add_column(column)
    table.add_row("memory held after loading", f"{result.held_bytes_per_block:.0f} B per block")
    table.add_row("memory at the peak of loading", f"{result.peak_bytes_per_block:.0f} B per block")
    table.add_row("load (decode and add every pack)", f"{result.load_s:.2f} s")
    table.add_row("lookup: found / not found", f"{result.hit_us:.2f} / {result.miss_us:.2f} µs")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_index", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=1_000_000, help="index entries (default 1000000)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the result here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asdict(_measure(args.blocks))))
        return 0
    result = run_index_bench(blocks=args.blocks)
    from rich.console import Console

    Console().print(index_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
