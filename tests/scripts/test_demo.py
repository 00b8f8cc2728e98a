"""Pure helpers of the demo (scripts/demo.py); the demo itself is `make demo`."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from scripts.demo import (
    MIB,
    POLICY_ID,
    listening_url,
    policy_document,
    same_content,
    short_id,
    size_text,
    snapshot_label,
    throughput_text,
)
from scripts.demo_sql import bacpac_differences, connection_fields, is_sql, member_count
from shared.policy.document import policy_from_dict

SUB = "00000000-0000-0000-0000-000000000000"


def test_listening_url_is_read_from_the_runtime_line() -> None:
    assert listening_url("listening on http://127.0.0.1:40597\n") == "http://127.0.0.1:40597"
    assert listening_url("INFO host started") is None


def test_sizes_and_throughput_read_well() -> None:
    assert size_text(512) == "512 B"
    assert size_text(1536) == "1.5 KiB"
    assert size_text(3 * MIB) == "3.00 MiB"
    assert throughput_text(10 * MIB, 2.0) == "5.00 MiB/s"
    assert throughput_text(0, 1.0) == throughput_text(MIB, 0.0) == throughput_text(MIB, None) == "-"


def test_ids_are_shortened_to_what_the_row_does_not_say() -> None:
    disk = f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Compute/disks/app-01-data"
    snapshot = f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Compute/snapshots/"
    snapshot += "bulwark-app-01-data-ab12-cd"
    assert short_id(disk) == "app-01-data"
    assert snapshot_label(snapshot, disk) == "…ab12-cd"
    blob = "https://acct.blob.core.windows.net/vhds/legacy-01-os.vhd"
    assert short_id(blob) == "legacy-01-os.vhd"
    assert snapshot_label(f"{blob}?snapshot=2026-11-25T18:19:30.1234567Z", blob) == "blob @2026-11-25T18:19:30Z"
    assert short_id(None) == snapshot_label(None, disk) == "-"


def test_the_policy_is_valid_and_holds_no_secret(tmp_path: Path) -> None:
    secret = tmp_path / "repo.passphrase"
    secret.write_text("not-in-the-policy\n")
    for sql_secret in (None, tmp_path / "sql.password"):
        document = policy_document(SUB, "westeurope", tmp_path / "repo", secret, sql_secret)
        policy = policy_from_dict(document)
        assert document["id"] == POLICY_ID and policy is not None
        assert "not-in-the-policy" not in repr(document)
        assert ("sql" in document) == (sql_secret is not None)


def test_same_content_compares_sparse_files_in_chunks(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for path in (first, second):
        with path.open("wb") as handle:
            handle.truncate(9 * MIB)
            handle.seek(5 * MIB)
            handle.write(b"data")
    assert same_content(first, second, chunk=MIB)
    with second.open("r+b") as handle:
        handle.seek(8 * MIB + 7)
        handle.write(b"x")
    assert not same_content(first, second, chunk=MIB)
    os.truncate(second, 8 * MIB)
    assert not same_content(first, second)


def test_bacpac_members_compare_up_to_the_exports_identity(tmp_path: Path) -> None:
    def bacpac(path: Path, rows: bytes, identity: bytes) -> Path:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model.xml", b"<model/>")
            archive.writestr("Data/dbo.Orders/TableData-000-00000.BCP", rows)
            archive.writestr("Origin.xml", b"<Origin><Identity>" + identity + b"</Identity><Start>t</Start></Origin>")
        return path

    reference = bacpac(tmp_path / "ref.bacpac", b"rows", b"one")
    assert bacpac_differences(bacpac(tmp_path / "same.bacpac", b"rows", b"two"), reference) == []
    changed = bacpac(tmp_path / "changed.bacpac", b"other rows", b"one")
    assert bacpac_differences(changed, reference) == ["Data/dbo.Orders/TableData-000-00000.BCP"]
    assert member_count(reference) == 3


def test_sql_ids_and_connection_strings() -> None:
    assert is_sql(f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Sql/servers/s/databases/sales")
    assert not is_sql(f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm")
    fields = connection_fields("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5==;")
    assert fields["AccountName"] == "devstoreaccount1" and fields["AccountKey"] == "a2V5=="
