"""The GitOps repository on real git: seeding, one commit per change, trailers, conflicts."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from inferops.gitops.repo import GitOpsError, GitOpsRepo
from inferops.lock import EnvironmentBusy, EnvironmentLock

SEED = {"a.yaml": "x: 1\n", "b.yaml": "y: 1\n"}


def repo_at(tmp_path: Path, clone: str = "work") -> GitOpsRepo:
    return GitOpsRepo(tmp_path / "remote.git", tmp_path / clone, "main", "environments/local")


def test_create_is_idempotent_and_seeds_main(tmp_path: Path) -> None:
    repo = repo_at(tmp_path)
    head = repo.create(SEED, "seed", {"Release-Id": "r-0"})
    assert repo.create({"other.yaml": "z: 1\n"}, "again", {}) == head
    assert repo.files() == SEED
    default = subprocess.run(
        ["git", "--git-dir", str(tmp_path / "remote.git"), "symbolic-ref", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert default.strip() == "refs/heads/main"


def test_one_commit_per_change_with_trailers_and_no_empty_commits(tmp_path: Path) -> None:
    repo = repo_at(tmp_path)
    repo.create(SEED, "seed", {"Release-Id": "r-0"})
    sha = repo.commit(
        {"a.yaml": "x: 2\n"},
        "r-1 step 1/2: canary at 50%",
        "why it moved",
        {"Release-Id": "r-1", "Weight": "50", "Verdict": "start"},
    )
    assert sha == repo.head()
    assert repo.commit({"a.yaml": "x: 2\n"}, "nothing changed", "", {}) is None
    newest = repo.log()[0]
    assert newest.subject == "r-1 step 1/2: canary at 50%"
    assert newest.body == "why it moved"
    assert newest.trailers == {"Release-Id": "r-1", "Weight": "50", "Verdict": "start"}
    assert repo.files(sha)["a.yaml"] == "x: 2\n"
    assert len(repo.log()) == 2


def test_a_change_made_elsewhere_is_kept(tmp_path: Path) -> None:
    """Two clones commit in turn: each commit lands on top of the other's, nothing is lost."""
    first, second = repo_at(tmp_path, "one"), repo_at(tmp_path, "two")
    first.create(SEED, "seed", {})
    second.create(SEED, "seed", {})
    first.commit({"a.yaml": "x: 2\n"}, "first", "", {})
    second.commit({"b.yaml": "y: 2\n"}, "second", "", {})
    assert first.files() == {"a.yaml": "x: 2\n", "b.yaml": "y: 2\n"}
    assert [c.subject for c in first.log()] == ["second", "first", "seed"]


def test_concurrent_commits_from_threads_all_land(tmp_path: Path) -> None:
    repo_at(tmp_path).create(SEED, "seed", {})
    errors: list[Exception] = []

    def work(i: int) -> None:
        try:
            repo_at(tmp_path, f"clone{i}").commit(
                {f"f{i}.yaml": f"n: {i}\n"}, f"c{i}", "", {}, attempts=10
            )
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {f"f{i}.yaml" for i in range(4)} <= set(repo_at(tmp_path).files())


def test_reading_a_missing_environment_is_a_clear_error(tmp_path: Path) -> None:
    repo = repo_at(tmp_path)
    repo.create(SEED, "seed", {})
    other = GitOpsRepo(tmp_path / "remote.git", tmp_path / "w2", "main", "environments/prod")
    with pytest.raises(GitOpsError, match="environments/prod/ is empty or missing"):
        other.files()


def test_the_environment_lock_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "release.lock"
    with (
        EnvironmentLock(path, "local", "release r-7"),
        pytest.raises(EnvironmentBusy, match=r"held by release r-7 \(pid \d+"),
        EnvironmentLock(path, "local", "release r-8"),
    ):
        pass
    with EnvironmentLock(path, "local", "release r-8") as lock:
        assert lock.holder_info()["holder"] == "release r-8"


def hosted(tmp_path: Path) -> str:
    """An empty repository as a Git host holds it, reached by URL."""
    bare = tmp_path / "host" / "gitops.git"
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch", "main", str(bare)], check=True
    )
    return f"file://{bare}"


def test_a_repository_on_a_git_host_is_seeded_committed_and_read_by_url(tmp_path: Path) -> None:
    url = hosted(tmp_path)
    repo = GitOpsRepo(url, tmp_path / "work", "main", "environments/prod")
    assert repo.is_url and not repo.exists()
    seeded = repo.create(SEED, "seed", {"Release-Id": "r-0"})
    assert repo.exists() and repo.head() == seeded
    # Another machine's clone commits; this one sees it on its next read.
    other = GitOpsRepo(url, tmp_path / "elsewhere", "main", "environments/prod")
    moved = other.commit({"a.yaml": "x: 2\n"}, "r-1 step 1/2", "", {"Step": "1/2"})
    assert repo.head() == moved
    assert repo.files() == {"a.yaml": "x: 2\n", "b.yaml": "y: 1\n"}
    assert repo.files(seeded) == SEED
    assert [(c.subject, c.trailers.get("Step")) for c in repo.log()] == [
        ("r-1 step 1/2", "1/2"),
        ("seed", None),
    ]
    assert repo.commit({"b.yaml": "y: 2\n"}, "r-1 step 2/2", "", {}) is not None
    assert other.files()["b.yaml"] == "y: 2\n"


def test_a_missing_branch_on_a_git_host_is_a_clear_error(tmp_path: Path) -> None:
    repo = GitOpsRepo(hosted(tmp_path), tmp_path / "work", "main", "environments/prod")
    with pytest.raises(GitOpsError, match="has no branch main"):
        repo.head()
    assert repo.log() == []
