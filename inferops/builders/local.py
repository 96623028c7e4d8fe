"""The local builder: ``service/`` at a git revision -> a content-addressed artifact.

The artifact is a tar of the service's tracked files at that revision, written
byte-for-byte reproducibly (sorted entries, fixed owners, times and modes), so
the same source always yields the same digest. It is stored as
``<images>/sha256-<hex>.tar`` with a JSON description beside it, and referenced
in manifests as ``inferops-service@sha256:<hex>``, like an OCI image pinned by
digest. The local platform unpacks it once and runs it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

REPOSITORY = "inferops-service"


class BuildError(Exception):
    """The image could not be built."""


@dataclass(frozen=True)
class Image:
    """A built image: its reference (pinned by digest) and where it came from."""

    ref: str
    digest: str
    revision: str
    source: str

    @property
    def short(self) -> str:
        """The first 12 hex digits of the digest, as people quote it."""
        return self.digest.removeprefix("sha256:")[:12]


def _git(repo: Path, *args: str, binary: bool = False) -> bytes:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"git {' '.join(args)} failed: {proc.stderr.decode().strip()}")
    return proc.stdout


def resolve_revision(repo: Path, revision: str) -> str:
    """The full commit id of ``revision`` in the project repository."""
    try:
        return (
            _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
            .decode()
            .strip()
        )
    except BuildError:
        raise BuildError(
            f"{revision!r} is not a commit of the project repository at {repo}; "
            "pass --version with a branch, tag or commit id"
        ) from None


def source_tar(repo: Path, revision: str, source: str) -> bytes:
    """The service's tracked files at ``revision`` as a reproducible tar."""
    listing = _git(repo, "ls-tree", "-r", "-z", "--full-tree", revision, "--", source)
    entries = []
    for raw in listing.split(b"\0"):
        if not raw:
            continue
        meta, raw_path = raw.split(b"\t", 1)
        raw_mode, kind, raw_sha = meta.split()
        if kind == b"blob":
            entries.append((raw_path.decode(), raw_mode.decode(), raw_sha.decode()))
    if not entries:
        raise BuildError(f"{source}/ has no files at {revision[:12]}: nothing to build")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode, sha in sorted(entries):
            data = _git(repo, "cat-file", "blob", sha)
            info = tarfile.TarInfo(path.removeprefix(source + "/"))
            info.size = len(data)
            info.mode = 0o755 if mode == "100755" else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def source_repo(source_dir: Path) -> tuple[Path, str]:
    """The git repository holding ``source_dir``, and the folder's path inside it."""
    try:
        top = _git(source_dir, "rev-parse", "--show-toplevel").decode().strip()
    except (BuildError, FileNotFoundError):
        raise BuildError(
            f"{source_dir} is not inside a git repository: the build takes the service "
            "from a commit, so clone the project with git"
        ) from None
    return Path(top), source_dir.resolve().relative_to(Path(top).resolve()).as_posix()


def build(repo: Path, revision: str, source: str, images_dir: Path) -> Image:
    """Build ``source`` at ``revision`` into ``images_dir``; a rebuild is a no-op."""
    commit = resolve_revision(repo, revision)
    data = source_tar(repo, commit, source)
    hexdigest = hashlib.sha256(data).hexdigest()
    image = Image(f"{REPOSITORY}@sha256:{hexdigest}", f"sha256:{hexdigest}", commit, source)
    images_dir.mkdir(parents=True, exist_ok=True)
    target = images_dir / f"sha256-{hexdigest}.tar"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    (images_dir / f"sha256-{hexdigest}.json").write_text(json.dumps(asdict(image), indent=2))
    return image


def digest_of(ref: str) -> str:
    """The hex digest of an image reference pinned by digest."""
    _, sep, digest = ref.partition("@sha256:")
    if not sep or len(digest) != 64:
        raise BuildError(f"image {ref!r} is not pinned by a sha256 digest")
    return digest


def unpack(images_dir: Path, ref: str) -> Path:
    """The folder where the image is unpacked (unpacking it the first time)."""
    hexdigest = digest_of(ref)
    root = images_dir / hexdigest
    if root.is_dir():
        return root
    archive = images_dir / f"sha256-{hexdigest}.tar"
    if not archive.is_file():
        raise BuildError(f"image {ref} is not in {images_dir}: build it first (inferops build)")
    if hashlib.sha256(archive.read_bytes()).hexdigest() != hexdigest:
        raise BuildError(f"{archive} does not match its digest: delete it and build again")
    tmp = Path(tempfile.mkdtemp(dir=images_dir, prefix=".unpack-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        try:
            tmp.replace(root)
        except OSError:
            if not root.is_dir():
                raise
            # Another caller unpacked the same image meanwhile: the same bytes, keep theirs.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
