"""The audit log's hash chain: writing, continuing after a restart, and catching tampering."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest
from inferops_service import audit
from inferops_service.cli import main


def write_log(path: Path, records: int = 4) -> audit.AuditLog:
    log = audit.AuditLog(path)
    log.open()
    for i in range(records):
        log.write(audit.REQUEST, route="/v1/chat/completions", status=200, prompt_tokens=i)
    log.close()
    return log


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_records_are_chained_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = write_log(path, 3)
    records = [orjson.loads(line) for line in lines(path)]
    assert [r["prompt_tokens"] for r in records] == [0, 1, 2]
    assert records[0]["prev"] == audit.GENESIS
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"]
    for record in records:
        assert record["hash"] == audit.record_hash(record)
        assert set(record) == {*audit.FIELDS, "prev", "hash"}
        assert record["event"] == "request" and record["key"] is None
        assert record["time"].endswith("Z") and len(record["time"]) == 24
    assert log.head == records[-1]["hash"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    verdict = audit.verify(path)
    assert verdict.intact and verdict.records == 3 and verdict.head == log.head


def test_the_chain_continues_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    first = write_log(path, 2)
    second = write_log(path, 2)
    assert orjson.loads(lines(path)[2])["prev"] == first.head
    verdict = audit.verify(path)
    assert verdict.intact and verdict.records == 4 and verdict.head == second.head


def test_empty_or_missing_log_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.touch()
    assert audit.verify(path) == audit.Verdict(0, audit.GENESIS)
    assert audit.last_hash(tmp_path / "absent.log") == audit.GENESIS


def tamper_edit(rows: list[bytes]) -> list[bytes]:
    record = orjson.loads(rows[2])
    record["prompt_tokens"] = 99
    rows[2] = orjson.dumps(record) + b"\n"
    return rows


def tamper_rehash(rows: list[bytes]) -> list[bytes]:
    # An editor who also recomputes the record's own hash still breaks the next link.
    record = orjson.loads(rows[1])
    record["status"] = 500
    record["hash"] = audit.record_hash(record)
    rows[1] = orjson.dumps(record) + b"\n"
    return rows


@pytest.mark.parametrize(
    ("tamper", "bad_line", "reason"),
    [
        (tamper_edit, 3, "does not match its hash"),
        (tamper_rehash, 3, "prev does not match the hash of line 2"),
        (lambda rows: rows[:1] + rows[2:], 2, "removed, inserted or reordered"),
        (lambda rows: rows[1:], 1, "prev does not match the hash of the start of the log"),
        (lambda rows: [rows[0], rows[2], rows[1], rows[3]], 2, "reordered"),
        (lambda rows: [*rows[:2], rows[1], *rows[2:]], 3, "inserted"),
        (lambda rows: [*rows[:3], rows[3][:-10]], 4, "incomplete record"),
        (lambda rows: [rows[0], b"{not json\n", *rows[1:]], 2, "not a JSON record"),
        (lambda rows: [rows[0], b'{"a": 1}\n', *rows[1:]], 2, "no hash"),
    ],
)
def test_tampering_is_caught_at_the_first_bad_line(
    tmp_path: Path, tamper: object, bad_line: int, reason: str
) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 4)
    assert callable(tamper)
    path.write_bytes(b"".join(tamper(lines(path))))
    verdict = audit.verify(path)
    assert not verdict.intact
    assert verdict.bad_line == bad_line
    assert reason in verdict.reason
    assert verdict.records == bad_line - 1


def test_a_log_ending_mid_record_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 2)
    with path.open("ab") as f:
        f.write(b'{"event": "requ')
    with pytest.raises(audit.AuditError, match=r"incomplete record.*audit verify"):
        audit.AuditLog(path).open()


def test_a_log_ending_in_something_else_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text("hello\n")
    with pytest.raises(audit.AuditError, match="not an audit record"):
        audit.AuditLog(path).open()


def test_an_unopenable_path_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(audit.AuditError, match="make its directory exist"):
        audit.AuditLog(tmp_path / "missing-dir" / "audit.log").open()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_failed_write_is_reported_and_not_chained(caplog: pytest.LogCaptureFixture) -> None:
    failures: list[bool] = []
    log = audit.AuditLog("/dev/full", on_error=lambda: failures.append(True))
    log.open()
    try:
        log.write(audit.REQUEST, status=200)
    finally:
        log.close()
    assert failures == [True]
    assert log.head == audit.GENESIS
    assert "audit record not written to /dev/full" in caplog.text


def test_verify_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.log"
    log = write_log(path, 3)
    assert main(["audit", "verify", str(path)]) == 0
    assert f"intact, 3 records, head {log.head}" in capsys.readouterr().out
    rows = lines(path)
    path.write_bytes(rows[0] + rows[2])
    assert main(["audit", "verify", str(path)]) == 1
    assert "line 2: prev does not match" in capsys.readouterr().out
    assert main(["audit", "verify", str(tmp_path / "absent.log")]) == 2
    assert "cannot read" in capsys.readouterr().err
