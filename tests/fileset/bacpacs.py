"""BACPACs for tests: the real AdventureWorksLT export, copies of it with one table changed, and
synthetic BACPAC-shaped archives with members as large as a test needs."""

from __future__ import annotations

import hashlib
import random
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.support.shared_fixtures import ADVENTURE_WORKS_BACPAC

FIXTURE = ADVENTURE_WORKS_BACPAC
MiB = 1 << 20

ORIGIN_TEMPLATE = """\ufeff<?xml version="1.0" encoding="utf-8"?>
<DacOrigin xmlns="http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02">
  <ExportStatistics><TableRowCountTotalTag>{rows}</TableRowCountTotalTag></ExportStatistics>
  <Checksums><Checksum Uri="/model.xml">{digest}</Checksum></Checksums>
</DacOrigin>"""

MODEL = b"""<?xml version="1.0" encoding="utf-8"?>
<DataSchemaModel xmlns="http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02"><Model>
<Element Type="SqlSchema" Name="[dbo]" />
<Element Type="SqlTable" Name="[dbo].[Big]"><Property Name="IsAnsiNullsOn" Value="True" /></Element>
<Element Type="SqlTable" Name="[dbo].[Odd]]Name]" />
</Model></DataSchemaModel>"""


def fixture_path() -> Path:
    if not FIXTURE.is_file():
        pytest.skip(f"the AdventureWorksLT fixture is not there ({FIXTURE}): ../shared is absent")
    return FIXTURE


def origin_for(model: bytes, rows: int = 0) -> bytes:
    return ORIGIN_TEMPLATE.format(rows=rows, digest=hashlib.sha256(model).hexdigest().upper()).encode()


def members_of(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def copy_with(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    """A copy of ``source`` with some members' content replaced; every other byte of metadata kept."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, replace.get(info.filename, old.read(info)))
    return target


def write_bacpac(
    target: Path,
    data: Iterable[tuple[str, Iterable[bytes]]],
    *,
    model: bytes = MODEL,
    compression: int = zipfile.ZIP_STORED,
) -> Path:
    """A BACPAC-shaped zip: model.xml, the data members (streamed piece by piece), Origin.xml."""
    with zipfile.ZipFile(target, "w", compression=compression, allowZip64=True) as archive:
        archive.writestr("model.xml", model)
        archive.writestr("DacMetadata.xml", b"<DacType><Name>synthetic</Name></DacType>")
        for name, pieces in data:
            with archive.open(zipfile.ZipInfo(name, date_time=(2026, 11, 25, 17, 0, 0)), "w", force_zip64=True) as out:
                for piece in pieces:
                    out.write(piece)
        archive.writestr("Origin.xml", origin_for(model))
    return target


def random_pieces(total: int, seed: int, piece: int = MiB) -> Iterable[bytes]:
    """``total`` pseudo-random bytes, one piece at a time (never all in memory)."""
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        size = min(piece, total - sent)
        yield rng.randbytes(size)
        sent += size


def rows(count: int, seed: int) -> bytes:
    """BCP-like table content: fixed-shape rows of compressible text and numbers."""
    rng = random.Random(seed)
    out = bytearray()
    for n in range(count):
        out += n.to_bytes(4, "little") + rng.choice([b"Seattle", b"Bothell", b"Toronto"]) + b"\x00"
        out += str(rng.randrange(10**9)).encode().rjust(12, b" ") + rng.randbytes(16)
    return bytes(out)
