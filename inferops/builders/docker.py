"""The cluster builder: the same reproducible source tar, built by Docker into an OCI image.

The build context is exactly the artifact the local builder makes (the
service's tracked files at one commit, byte-reproducible), streamed to
``docker build -`` on standard input, so what a cluster runs is built from
what the local platform tested. The image is tagged with the source commit,
pushed, and referenced by the registry's digest. A commit already pushed is
not built again: its tag is pulled and its digest reused (registries such as
ECR keep tags immutable, so a second push of a rebuilt commit would fail). It
needs a Docker engine; ``DockerUnavailable`` says so when there is none.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from inferops.builders.local import BuildError, Image, resolve_revision, source_tar

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


class DockerUnavailable(BuildError):
    """No Docker engine answers here."""


class DockerBuilder:
    """Builds and pushes the service image with a Docker engine.

    ``repository`` is the image's name without a tag, e.g.
    ``123456789012.dkr.ecr.us-east-1.amazonaws.com/inferops/service``.
    """

    def __init__(
        self, repository: str, binary: str = "docker", run: Runner = subprocess.run
    ) -> None:
        self.repository = repository.rstrip("/")
        self.binary = binary
        self.run = run

    def _docker(self, args: Sequence[str], stdin: bytes | None = None) -> str:
        proc = self._call(args, stdin)
        if proc.returncode != 0:
            raise BuildError(f"docker {args[0]} failed: {_stderr(proc)}")
        return proc.stdout.decode(errors="replace").strip()

    def _call(
        self, args: Sequence[str], stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = self.run([self.binary, *args], input=stdin, capture_output=True, check=False)
        except FileNotFoundError:
            raise DockerUnavailable(
                f"{self.binary} not found: building cluster images needs Docker"
            ) from None
        err = _stderr(proc)
        if proc.returncode != 0 and ("Cannot connect to the Docker daemon" in err):
            raise DockerUnavailable(f"no Docker engine is running here: {err}")
        return proc

    def _digest(self, tag: str) -> str:
        repo_digest = self._docker(["inspect", "--format", "{{index .RepoDigests 0}}", tag])
        _, sep, digest = repo_digest.partition("@")
        if not sep or not digest.startswith("sha256:"):
            raise BuildError(f"docker did not report a registry digest for {tag}: {repo_digest!r}")
        return digest

    def build(self, repo: Path, revision: str, source: str) -> Image:
        """Build ``source`` at ``revision`` with its Dockerfile, push it, return it by digest.

        When the registry already holds the commit's tag, that image is the answer.
        """
        commit = resolve_revision(repo, revision)
        tag = f"{self.repository}:{commit[:12]}"
        if self._call(["pull", "--quiet", tag]).returncode != 0:
            context = source_tar(repo, commit, source)
            self._docker(
                ["build", "--label", f"org.opencontainers.image.revision={commit}", "-t", tag, "-"],
                stdin=context,
            )
            self._docker(["push", tag])
        digest = self._digest(tag)
        return Image(f"{self.repository}@{digest}", digest, commit, source)


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    return (proc.stderr or b"").decode(errors="replace").strip()
