"""The cluster builder: the same reproducible source tar, built by Docker into an OCI image.

The build context is exactly the artifact the local builder makes (the
service's tracked files at one commit, byte-reproducible), streamed to
``docker build -`` on standard input, so what a cluster runs is built from
what the local platform tested. The image is tagged with the source commit,
pushed, and referenced by the registry's digest. It needs a Docker engine;
``DockerUnavailable`` says so when there is none.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from inferops.builders.local import REPOSITORY, BuildError, Image, resolve_revision, source_tar

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


class DockerUnavailable(BuildError):
    """No Docker engine answers here."""


class DockerBuilder:
    """Builds and pushes the service image with a Docker engine."""

    def __init__(self, registry: str, binary: str = "docker", run: Runner = subprocess.run) -> None:
        self.registry = registry.rstrip("/")
        self.binary = binary
        self.run = run

    def _docker(self, args: Sequence[str], stdin: bytes | None = None) -> str:
        try:
            proc = self.run([self.binary, *args], input=stdin, capture_output=True, check=False)
        except FileNotFoundError:
            raise DockerUnavailable(
                f"{self.binary} not found: building cluster images needs Docker"
            ) from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            if "Cannot connect to the Docker daemon" in err or "docker.sock" in err:
                raise DockerUnavailable(f"no Docker engine is running here: {err}")
            raise BuildError(f"docker {args[0]} failed: {err}")
        return proc.stdout.decode(errors="replace").strip()

    def build(self, repo: Path, revision: str, source: str) -> Image:
        """Build ``source`` at ``revision`` with its Dockerfile, push it, return it by digest."""
        commit = resolve_revision(repo, revision)
        context = source_tar(repo, commit, source)
        tag = f"{self.registry}/{REPOSITORY}:{commit[:12]}"
        self._docker(
            ["build", "--label", f"org.opencontainers.image.revision={commit}", "-t", tag, "-"],
            stdin=context,
        )
        self._docker(["push", tag])
        repo_digest = self._docker(["inspect", "--format", "{{index .RepoDigests 0}}", tag])
        _, sep, digest = repo_digest.partition("@")
        if not sep or not digest.startswith("sha256:"):
            raise BuildError(f"docker did not report a registry digest for {tag}: {repo_digest!r}")
        return Image(f"{self.registry}/{REPOSITORY}@{digest}", digest, commit, source)
