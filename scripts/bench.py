"""The data-mover benchmark: Bulwark side by side with restic and borg on the same image.

    python -m scripts.bench [--size-mib 1024] [--trials 1] [--tools bulwark,borg,restic]
                            [--memory-runs 64:4,1024:4] [--orchestration-vms 200] [--restore-disk-gib 4]
                            [--lanes-mib 512] [--index-blocks 1000000] [--workdir DIR] [--keep]

One run, one machine, one image (scripts.make_image: ~30 % holes, ~40 % compressible, ~30 %
random). Per tool and trial: a fresh repository; full backup; the image is mutated in place (2 % of
its 1 MiB blocks, the same bytes for every tool); incremental backup; restore of the newest point,
compared byte for byte with the image and checked for kept holes. Bulwark backs up incrementally
twice from the full point: once with the changed ranges Azure's page-range diff would give, once by
scanning the whole image. Every step runs under ``/usr/bin/time -v`` (wall time, peak RSS, CPU).

The tools: restic with its defaults; borg with fixed 1 MiB chunks and zstd-1 (``--sparse`` on
create and extract, which only the fixed chunker supports) - the configuration closest to Bulwark's.

Then a memory run backs up big sparse images (e.g. 64 GiB holding 4 GiB of data) with Bulwark to
show that peak RSS stays flat in disk size, and a CPU ceiling is measured on the same image: keyed
hash + zstd-1 + AES-256-GCM on 1 MiB blocks with two threads, the best any pipeline could do here.

Last, the orchestration run (scripts.bench_orchestration): one snapshot-only session of the function
app in the local runtime over N simulated VMs with two disks each, for the orchestration overhead
per resource. The restore run (scripts.bench_restore) writes a point back into a simulated upload
disk, and the upload-lanes run (scripts.bench_lanes) shows what writing packs on two lanes buys when
every storage request has a round trip; the index run (scripts.bench_index) loads a million block
locations, as opening a repository with 1 TiB of unique data does, for memory and time.

Results go to stdout (tables) and bench-results/bench.json. The exit status is non-zero when a
restore is not byte-identical; missed speed targets are reported, not fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from rich.table import Table

from scripts.bench_index import IndexBench, index_table, run_index_bench
from scripts.bench_lanes import LanesBench, lanes_table, run_lanes_bench
from scripts.bench_orchestration import OrchestrationResult, orchestration_table, run_orchestration_bench
from scripts.bench_restore import RestoreBench, restore_table, run_restore_bench
from scripts.make_image import MIB, Kind, Layout, allocated_bytes, build_image, mutate_image, plan_layout

GIB = 1024 * MIB
PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "bench-results" / "bench.json"
TIME = Path("/usr/bin/time")

IMAGE_SEED = 42
MUTATE_SEED = 7
MUTATE_PCT = 2.0
PASSWORD = "bench-only-password"

TARGET_FULL_VS_BORG = 2.0
TARGET_FULL_VS_RESTIC = 4.0
TARGET_INCREMENTAL_VS_RESTIC = 20.0
TARGET_RESTORE_VS_RESTIC = 3.0
TARGET_PEAK_RSS_MIB = 128.0
TARGET_CEILING_SHARE = 0.80
TARGET_RSS_DISK_GIB = 64
"""The memory target applies to the sparse image of this logical size."""

CEILING_THREADS = 2
CEILING_SAMPLE_BLOCKS = {Kind.COMPRESSIBLE: 96, Kind.RANDOM: 48}

APT_PACKAGES = {"restic": "restic", "borg": "borgbackup"}

# Wide enough for the step table when stdout is a pipe or a log file (rich assumes 80 columns).
console = Console(width=None if sys.stdout.isatty() else 150)


class BenchError(Exception):
    """A step of the benchmark could not run; the message says which and why."""


# --- options -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryRun:
    disk_gib: int
    data_gib: int


@dataclass(frozen=True)
class Options:
    size_mib: int
    trials: int
    tools: tuple[str, ...]
    memory_runs: tuple[MemoryRun, ...]
    scale_mib: int
    workdir: Path | None
    keep: bool
    orchestration_vms: int = 200
    restore_disk_gib: int = 4
    lanes_mib: int = 512
    index_blocks: int = 1_000_000


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the mixed image (default 1024)")
    parser.add_argument("--trials", type=int, default=1, help="repeat and report medians (default 1)")
    parser.add_argument("--tools", default="bulwark,borg,restic", help="comma-separated subset, run in order")
    parser.add_argument(
        "--memory-runs",
        default="64:4,1024:4",
        help="DISK_GIB:DATA_GIB sparse images for Bulwark's peak-RSS run; 'none' skips (default 64:4,1024:4: "
        "the same data on a 16x larger disk shows whether memory grows with disk size)",
    )
    parser.add_argument(
        "--scale-mib",
        type=int,
        default=4096,
        help="also change the same ~20 MiB on a disk this big and compare Bulwark's change-list "
        "incremental with restic's, to show how the ratio grows with disk size; 0 skips (default 4096)",
    )
    parser.add_argument(
        "--orchestration-vms",
        type=int,
        default=200,
        help="VMs (two disks each) in the orchestration run's snapshot-only session; 0 skips (default 200)",
    )
    parser.add_argument(
        "--restore-disk-gib",
        type=int,
        default=4,
        help="restore run: back up a simulated disk this big (1 GiB of data) and restore it into an upload "
        "disk, and extract a 100 MiB file from a point of an ext4 disk this big; 0 skips (default 4)",
    )
    parser.add_argument(
        "--lanes-mib",
        type=int,
        default=512,
        help="upload-lanes run (scripts.bench_lanes): a full backup of an image this big into a store with "
        "modelled round trips, on one pack lane and on the default two; 0 skips (default 512)",
    )
    parser.add_argument(
        "--index-blocks",
        type=int,
        default=1_000_000,
        help="in-memory index run (scripts.bench_index): load this many block locations, as opening a "
        "repository of that many unique MiB does; 0 skips (default 1000000, about 1 TiB)",
    )
    parser.add_argument("--workdir", type=Path, help="parent of the scratch directory (default /var/tmp or /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip())
    unknown = set(tools) - {"bulwark", "borg", "restic"}
    if unknown or not tools:
        parser.error(f"--tools takes bulwark, borg and restic; got {args.tools!r}")
    if args.trials < 1 or args.size_mib < 64:
        parser.error("--trials must be >= 1 and --size-mib >= 64")
    if args.orchestration_vms < 0:
        parser.error("--orchestration-vms must be >= 0")
    return Options(
        args.size_mib,
        args.trials,
        tools,
        _parse_memory_runs(parser, args.memory_runs),
        args.scale_mib,
        args.workdir,
        args.keep,
        args.orchestration_vms,
        args.restore_disk_gib,
        args.lanes_mib,
        args.index_blocks,
    )


def _parse_memory_runs(parser: argparse.ArgumentParser, text: str) -> tuple[MemoryRun, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    runs = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+):(\d+)\s*", item)
        if not match or not 0 < int(match[2]) <= int(match[1]):
            parser.error(f"--memory-runs: {item!r} is not DISK_GIB:DATA_GIB with 0 < DATA <= DISK")
        runs.append(MemoryRun(int(match[1]), int(match[2])))
    return tuple(runs)


# --- prerequisites -------------------------------------------------------------------------------


def ensure_packages(tools: Sequence[str]) -> None:
    """Install restic, borg and GNU time through apt-get when they are missing."""
    missing = [APT_PACKAGES[t] for t in tools if t in APT_PACKAGES and shutil.which(t) is None]
    if not TIME.exists():
        missing.append("time")
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"missing {', '.join(missing)}; install them (apt-get install {' '.join(missing)})")
    console.print(f"[bold]installing {', '.join(missing)} with apt-get[/]")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")


def bulwark_executable() -> Path:
    # The venv's console script sits next to the interpreter; do not resolve the symlink.
    candidate = Path(sys.executable).parent / "bulwark"
    if candidate.exists():
        return candidate
    found = shutil.which("bulwark")
    if found is None:
        raise BenchError("the bulwark CLI is not installed; run `make setup` first")
    return Path(found)


def scratch_parent(requested: Path | None, needed: int) -> Path:
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        return requested
    candidates = [Path("/var/tmp"), Path(tempfile.gettempdir())]
    best = max(candidates, key=lambda p: shutil.disk_usage(p).free)
    if shutil.disk_usage(best).free < needed:
        raise BenchError(f"need {needed / GIB:.1f} GiB free scratch space; pass --workdir on a bigger disk")
    return best


# --- measuring commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    wall_s: float
    max_rss_mib: float
    cpu_pct: int
    stdout: str


class Runner:
    """Runs the tools' commands with their passwords and caches set, optionally under time -v."""

    def __init__(self, scratch: Path) -> None:
        self._time_file = scratch / "time.txt"
        self.env = dict(
            os.environ,
            BULWARK_PASSWORD=PASSWORD,
            RESTIC_PASSWORD=PASSWORD,
            RESTIC_CACHE_DIR=str(scratch / "cache" / "restic"),
            BORG_PASSPHRASE=PASSWORD,
            BORG_BASE_DIR=str(scratch / "cache" / "borg"),
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
        )

    def run(self, argv: Sequence[str | Path], cwd: Path | None = None) -> str:
        return self._check(argv, subprocess.run(self._strs(argv), **self._kwargs(cwd)))

    def timed(self, argv: Sequence[str | Path], cwd: Path | None = None) -> Measured:
        # Writeback of what the previous step wrote must not be billed to this one.
        os.sync()
        wrapped = [str(TIME), "-v", "-o", str(self._time_file), *self._strs(argv)]
        stdout = self._check(argv, subprocess.run(wrapped, **self._kwargs(cwd)))
        return _parse_time_report(self._time_file.read_text(), stdout)

    def _kwargs(self, cwd: Path | None) -> dict[str, Any]:
        return {"env": self.env, "cwd": cwd, "capture_output": True, "text": True, "check": False}

    @staticmethod
    def _strs(argv: Sequence[str | Path]) -> list[str]:
        return [str(a) for a in argv]

    @staticmethod
    def _check(argv: Sequence[str | Path], done: subprocess.CompletedProcess[str]) -> str:
        if done.returncode != 0:
            command = " ".join(str(a) for a in argv)
            raise BenchError(f"`{command}` exited with {done.returncode}:\n{done.stderr[-3000:]}")
        return done.stdout


def _parse_time_report(report: str, stdout: str) -> Measured:
    def field_of(label: str) -> str:
        match = re.search(rf"{re.escape(label)}: (\S+)", report)
        if match is None:
            raise BenchError(f"/usr/bin/time -v gave no {label!r}:\n{report}")
        return match[1]

    clock = [float(part) for part in field_of("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(value * 60**power for power, value in enumerate(reversed(clock)))
    rss_kib = int(field_of("Maximum resident set size (kbytes)"))
    cpu = int(field_of("Percent of CPU this job got").rstrip("%").replace("?", "0") or 0)
    return Measured(round(wall, 2), round(rss_kib / 1024, 1), cpu, stdout)


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


# --- the tools -----------------------------------------------------------------------------------


@dataclass
class StepResult:
    tool: str
    step: str
    wall_s: float
    max_rss_mib: float
    cpu_pct: int
    repo_bytes: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Restored:
    """A restore to check: the file it wrote and the image it must equal."""

    result: StepResult
    path: Path
    expected: Path


@dataclass(frozen=True)
class Images:
    base: Path
    """The image as the full backup saw it."""
    disk: Path
    """The image the tools back up; mutated in place between full and incremental."""
    ranges: Path
    """What changed between the two, as Azure's page-range diff reports it."""


class Tool(Protocol):
    name: str

    def init(self, run: Runner, repo: Path) -> None: ...

    def full(self, run: Runner, repo: Path, images: Images) -> StepResult: ...

    def incrementals(self, run: Runner, repo: Path, images: Images) -> list[StepResult]: ...

    def restores(self, run: Runner, repo: Path, images: Images, target: Path) -> list[Restored]: ...


def _step(tool: str, step: str, measured: Measured, **details: Any) -> StepResult:
    return StepResult(tool, step, measured.wall_s, measured.max_rss_mib, measured.cpu_pct, details=details)


class Restic:
    """restic with its defaults (content-defined chunks of ~1 MiB, zstd auto)."""

    name = "restic"

    def init(self, run: Runner, repo: Path) -> None:
        run.run(["restic", "-r", repo, "init"])

    def full(self, run: Runner, repo: Path, images: Images) -> StepResult:
        return _step(self.name, "full", run.timed(["restic", "-r", repo, "--quiet", "backup", images.disk]))

    def incrementals(self, run: Runner, repo: Path, images: Images) -> list[StepResult]:
        # restic finds the parent snapshot itself; the changed mtime makes it re-read the whole file.
        measured = run.timed(["restic", "-r", repo, "--quiet", "backup", images.disk])
        return [_step(self.name, "incremental", measured)]

    def restores(self, run: Runner, repo: Path, images: Images, target: Path) -> list[Restored]:
        measured = run.timed(["restic", "-r", repo, "--quiet", "restore", "latest", "--target", target])
        return [Restored(_step(self.name, "restore", measured), _under(target, images.disk), images.disk)]


class BorgFixed:
    """borg with fixed 1 MiB chunks and zstd-1, the configuration closest to Bulwark's."""

    name = "borg"
    create_options = ("--chunker-params", "fixed,1048576", "-C", "zstd,1", "--sparse")

    def init(self, run: Runner, repo: Path) -> None:
        run.run(["borg", "init", "-e", "repokey", repo])

    def full(self, run: Runner, repo: Path, images: Images) -> StepResult:
        measured = run.timed(["borg", "create", *self.create_options, f"{repo}::full", images.disk])
        return _step(self.name, "full", measured)

    def incrementals(self, run: Runner, repo: Path, images: Images) -> list[StepResult]:
        measured = run.timed(["borg", "create", *self.create_options, f"{repo}::incremental", images.disk])
        return [_step(self.name, "incremental", measured)]

    def restores(self, run: Runner, repo: Path, images: Images, target: Path) -> list[Restored]:
        measured = run.timed(["borg", "extract", "--sparse", f"{repo}::incremental"], cwd=target)
        return [Restored(_step(self.name, "restore", measured), _under(target, images.disk), images.disk)]


def _under(target: Path, original: Path) -> Path:
    """Where restic and borg put a file restored into ``target``: its absolute path below it."""
    return target / original.relative_to(original.anchor)


class Bulwark:
    """The project's CLI; one repository, three points (full, change-list and scanned incremental)."""

    name = "bulwark"

    def __init__(self, executable: Path) -> None:
        self._exe = executable
        self._points: dict[str, str] = {}

    def init(self, run: Runner, repo: Path) -> None:
        self._points.clear()
        run.run([self._exe, "repo", "init", "--repo", repo])

    def full(self, run: Runner, repo: Path, images: Images) -> StepResult:
        return self._backup(run, "full", [images.disk, "--repo", repo])

    def incrementals(self, run: Runner, repo: Path, images: Images) -> list[StepResult]:
        parent: list[str | Path] = ["--parent", self._points["full"]]
        ranges: list[str | Path] = ["--changed-ranges", images.ranges]
        by_ranges = self._backup(run, "incremental-ranges", [images.disk, "--repo", repo, *parent, *ranges])
        by_scan = self._backup(run, "incremental-scan", [images.disk, "--repo", repo, *parent])
        return [by_ranges, by_scan]

    def restores(self, run: Runner, repo: Path, images: Images, target: Path) -> list[Restored]:
        # The timed "restore" is the change-list point, the one restic and borg restore too; the
        # other two points are restored as well so that every point Bulwark wrote is checked.
        plan = [
            ("restore", "incremental-ranges", images.disk),
            ("restore-scan-point", "incremental-scan", images.disk),
            ("restore-full-point", "full", images.base),
        ]
        restored = []
        for step, point_of, expected in plan:
            path = target / f"{point_of}.img"
            measured = run.timed([self._exe, "restore-image", self._points[point_of], path, "--repo", repo])
            restored.append(Restored(_step(self.name, step, measured), path, expected))
        return restored

    def _backup(self, run: Runner, step: str, args: list[str | Path]) -> StepResult:
        measured = run.timed([self._exe, "backup-image", *args, "--tag", f"bench={step}", "--json"])
        report = last_json_object(measured.stdout)
        self._points[step] = str(report["point"])
        return _step(self.name, step, measured, **report)


def last_json_object(stdout: str) -> dict[str, Any]:
    """The CLI's --json report: the last top-level JSON object on stdout (it may span lines)."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    position = stdout.find("{")
    while position >= 0:
        try:
            value, end = decoder.raw_decode(stdout, position)
        except ValueError:
            end = position + 1
        else:
            found = value if isinstance(value, dict) else found
        position = stdout.find("{", end)
    if found is None:
        raise BenchError(f"no JSON object in the CLI output:\n{stdout[-2000:]}")
    return found


# --- one trial -----------------------------------------------------------------------------------


def run_trial(tool: Tool, run: Runner, scratch: Path, base: Path) -> list[StepResult]:
    """Full backup, mutate, incremental(s), restore and verify, in a fresh repository."""
    repo, restore_dir, data_dir = (
        scratch / f"repo-{tool.name}",
        scratch / f"restore-{tool.name}",
        scratch / "data",
    )
    for directory in (repo, restore_dir, data_dir, scratch / "cache"):
        shutil.rmtree(directory, ignore_errors=True)
    data_dir.mkdir()
    restore_dir.mkdir()
    images = Images(base, data_dir / "disk.img", data_dir / "disk.ranges.json")
    run.run(["cp", "--sparse=always", base, images.disk])

    tool.init(run, repo)
    full = tool.full(run, repo, images)
    full.repo_bytes = du_bytes(repo)
    diff = mutate_image(images.disk, pct=MUTATE_PCT, seed=MUTATE_SEED)
    images.ranges.write_text(diff.to_json())
    incrementals = tool.incrementals(run, repo, images)
    # Measured once after all incrementals: Bulwark's second (full-scan) run finds every block
    # already stored by its change-list run, so the growth belongs to the first.
    grown = du_bytes(repo)
    for incremental in incrementals:
        incremental.repo_bytes = grown
    results = [full, *incrementals]
    for restored in tool.restores(run, repo, images, restore_dir):
        restored.result.details.update(check_restore(restored))
        results.append(restored.result)
        restored.path.unlink(missing_ok=True)
    shutil.rmtree(restore_dir, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    return results


def check_restore(restored: Restored) -> dict[str, Any]:
    if not restored.path.exists():
        return {"identical": False, "problem": f"{restored.path} was not written"}
    allocated, expected_allocated = allocated_bytes(restored.path), allocated_bytes(restored.expected)
    # Allow some slack for file-system metadata blocks; a tool that writes the zeros of a 30 %
    # hole share is far outside it.
    slack = 4 * MIB + restored.expected.stat().st_size // 100
    return {
        "identical": same_bytes(restored.path, restored.expected),
        "allocated_mib": round(allocated / MIB, 1),
        "expected_allocated_mib": round(expected_allocated / MIB, 1),
        "holes_kept": allocated <= expected_allocated + slack,
    }


def same_bytes(a: Path, b: Path, chunk: int = 8 * MIB) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        while block := left.read(chunk):
            if block != right.read(chunk):
                return False
    return True


# --- the CPU ceiling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    data_mb_s: float
    """Best possible backup speed for this image's data mix, MB (10^6 B) of data read per second."""
    compressible_mb_s: float
    random_mb_s: float
    compressible_ratio: float
    threads: int


class BlockSealer:
    """The CPU work a backup must do per 1 MiB block: keyed hash, zstd-1, AES-256-GCM."""

    def __init__(self) -> None:
        self._mac_key = os.urandom(32)
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._local = threading.local()

    def seal(self, block: bytes) -> int:
        digest = hmac.digest(self._mac_key, block, "sha256")
        compressed = self._compressor().compress(block)
        payload = compressed if len(compressed) < 0.97 * len(block) else block
        return len(self._aead.encrypt(os.urandom(12), payload, digest))

    def compressed_size(self, block: bytes) -> int:
        return len(self._compressor().compress(block))

    def _compressor(self) -> zstandard.ZstdCompressor:
        # zstd compressors are not thread-safe; one per worker thread.
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "zstd", None)
        if compressor is None:
            compressor = self._local.zstd = zstandard.ZstdCompressor(level=1)
        return compressor


def measure_ceiling(image: Path, layout: Layout, threads: int = CEILING_THREADS) -> Ceiling:
    sealer = BlockSealer()
    compressible = sample_blocks(image, layout, Kind.COMPRESSIBLE)
    random_blocks = sample_blocks(image, layout, Kind.RANDOM)
    ratio = len(compressible) * MIB / sum(sealer.compressed_size(b) for b in compressible)
    with ThreadPoolExecutor(threads) as pool:
        per_compressible = _best_seconds(lambda: list(pool.map(sealer.seal, compressible))) / len(compressible)
        per_random = _best_seconds(lambda: list(pool.map(sealer.seal, random_blocks))) / len(random_blocks)
    data_mib = layout.mib_of(Kind.COMPRESSIBLE) + layout.mib_of(Kind.RANDOM)
    seconds = layout.mib_of(Kind.COMPRESSIBLE) * per_compressible + layout.mib_of(Kind.RANDOM) * per_random
    return Ceiling(
        data_mb_s=round(data_mib * MIB / seconds / 1e6, 1),
        compressible_mb_s=round(MIB / per_compressible / 1e6, 1),
        random_mb_s=round(MIB / per_random / 1e6, 1),
        compressible_ratio=round(ratio, 2),
        threads=threads,
    )


def sample_blocks(image: Path, layout: Layout, kind: Kind) -> list[bytes]:
    indexes = list(layout.blocks_of(kind))
    wanted = min(len(indexes), CEILING_SAMPLE_BLOCKS[kind])
    step = len(indexes) / wanted if wanted else 1
    with image.open("rb") as f:
        return [os.pread(f.fileno(), MIB, indexes[int(i * step)] * MIB) for i in range(wanted)]


def _best_seconds(work: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


# --- the memory run ------------------------------------------------------------------------------


def run_memory(bulwark: Path, run: Runner, scratch: Path, spec: MemoryRun) -> StepResult:
    """Back up a big sparse image with Bulwark and record its peak RSS."""
    image, repo = scratch / f"sparse-{spec.disk_gib}g.img", scratch / f"repo-sparse-{spec.disk_gib}g"
    layout = plan_layout(spec.disk_gib * 1024, IMAGE_SEED, spec.data_gib * 1024)
    try:
        started = time.perf_counter()
        build_image(image, layout, IMAGE_SEED)
        console.print(f"  built {image.name} ({layout.describe()}) in {time.perf_counter() - started:.1f} s")
        run.run([bulwark, "repo", "init", "--repo", repo])
        measured = run.timed([bulwark, "backup-image", image, "--repo", repo, "--json"])
        result = _step("bulwark", f"sparse {spec.disk_gib} GiB / {spec.data_gib} GiB data", measured)
        result.details.update(last_json_object(measured.stdout), disk_gib=spec.disk_gib, data_gib=spec.data_gib)
        result.repo_bytes = du_bytes(repo)
        return result
    finally:
        image.unlink(missing_ok=True)
        shutil.rmtree(repo, ignore_errors=True)


def run_scaling(tools: list[Tool], run: Runner, scratch: Path, size_mib: int, base_mib: int) -> list[StepResult]:
    """Full backup and one incremental of a bigger disk with as many changed MiB as the main image.

    restic re-reads the whole disk on every run, Bulwark reads only the changed ranges, so the
    incremental ratio grows with the disk while the change stays the same.
    """
    base = scratch / f"scale-{size_mib}.img"
    data_dir = scratch / "scale"
    build_image(base, plan_layout(size_mib, IMAGE_SEED), IMAGE_SEED)
    results = []
    try:
        for tool in tools:
            repo = scratch / f"repo-scale-{tool.name}"
            shutil.rmtree(data_dir, ignore_errors=True)
            data_dir.mkdir()
            images = Images(base, data_dir / "disk.img", data_dir / "disk.ranges.json")
            run.run(["cp", "--sparse=always", base, images.disk])
            tool.init(run, repo)
            tool.full(run, repo, images)
            diff = mutate_image(images.disk, pct=MUTATE_PCT * base_mib / size_mib, seed=MUTATE_SEED)
            images.ranges.write_text(diff.to_json())
            incremental = tool.incrementals(run, repo, images)[0]
            incremental.step = f"incremental, {size_mib} MiB disk"
            results.append(incremental)
            shutil.rmtree(repo, ignore_errors=True)
    finally:
        base.unlink(missing_ok=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return results


# --- summary -------------------------------------------------------------------------------------


def median_steps(trials: list[list[StepResult]]) -> list[StepResult]:
    """One result per (tool, step): medians of the timings, details of the first trial."""
    groups: dict[tuple[str, str], list[StepResult]] = {}
    for result in (r for trial in trials for r in trial):
        groups.setdefault((result.tool, result.step), []).append(result)
    merged = []
    for (tool, step), results in groups.items():
        repo_sizes = [r.repo_bytes for r in results if r.repo_bytes is not None]
        details = dict(results[0].details)
        durations = [float(r.details["duration_s"]) for r in results if "duration_s" in r.details]
        if len(durations) == len(results):
            # The engine's own clock, as a median like the wall times (the first trial runs cold).
            details["duration_s"] = round(statistics.median(durations), 3)
        if "identical" in details:
            details["identical"] = all(r.details.get("identical") for r in results)
        merged.append(
            StepResult(
                tool,
                step,
                round(statistics.median(r.wall_s for r in results), 2),
                round(statistics.median(r.max_rss_mib for r in results), 1),
                round(statistics.median(r.cpu_pct for r in results)),
                round(statistics.median(repo_sizes)) if repo_sizes else None,
                details,
            )
        )
    return merged


@dataclass(frozen=True)
class Comparison:
    what: str
    ratio: float | None
    """tool time / Bulwark time: how many times faster Bulwark is."""
    target: float | None = None

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target


def compare(steps: list[StepResult]) -> list[Comparison]:
    wall = {(s.tool, s.step): s.wall_s for s in steps}

    def ratio(tool: str, step: str, bulwark_step: str) -> float | None:
        theirs, ours = wall.get((tool, step)), wall.get(("bulwark", bulwark_step))
        if theirs is None or ours is None:
            return None
        return round(theirs / max(ours, 0.01), 1)

    targets = {
        ("full", "restic"): TARGET_FULL_VS_RESTIC,
        ("full", "borg"): TARGET_FULL_VS_BORG,
        ("incremental-ranges", "restic"): TARGET_INCREMENTAL_VS_RESTIC,
        ("restore", "restic"): TARGET_RESTORE_VS_RESTIC,
    }
    comparisons = []
    for bulwark_step, their_step in (
        ("full", "full"),
        ("incremental-ranges", "incremental"),
        ("incremental-scan", "incremental"),
        ("restore", "restore"),
    ):
        for tool in ("restic", "borg"):
            value = ratio(tool, their_step, bulwark_step)
            if value is not None:
                what = f"{bulwark_step}: {tool} / bulwark"
                comparisons.append(Comparison(what, value, targets.get((bulwark_step, tool))))
    return comparisons


@dataclass(frozen=True)
class Verdict:
    what: str
    value: str
    target: str
    passed: bool | None


def verdicts(
    steps: list[StepResult],
    comparisons: list[Comparison],
    memory: list[StepResult],
    ceiling: Ceiling | None,
    scaling: Sequence[StepResult] = (),
) -> list[Verdict]:
    found = [Verdict(c.what, f"{c.ratio}x", f">= {c.target}x", c.passed) for c in comparisons if c.target]
    bulwark = {s.step: s for s in steps if s.tool == "bulwark"}
    if "restore" in bulwark:
        kept = bool(bulwark["restore"].details.get("holes_kept"))
        found.append(Verdict("bulwark restore keeps holes", str(kept), "True", kept))
    if ceiling is not None and "full" in bulwark:
        share = ceiling_share(bulwark["full"], ceiling)
        wanted = f">= {TARGET_CEILING_SHARE:.0%}"
        found.append(Verdict("full backup vs 2-core ceiling", f"{share:.0%}", wanted, share >= TARGET_CEILING_SHARE))
    found.extend(_memory_verdicts(memory))
    found.extend(_scaling_verdicts(scaling))
    return found


def _scaling_verdicts(scaling: Sequence[StepResult]) -> Iterator[Verdict]:
    by_tool = {step.tool: step for step in scaling}
    if "bulwark" in by_tool and "restic" in by_tool and by_tool["bulwark"].wall_s > 0:
        ratio = by_tool["restic"].wall_s / by_tool["bulwark"].wall_s
        yield Verdict(
            f"{by_tool['bulwark'].step}: restic / bulwark",
            f"{ratio:.1f}x",
            f">= {TARGET_INCREMENTAL_VS_RESTIC:.1f}x",
            ratio >= TARGET_INCREMENTAL_VS_RESTIC,
        )


def _memory_verdicts(memory: list[StepResult]) -> Iterator[Verdict]:
    for run in memory:
        if run.details.get("disk_gib") == TARGET_RSS_DISK_GIB:
            yield Verdict(
                f"peak RSS, {run.step}",
                f"{run.max_rss_mib:.0f} MiB",
                f"<= {TARGET_PEAK_RSS_MIB:.0f} MiB",
                run.max_rss_mib <= TARGET_PEAK_RSS_MIB,
            )
    # Flat in *disk size*: compare runs that hold the same amount of data on disks of different sizes.
    same_data = [run for run in memory if run.details.get("data_gib") == memory[-1].details.get("data_gib")]
    if len(same_data) >= 2:
        small, big = min(same_data, key=_disk_gib), max(same_data, key=_disk_gib)
        growth = big.max_rss_mib - small.max_rss_mib
        # "Flat" allows noise: 8 MiB or 10 %, whichever is larger, across the size range.
        allowed = max(8.0, 0.10 * small.max_rss_mib)
        yield Verdict(
            f"RSS flat from {_disk_gib(small)} to {_disk_gib(big)} GiB",
            f"{growth:+.0f} MiB",
            f"<= +{allowed:.0f} MiB",
            growth <= allowed,
        )


def _disk_gib(run: StepResult) -> int:
    return int(run.details.get("disk_gib", 0))


def ceiling_share(full: StepResult, ceiling: Ceiling) -> float:
    return throughput_mb_s(full) / ceiling.data_mb_s


def throughput_mb_s(backup: StepResult) -> float:
    """Data read per second of the engine's own clock (the CLI's duration_s), else of wall time."""
    seconds = float(backup.details.get("duration_s") or backup.wall_s)
    return float(backup.details.get("bytes_read", 0)) / max(seconds, 1e-3) / 1e6


# --- report --------------------------------------------------------------------------------------


def print_steps(steps: list[StepResult], comparisons: list[Comparison]) -> None:
    ratio_of = {c.what: c.ratio for c in comparisons}
    table = Table(
        title="Same image, same machine (wall time from /usr/bin/time -v)",
        caption="bulwark faster by = tool wall time / Bulwark wall time; "
        "for incrementals: vs Bulwark's change-list run / vs its full-scan run",
    )
    for column in (
        "tool",
        "step",
        "wall s",
        "bulwark faster by",
        "peak RSS MiB",
        "CPU %",
        "repo MB",
        "notes",
    ):
        table.add_column(column, justify="left" if column in ("tool", "step", "notes") else "right")
    for s in steps:
        versus = _versus(s, ratio_of)
        repo = f"{s.repo_bytes / 1e6:.1f}" if s.repo_bytes is not None else ""
        cells = (f"{s.wall_s:.2f}", versus, f"{s.max_rss_mib:.0f}", str(s.cpu_pct), repo, _notes(s))
        table.add_row(s.tool, s.step, *cells)
    console.print(table)


def _versus(step: StepResult, ratio_of: dict[str, float | None]) -> str:
    if step.tool == "bulwark":
        return ""
    keys = {"incremental": ("incremental-ranges", "incremental-scan")}.get(step.step, (step.step,))
    ratios = [ratio_of.get(f"{k}: {step.tool} / bulwark") for k in keys]
    return " / ".join(f"{r}x" for r in ratios if r is not None)


def _notes(step: StepResult) -> str:
    d = step.details
    notes = []
    if "bytes_read" in d:
        notes.append(f"read {float(d['bytes_read']) / 1e6:.0f} MB")
    if "bytes_new" in d:
        notes.append(f"new {float(d['bytes_new']) / 1e6:.1f} MB")
    if "identical" in d:
        notes.append("[green]identical[/]" if d["identical"] else "[red bold]DIFFERS[/]")
        holes = "holes kept" if d.get("holes_kept") else "holes filled"
        notes.append(f"{d.get('allocated_mib')} MiB allocated ({holes})")
    return ", ".join(notes)


def print_memory(memory: list[StepResult]) -> None:
    table = Table(title="Bulwark peak memory on sparse images")
    for column in ("image", "wall s", "peak RSS MiB", "data read MB", "repo MB"):
        table.add_column(column, justify="left" if column == "image" else "right")
    for run in memory:
        read = float(run.details.get("bytes_read", 0)) / 1e6
        repo = (run.repo_bytes or 0) / 1e6
        table.add_row(run.step, f"{run.wall_s:.2f}", f"{run.max_rss_mib:.0f}", f"{read:.0f}", f"{repo:.0f}")
    console.print(table)


def print_scaling(scaling: list[StepResult]) -> None:
    table = Table(title="The same ~20 MiB change on a bigger disk (wall time from /usr/bin/time -v)")
    for column in ("tool", "step", "wall s", "peak RSS MiB"):
        table.add_column(column, justify="left" if column in ("tool", "step") else "right")
    for run in scaling:
        table.add_row(run.tool, run.step, f"{run.wall_s:.2f}", f"{run.max_rss_mib:.0f}")
    console.print(table)


def print_ceiling(ceiling: Ceiling, steps: list[StepResult]) -> None:
    console.print(
        f"2-core ceiling ({ceiling.threads} threads, HMAC-SHA256 + zstd-1 + AES-256-GCM on 1 MiB blocks): "
        f"{ceiling.data_mb_s:.0f} MB/s of this image's data "
        f"(compressible {ceiling.compressible_mb_s:.0f} MB/s at {ceiling.compressible_ratio}x, "
        f"random {ceiling.random_mb_s:.0f} MB/s)"
    )
    for s in steps:
        if s.tool == "bulwark" and s.step == "full" and "bytes_read" in s.details:
            by_wall = float(s.details["bytes_read"]) / s.wall_s / 1e6
            console.print(
                f"Bulwark full backup: {throughput_mb_s(s):.0f} MB/s of data read by the engine's clock = "
                f"{ceiling_share(s, ceiling):.0%} of the ceiling ({by_wall:.0f} MB/s = "
                f"{by_wall / ceiling.data_mb_s:.0%} by wall time, which includes start-up and key derivation)"
            )


def print_verdicts(found: list[Verdict]) -> None:
    table = Table(title="Targets")
    for column in ("target", "measured", "wanted", "result"):
        table.add_column(column)
    for v in found:
        result = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "n/a"}[v.passed]
        table.add_row(v.what, v.value, v.target, result)
    console.print(table)


def write_json(document: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2, default=str) + "\n")
    console.print(f"results written to {RESULTS.relative_to(PROJECT)}")


def tool_versions(tools: Sequence[str], run: Runner) -> dict[str, str]:
    commands = {"restic": ["restic", "version"], "borg": ["borg", "--version"]}
    versions = {}
    for tool in tools:
        if tool in commands:
            with contextlib.suppress(BenchError, OSError):
                versions[tool] = run.run(commands[tool]).strip()
    return versions


# --- main ----------------------------------------------------------------------------------------


def build_tools(names: Sequence[str]) -> list[Tool]:
    factories: dict[str, Callable[[], Tool]] = {
        "bulwark": lambda: Bulwark(bulwark_executable()),
        "borg": BorgFixed,
        "restic": Restic,
    }
    return [factories[name]() for name in names]


@dataclass(frozen=True)
class Outcome:
    layout: Layout
    ceiling: Ceiling
    trials: list[list[StepResult]]
    memory: list[StepResult]
    scaling: list[StepResult]
    orchestration: OrchestrationResult | None = None
    restore: RestoreBench | None = None
    lanes: LanesBench | None = None
    index: IndexBench | None = None

    @property
    def steps(self) -> list[StepResult]:
        return median_steps(self.trials)


def measure(options: Options, run: Runner, scratch: Path) -> Outcome:
    tools = build_tools(options.tools)
    base = scratch / "base.img"
    layout = plan_layout(options.size_mib, IMAGE_SEED)
    started = time.perf_counter()
    build_image(base, layout, IMAGE_SEED)
    console.print(f"image {layout.describe()} built in {time.perf_counter() - started:.1f} s")
    ceiling = measure_ceiling(base, layout)
    trials = []
    for trial in range(options.trials):
        for tool in tools:
            console.print(f"trial {trial + 1}/{options.trials}: {tool.name}")
            trials.append(run_trial(tool, run, scratch, base))
    base.unlink()
    memory = []
    if "bulwark" in options.tools:
        for spec in options.memory_runs:
            console.print(f"memory run: {spec.disk_gib} GiB disk, {spec.data_gib} GiB data")
            memory.append(run_memory(bulwark_executable(), run, scratch, spec))
    scaling = []
    if options.scale_mib and {"bulwark", "restic"} <= set(options.tools):
        console.print(f"scaling run: the same change on a {options.scale_mib} MiB disk, bulwark and restic")
        scaling = run_scaling(build_tools(("bulwark", "restic")), run, scratch, options.scale_mib, options.size_mib)
    orchestration = None
    if options.orchestration_vms:
        console.print(f"orchestration run: a snapshot-only session over {options.orchestration_vms} simulated VMs")
        orchestration = run_orchestration_bench(options.orchestration_vms, workdir=scratch)
    restore = None
    if options.restore_disk_gib:
        console.print(f"restore run: a {options.restore_disk_gib} GiB simulated disk and a 100 MiB file")
        restore = run_restore_bench(disk_gib=options.restore_disk_gib, workdir=scratch)
    lanes = None
    if options.lanes_mib:
        console.print(f"upload-lanes run: a {options.lanes_mib} MiB image into a store with modelled round trips")
        lanes = run_lanes_bench(size_mib=options.lanes_mib, workdir=scratch)
    index = None
    if options.index_blocks:
        console.print(f"index run: {options.index_blocks:,} block locations loaded in a fresh process")
        index = run_index_bench(blocks=options.index_blocks)
    return Outcome(layout, ceiling, trials, memory, scaling, orchestration, restore, lanes, index)


def report(outcome: Outcome, options: Options, run: Runner) -> bool:
    """Print and save everything; True when every restore was byte-identical."""
    steps = outcome.steps
    comparisons = compare(steps)
    found = verdicts(steps, comparisons, outcome.memory, outcome.ceiling, outcome.scaling)
    print_steps(steps, comparisons)
    if outcome.memory:
        print_memory(outcome.memory)
    if outcome.scaling:
        print_scaling(outcome.scaling)
    print_ceiling(outcome.ceiling, steps)
    if outcome.orchestration is not None:
        console.print(orchestration_table(outcome.orchestration))
        run_ok = outcome.orchestration.passed
        found.append(Verdict("orchestration session: every VM Success", str(run_ok), "True", run_ok))
    if outcome.lanes is not None:
        console.print(lanes_table(outcome.lanes))
    if outcome.index is not None:
        console.print(index_table(outcome.index))
    if outcome.restore is not None:
        restored = outcome.restore
        console.print(restore_table(restored))
        found.append(
            Verdict(
                "restore into an upload disk vs backup speed",
                f"{restored.speed_ratio:.2f}x ({restored.restore_mb_s:.0f} vs {restored.backup_mb_s:.0f} MB/s)",
                ">= 1x",
                restored.speed_ratio >= 1 and restored.identical,
            )
        )
        found.append(
            Verdict(
                "100 MiB file from a point: blocks fetched / the file's",
                f"{restored.read_amplification:.2f}x",
                "<= 2x",
                restored.read_amplification <= 2 and restored.file_identical,
            )
        )
    print_verdicts(found)
    identical = all(s.details["identical"] for s in steps if "identical" in s.details)
    write_json(
        {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "versions": tool_versions(options.tools, run),
            "options": asdict(options),
            "image": {"layout": outcome.layout.describe(), "mutate_pct": MUTATE_PCT, "seed": IMAGE_SEED},
            "ceiling": asdict(outcome.ceiling),
            "steps": [asdict(s) for s in steps],
            "trials": [[asdict(s) for s in trial] for trial in outcome.trials],
            "comparisons": [asdict(c) | {"passed": c.passed} for c in comparisons],
            "memory": [asdict(m) for m in outcome.memory],
            "scaling": [asdict(m) for m in outcome.scaling],
            "orchestration": asdict(outcome.orchestration) if outcome.orchestration is not None else None,
            "restore": asdict(outcome.restore) if outcome.restore is not None else None,
            "lanes": asdict(outcome.lanes) | {"gain": outcome.lanes.gain} if outcome.lanes is not None else None,
            "index": asdict(outcome.index) if outcome.index is not None else None,
            "targets": [asdict(v) for v in found],
            "restores_identical": identical,
        }
    )
    if not identical:
        console.print("[red bold]a restore is not byte-identical to its image[/]")
    return identical


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    largest_memory_run = max((m.data_gib for m in options.memory_runs), default=0) * GIB
    needed = 4 * options.size_mib * MIB + 2 * largest_memory_run + GIB
    try:
        ensure_packages(options.tools)
        scratch = Path(tempfile.mkdtemp(prefix="bulwark-bench-", dir=scratch_parent(options.workdir, needed)))
    except BenchError as exc:
        console.print(f"[red]bench: {exc}[/]")
        return 2
    console.print(f"scratch directory {scratch}")
    started = time.perf_counter()
    try:
        run = Runner(scratch)
        identical = report(measure(options, run, scratch), options, run)
        console.print(f"benchmark finished in {time.perf_counter() - started:.0f} s")
        return 0 if identical else 1
    except BenchError as exc:
        console.print(f"[red]bench: {exc}[/]")
        return 2
    finally:
        if options.keep:
            console.print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
