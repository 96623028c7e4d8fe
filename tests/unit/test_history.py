"""Releases parsed from the GitOps log's trailers."""

from inferops.gitops import messages
from inferops.gitops.history import next_release_id, releases, unfinished
from inferops.gitops.repo import Commit, parse_trailers

IMG = "inferops-service@sha256:" + "c" * 64
OLD = "inferops-service@sha256:" + "d" * 64


def commit(n: int, msg: messages.Message) -> Commit:
    return Commit(
        f"{n:040d}", f"2026-11-29T10:00:{n:02d}+00:00", msg.subject, msg.body, msg.trailers
    )


def log_of(*msgs: messages.Message) -> list[Commit]:
    """Newest first, as git prints it."""
    return [commit(i, m) for i, m in enumerate(msgs)][::-1]


def test_a_promoted_and_a_rolled_back_release() -> None:
    log = log_of(
        messages.seed("local", OLD),
        messages.step("r-1", 1, 2, 50, IMG, "start", "go"),
        messages.step("r-1", 2, 2, 100, IMG, "continue", "fine"),
        messages.promote("r-1", 2, IMG, "all checks passed"),
        messages.step("r-2", 1, 2, 50, OLD, "start", "go"),
        messages.rollback("r-2", 1, 2, OLD, IMG, "error rate 8% exceeds 1%"),
    )
    found = releases(log)
    assert [r.release_id for r in found] == ["r-0", "r-1", "r-2"]
    assert [r.outcome for r in found[1:]] == ["promoted", "rolled back"]
    assert [e.weight for e in found[1].events] == [50, 100, 0]
    assert found[2].events[-1].reason == "error rate 8% exceeds 1%"
    assert next_release_id(log) == "r-3"
    assert unfinished(log) is None


def test_a_release_without_a_final_verdict_is_unfinished() -> None:
    log = log_of(messages.seed("local", OLD), messages.step("r-1", 1, 4, 10, IMG, "start", ""))
    pending = unfinished(log)
    assert pending is not None and pending.release_id == "r-1"
    assert pending.outcome == "in progress"


def test_trailer_parsing_ignores_prose() -> None:
    text = "Release-Id: r-4\nWeight: 25\nthis is: not a trailer\n"
    assert parse_trailers(text) == {"Release-Id": "r-4", "Weight": "25"}


def test_first_release_id() -> None:
    assert next_release_id([]) == "r-1"
