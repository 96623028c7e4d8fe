"""Builders: reproducible local artifacts, and the Docker build driven at its CLI boundary."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from inferops.builders.docker import DockerBuilder, DockerUnavailable
from inferops.builders.local import BuildError, build, source_repo, source_tar, unpack


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "service" / "pkg").mkdir(parents=True)
    (root / "service" / "pkg" / "__init__.py").write_text("VERSION = 1\n")
    (root / "service" / "Dockerfile").write_text("FROM scratch\n")
    (root / "README").write_text("not part of the image\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return root


def test_the_same_source_gives_the_same_digest(repo: Path, tmp_path: Path) -> None:
    first = build(repo, "HEAD", "service", tmp_path / "a")
    (repo / "README").write_text("changed outside the service\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    second = build(repo, "HEAD", "service", tmp_path / "b")
    assert first.digest == second.digest
    assert first.revision != second.revision
    data = (tmp_path / "a" / f"sha256-{first.digest[7:]}.tar").read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == first.digest


def test_a_service_change_changes_the_digest_and_unpacks(repo: Path, tmp_path: Path) -> None:
    before = build(repo, "HEAD", "service", tmp_path)
    (repo / "service" / "pkg" / "__init__.py").write_text("VERSION = 2\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "bump")
    after = build(repo, "HEAD", "service", tmp_path)
    assert before.digest != after.digest
    root = unpack(tmp_path, after.ref)
    assert (root / "pkg" / "__init__.py").read_text() == "VERSION = 2\n"
    assert not (root / "README").exists()


def test_two_callers_unpacking_one_image_at_once_both_get_it(repo: Path, tmp_path: Path) -> None:
    import threading

    image = build(repo, "HEAD", "service", tmp_path)
    roots: list[Path] = []
    errors: list[Exception] = []
    gate = threading.Barrier(4)

    def unpack_it() -> None:
        gate.wait()
        try:
            roots.append(unpack(tmp_path, image.ref))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=unpack_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(roots)) == 1
    assert (roots[0] / "pkg" / "__init__.py").is_file()
    assert not list(tmp_path.glob(".unpack-*"))


def test_bad_revisions_and_missing_images_say_what_to_do(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="--version"):
        build(repo, "no-such-branch", "service", tmp_path)
    with pytest.raises(BuildError, match="build it first"):
        unpack(tmp_path, "inferops-service@sha256:" + "1" * 64)
    with pytest.raises(BuildError, match="git repository"):
        source_repo(tmp_path)


def test_a_tampered_artifact_is_refused(repo: Path, tmp_path: Path) -> None:
    image = build(repo, "HEAD", "service", tmp_path)
    (tmp_path / f"sha256-{image.digest[7:]}.tar").write_bytes(b"tampered")
    with pytest.raises(BuildError, match="does not match its digest"):
        unpack(tmp_path, image.ref)


class FakeDocker:
    """Answers like the docker CLI does, with a registry of pushed tags, recording each call."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[list[str], bytes | None]] = []
        self.fail = fail
        self.built: set[str] = set()
        self.pushed: set[str] = set()

    def __call__(self, argv: list[str], input: bytes | None = None, **_: Any) -> Any:
        self.calls.append((argv, input))
        if self.fail:
            return subprocess.CompletedProcess(argv, 1, b"", self.fail.encode())
        verb, tag = argv[1], argv[-1] if argv[-1] != "-" else argv[-2]
        if verb == "pull" and tag not in self.pushed:
            return subprocess.CompletedProcess(argv, 1, b"", b"manifest unknown")
        if verb == "build":
            self.built.add(tag)
        if verb == "push":
            self.pushed.add(tag)
        out = b""
        if verb == "inspect":
            name = tag.rpartition(":")[0]
            out = name.encode() + b"@sha256:" + b"f" * 64 + b"\n"
        return subprocess.CompletedProcess(argv, 0, out, b"")

    @property
    def verbs(self) -> list[str]:
        return [argv[1] for argv, _ in self.calls]


def test_docker_builds_the_reproducible_context_and_pins_the_digest(repo: Path) -> None:
    docker = FakeDocker()
    builder = DockerBuilder("registry.example/team/inferops-service/", run=docker)
    image = builder.build(repo, "HEAD", "service")
    assert image.ref == "registry.example/team/inferops-service@sha256:" + "f" * 64
    build_argv, context = next(c for c in docker.calls if c[0][1] == "build")
    assert build_argv[-1] == "-"
    assert f"registry.example/team/inferops-service:{image.revision[:12]}" in build_argv
    assert context == source_tar(repo, image.revision, "service")
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        assert "Dockerfile" in tar.getnames()
    assert docker.verbs == ["pull", "build", "push", "inspect"]


def test_a_commit_already_pushed_is_pulled_not_rebuilt(repo: Path) -> None:
    docker = FakeDocker()
    builder = DockerBuilder("registry.example/inferops-service", run=docker)
    first = builder.build(repo, "HEAD", "service")
    docker.calls.clear()
    again = builder.build(repo, "HEAD", "service")
    assert again == first
    assert docker.verbs == ["pull", "inspect"]


def test_no_docker_engine_is_a_clear_error(repo: Path) -> None:
    docker = FakeDocker(fail="Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    with pytest.raises(DockerUnavailable, match="no Docker engine"):
        DockerBuilder("registry.example", run=docker).build(repo, "HEAD", "service")
