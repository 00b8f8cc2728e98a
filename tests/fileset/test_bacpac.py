"""BACPACs stored as file-set points and rebuilt: identical members, valid checksums, dedup by table."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from shared.core.chunking import DEFAULT_CHUNKER, chunk_stream
from shared.core.errors import IntegrityError, SourceError, UsageError
from shared.engine.fileset import FileSetBackupResult, backup_fileset, restore_fileset
from shared.repo import walk
from shared.repo.checker import verify_repository
from shared.repo.pack import pack_key
from shared.repo.point import LIST_SPAN, Point, decode_chunk_list, encode_chunk_list
from shared.repo.repository import Repository
from shared.sources.bacpac import BacpacFile, BacpacWriter, parse_origin
from tests.fileset.bacpacs import (
    MODEL,
    copy_with,
    fixture_path,
    members_of,
    origin_for,
    random_pieces,
    rows,
    write_bacpac,
)

ZIP_FIELDS = (
    "filename",
    "date_time",
    "compress_type",
    "external_attr",
    "internal_attr",
    "create_system",
    "create_version",
    "extract_version",
    "comment",
    "extra",
    "CRC",
    "file_size",
)


def store(repo: Repository, path: Path) -> FileSetBackupResult:
    with BacpacFile(path) as bacpac:
        return backup_fileset(repo, bacpac, kind="bacpac")


def rebuild(repo: Repository, point_id: str, target: Path) -> Path:
    point = repo.load_point(point_id)
    with BacpacWriter(target, walk.files_of(point)) as sink:
        restore_fileset(repo, point, sink)
    return target


def assert_same_bacpac(original: Path, rebuilt: Path) -> None:
    assert members_of(rebuilt) == members_of(original)  # names, order and bytes
    with zipfile.ZipFile(original) as a, zipfile.ZipFile(rebuilt) as b:
        for x, y in zip(a.infolist(), b.infolist(), strict=True):
            assert [getattr(x, f) for f in ZIP_FIELDS] == [getattr(y, f) for f in ZIP_FIELDS], x.filename
        assert b.testzip() is None
        origin = parse_origin(b.read("Origin.xml"))
        assert origin.checksums["model.xml"] == hashlib.sha256(b.read("model.xml")).hexdigest().upper()


def test_adventureworks_round_trip(repo: Repository, tmp_path: Path) -> None:
    source = fixture_path()
    result = store(repo, source)
    assert result.members == 16 and result.chunks_dedup == 0
    point = repo.load_point(result.point.point_id)
    assert point.kind == "bacpac" and point.image is None and point.files is not None
    assert point.files.chunker == DEFAULT_CHUNKER.to_dict()
    assert [m.name for m in point.files.members] == [name for name, _ in members_of(source)]

    rebuilt = rebuild(repo, point.point_id, tmp_path / "restored.bacpac")
    assert_same_bacpac(source, rebuilt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "restored.bacpac"]  # no temporary left


def test_browsing_metadata(tmp_path: Path) -> None:
    with BacpacFile(fixture_path()) as bacpac:
        tables = {f"{t.schema}.{t.name}": t for t in bacpac.tables()}
        assert bacpac.total_rows == 4277
    assert len(tables) == 12
    assert tables["SalesLT.Product"].data_members == 1 and tables["SalesLT.Product"].data_bytes == 712699
    assert tables["dbo.ErrorLog"].data_members == 0  # an empty table has no data member
    assert all(t.rows is None for t in tables.values())  # BACPACs carry only the total

    synthetic = write_bacpac(tmp_path / "s.bacpac", [("Data/dbo.Big/TableData-000-00000.BCP", [b"x" * 10])])
    with BacpacFile(synthetic) as bacpac:
        assert [(t.schema, t.name, t.data_bytes) for t in bacpac.tables()] == [
            ("dbo", "Big", 10),
            ("dbo", "Odd]Name", 0),
        ]


def test_one_changed_table_stores_only_its_new_chunks(repo: Repository, tmp_path: Path) -> None:
    source = fixture_path()
    first = store(repo, source)
    changed_name = "Data/SalesLT.Product/TableData-000-00000.BCP"
    original = dict(members_of(source))[changed_name]
    edited = bytearray(original)
    edited[len(edited) // 2 : len(edited) // 2 + 8] = b"CHANGED!"  # one row's bytes
    second_path = copy_with(source, tmp_path / "changed.bacpac", {changed_name: bytes(edited)})

    second = store(repo, second_path)

    old_ids = {repo.key.block_id(bytes(c)) for c in chunk_stream(io.BytesIO(original))}
    new_chunks = [bytes(c) for c in chunk_stream(io.BytesIO(bytes(edited)))]
    expected = [c for c in new_chunks if repo.key.block_id(c) not in old_ids]
    assert expected, "the edit must change at least one chunk"
    assert second.chunks_new == len(expected)
    assert second.bytes_new == sum(len(c) for c in expected)
    assert second.lists_new == 1  # only the changed member's chunk list is new
    a = repo.load_point(first.point.point_id).files
    b = repo.load_point(second.point.point_id).files
    assert a is not None and b is not None
    for old, new in zip(a.members, b.members, strict=True):
        assert (old.lists == new.lists) == (new.name != changed_name), new.name  # every other member dedups
    assert_same_bacpac(second_path, rebuild(repo, second.point.point_id, tmp_path / "second.bacpac"))
    assert_same_bacpac(source, rebuild(repo, first.point.point_id, tmp_path / "first.bacpac"))


def test_a_row_changed_in_a_large_table_costs_a_chunk_not_the_table(repo: Repository, tmp_path: Path) -> None:
    table = rows(300_000, seed=1)  # ~12 MiB: about ten chunks
    edited = bytearray(table)
    edited[5_000_000:5_000_004] = b"\xff\xfe\xfd\xfc"
    members = {"Data/dbo.Big/TableData-000-00000.BCP": table, "Data/dbo.Small/TableData-000-00000.BCP": b"x" * 100}
    v1 = write_bacpac(tmp_path / "v1.bacpac", [(n, [d]) for n, d in members.items()], compression=zipfile.ZIP_DEFLATED)
    members["Data/dbo.Big/TableData-000-00000.BCP"] = bytes(edited)
    v2 = write_bacpac(tmp_path / "v2.bacpac", [(n, [d]) for n, d in members.items()], compression=zipfile.ZIP_DEFLATED)

    first = store(repo, v1)
    second = store(repo, v2)
    assert first.chunks >= 8
    assert 1 <= second.chunks_new <= 2
    assert second.bytes_new <= 2 * DEFAULT_CHUNKER.max_size and second.bytes_new < len(table) / 3
    assert_same_bacpac(v2, rebuild(repo, second.point.point_id, tmp_path / "v2-restored.bacpac"))


def test_members_span_several_chunk_lists(repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunk lists (as a 200 GB member would have them at the real LIST_SPAN).
    monkeypatch.setattr("shared.engine.fileset.LIST_SPAN", 3)
    path = write_bacpac(tmp_path / "big.bacpac", [("Data/dbo.Big/TableData-000-00000.BCP", random_pieces(24 << 20, 3))])
    result = store(repo, path)
    point = repo.load_point(result.point.point_id)
    assert point.files is not None
    big = point.files.members[2]
    big_chunks = result.chunks - 3  # model.xml, DacMetadata.xml and Origin.xml are one chunk each
    assert len(big.lists) == -(-big_chunks // 3) >= 3
    refs = list(walk.member_chunks(repo, repo.load_index(), point, big))
    assert sum(length for _, length in refs) == big.size == 24 << 20
    assert_same_bacpac(path, rebuild(repo, point.point_id, tmp_path / "out.bacpac"))
    assert verify_repository(repo, read_data=True).ok


def test_chunk_list_codec() -> None:
    entries = [(bytes([n]) * 32, n * 1000) for n in range(5)]
    encoded = encode_chunk_list(entries)
    assert len(encoded) == 8 + 5 * 36 and encoded[:8] == b"\x01\x00\x00\x00\x05\x00\x00\x00"
    assert decode_chunk_list(encoded) == entries
    with pytest.raises(ValueError):
        decode_chunk_list(encoded[:-1])
    with pytest.raises(ValueError):
        encode_chunk_list([(b"\x00" * 32, 1)] * (LIST_SPAN + 1))


def test_image_manifests_are_unchanged_and_old_ones_still_read() -> None:
    doc = {
        "version": 1,
        "id": "3f2a9c0d11e2f3a4",
        "kind": "image",
        "time": "2026-11-25T17:00:00.000000Z",
        "source": "disk",
        "host": "h",
        "parent": None,
        "tags": {},
        "stats": {},
        "image": {"size": 1, "block_size": 1048576, "map_span": 16384, "maps": [None]},
    }
    point = Point.from_json(json.dumps(doc).encode())
    assert point.files is None
    assert json.loads(point.to_json()) == doc  # no "files" key on image points


def test_rebuild_checks_crc_and_removes_partial_output(repo: Repository, tmp_path: Path) -> None:
    result = store(repo, fixture_path())
    point = repo.load_point(result.point.point_id)
    assert point.files is not None
    member = point.files.members[3]
    forged = type(member)(member.name, member.size, member.lists, {**member.attrs, "crc32": 12345})
    files = type(point.files)(
        point.files.container,
        point.files.chunker,
        [*point.files.members[:3], forged, *point.files.members[4:]],
        point.files.attrs,
    )
    target = tmp_path / "out.bacpac"
    with pytest.raises(IntegrityError, match="CRC-32"), BacpacWriter(target, files) as sink:
        restore_fileset(repo, dataclasses.replace(point, files=files), sink)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]


def test_damaged_chunk_fails_the_restore_naming_the_block(repo: Repository, tmp_path: Path) -> None:
    result = store(repo, fixture_path())
    point = repo.load_point(result.point.point_id)
    index = repo.load_index()
    assert point.files is not None
    member = next(m for m in point.files.members if m.name.endswith("Product/TableData-000-00000.BCP"))
    chunk_id, _ = next(walk.member_chunks(repo, index, point, member))
    location = index.get(chunk_id)
    assert location is not None
    pack = Path(repo.store.describe()) / pack_key(location.pack_id)
    data = bytearray(pack.read_bytes())
    data[location.entry.offset + 40] ^= 0xFF
    pack.write_bytes(bytes(data))

    target = tmp_path / "out.bacpac"
    with pytest.raises(IntegrityError, match=chunk_id.hex()[:16]):
        rebuild(repo, point.point_id, target)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["repo"]
    report = verify_repository(repo, read_data=True)
    assert not report.ok and report.problems[0].points == [point.point_id]


def test_restore_refuses_an_existing_target_and_image_points(repo: Repository, tmp_path: Path) -> None:
    result = store(repo, fixture_path())
    target = tmp_path / "exists.bacpac"
    target.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="already exists"):
        rebuild(repo, result.point.point_id, target)
    assert target.read_bytes() == b"keep me"
    with pytest.raises(UsageError, match=r"cannot create .*nowhere/out\.bacpac: No such file or directory"):
        rebuild(repo, result.point.point_id, tmp_path / "nowhere" / "out.bacpac")
    image_point = Point(point_id="0" * 16, kind="image", time="", source="", host="")
    with pytest.raises(UsageError, match="not a file set"):
        walk.files_of(image_point)


def test_invalid_inputs_are_refused_with_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a zip")
    with pytest.raises(SourceError, match="is not a BACPAC: it is not a zip archive"):
        BacpacFile(text)
    with pytest.raises(SourceError, match="does not exist"):
        BacpacFile(tmp_path / "missing.bacpac")

    no_model = tmp_path / "no-model.bacpac"
    with zipfile.ZipFile(no_model, "w") as archive:
        archive.writestr("Origin.xml", origin_for(MODEL))
    with pytest.raises(SourceError, match=re.escape("is not a BACPAC: it has no model.xml")):
        BacpacFile(no_model)

    bad_sum = tmp_path / "bad-sum.bacpac"
    with zipfile.ZipFile(bad_sum, "w") as archive:
        archive.writestr("model.xml", MODEL + b" ")
        archive.writestr("Origin.xml", origin_for(MODEL))
    with pytest.raises(SourceError, match=re.escape("is damaged: model.xml does not match its checksum in Origin.xml")):
        BacpacFile(bad_sum)

    no_sum = tmp_path / "no-sum.bacpac"
    with zipfile.ZipFile(no_sum, "w") as archive:
        archive.writestr("model.xml", MODEL)
        archive.writestr("Origin.xml", b"<DacOrigin/>")
    with pytest.raises(SourceError, match=re.escape("holds no checksum of model.xml")):
        BacpacFile(no_sum)


def test_a_member_failing_its_crc_stops_the_backup_before_any_point(repo: Repository, tmp_path: Path) -> None:
    path = write_bacpac(tmp_path / "crc.bacpac", [("Data/dbo.Big/TableData-000-00000.BCP", [b"A" * 5000])])
    data = bytearray(path.read_bytes())
    at = data.index(b"A" * 5000)
    data[at + 10] = ord("B")  # stored member: the zip CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(
        SourceError, match=re.escape("is damaged: member Data/dbo.Big/TableData-000-00000.BCP cannot be read")
    ):
        store(repo, path)
    assert repo.point_ids() == []
