"""The restore benchmark runs end to end on a small scale: the restored disk and the extracted file
are identical, and the file costs about its own blocks. (Its speeds are for `make bench` to report.)"""

from __future__ import annotations

from pathlib import Path

from scripts.bench_restore import run_restore_bench


def test_restore_bench_round_trip_on_a_small_disk(tmp_path: Path) -> None:
    result = run_restore_bench(disk_gib=1, data_mib=64, file_mib=8, workdir=tmp_path)
    assert result.identical and result.file_identical
    assert result.restore_requests >= 16  # 64 MiB in Put Pages of at most 4 MiB
    assert result.per_block_requests >= 64 > result.restore_requests  # one per 1 MiB block without joining
    assert result.file_blocks == 8 and result.read_amplification <= 2
