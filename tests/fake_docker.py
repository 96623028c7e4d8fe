"""``docker``, as far as the release pipeline's cluster builder uses it, for the tests.

This is the boundary where a real Docker engine and an image registry would be:
no Docker engine runs on the test machines and no registry is reachable, so the
tests put this program first on PATH as ``docker`` (``install`` writes it). It
answers the commands ``inferops.builders.docker`` runs, with what an engine and a
registry would answer:

- ``docker build [--label K=V]... -t TAG -`` reads the build context (a tar) from
  standard input, refuses one without a Dockerfile, stores it as
  ``<images>/sha256-<hex>.tar`` (hex: the SHA-256 of its bytes) and tags it;
- ``docker push TAG`` fails unless TAG was built (or pulled) here; otherwise the
  registry holds it;
- ``docker pull [-q|--quiet] TAG`` fails unless the registry holds TAG;
- ``docker inspect --format '{{index .RepoDigests 0}}' TAG`` prints
  ``<TAG without its :tag>@sha256:<hex>`` once TAG is pushed (an image never
  pushed has no repository digest, and the template fails as Docker's does).

Not emulated: running a Dockerfile (the image *is* its context, content-addressed;
``tests/cluster_sim.py`` runs the service from it as a kubelet would run the image),
layers, manifests (the digest is the context's, not a manifest's), other flags
and commands. Every call is appended to ``calls.jsonl`` beside the state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_DIGEST_FORMAT = "{{index .RepoDigests 0}}"
_WRAPPER = """#!{python}
# docker for the tests: see fake_docker.py ({state}).
import sys

sys.path.insert(0, {tests!r})
from fake_docker import main

sys.exit(main({state!r}, sys.argv[1:]))
"""


def install(bin_dir: Path, state_dir: Path) -> Path:
    """Write the ``docker`` executable into ``bin_dir``, keeping its images in ``state_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    images_dir(state_dir).mkdir(parents=True, exist_ok=True)
    path = bin_dir / "docker"
    tests = str(Path(__file__).resolve().parent)
    path.write_text(_WRAPPER.format(python=sys.executable, tests=tests, state=str(state_dir)))
    path.chmod(0o755)
    return path


def images_dir(state_dir: Path) -> Path:
    """Where the images' contexts are stored, as ``sha256-<hex>.tar``."""
    return state_dir / "images"


def calls(state_dir: Path) -> list[list[str]]:
    """The command lines the fake has answered, oldest first."""
    log = state_dir / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def repository_of(tag: str) -> str:
    """The image's name without its tag: ``reg:5000/a/b:v1`` -> ``reg:5000/a/b``."""
    name, sep, suffix = tag.rpartition(":")
    return name if sep and "/" not in suffix else tag


@contextlib.contextmanager
def _state(state_dir: Path) -> Iterator[dict[str, dict[str, str]]]:
    """The tags built here and those the registry holds, locked while a command runs."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "state.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = state_dir / "tags.json"
        data: dict[str, dict[str, str]] = (
            json.loads(path.read_text()) if path.exists() else {"local": {}, "registry": {}}
        )
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(path)


class _Refused(Exception):
    """The command fails as Docker would, with this message on stderr."""


def _build(state_dir: Path, args: list[str], context: bytes) -> str:
    labels: dict[str, str] = {}
    tags: list[str] = []
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in ("--label", "-t", "--tag"):
            value = next(it, None)
            if value is None:
                raise _Refused(f'flag needs an argument: "{arg}"')
            if arg == "--label":
                key, _, val = value.partition("=")
                labels[key] = val
            else:
                tags.append(value)
        else:
            rest.append(arg)
    if rest != ["-"]:
        raise _Refused(f"the fake docker builds only a context read from stdin (-), got {rest}")
    try:
        with tarfile.open(fileobj=io.BytesIO(context)) as tar:
            names = tar.getnames()
    except tarfile.TarError as exc:
        raise _Refused(f"failed to read the build context: {exc}") from None
    if "Dockerfile" not in names:
        raise _Refused("failed to read dockerfile: open Dockerfile: no such file or directory")
    hexdigest = hashlib.sha256(context).hexdigest()
    store = images_dir(state_dir)
    store.mkdir(parents=True, exist_ok=True)
    target = store / f"sha256-{hexdigest}.tar"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(context)
        tmp.replace(target)
    meta: dict[str, Any] = {"digest": f"sha256:{hexdigest}", "labels": labels, "tags": tags}
    (store / f"sha256-{hexdigest}.json").write_text(json.dumps(meta, indent=2))
    with _state(state_dir) as state:
        for tag in tags:
            state["local"][tag] = f"sha256:{hexdigest}"
    return f"sha256:{hexdigest}"


def _push(state_dir: Path, tag: str) -> str:
    with _state(state_dir) as state:
        digest = state["local"].get(tag)
        if digest is None:
            raise _Refused(f"An image does not exist locally with the tag: {tag}")
        state["registry"][tag] = digest
    size = (images_dir(state_dir) / f"{digest.replace(':', '-')}.tar").stat().st_size
    return f"{tag.rpartition(':')[2]}: digest: {digest} size: {size}"


def _pull(state_dir: Path, tag: str) -> str:
    with _state(state_dir) as state:
        digest = state["registry"].get(tag)
        if digest is None:
            raise _Refused(
                f"Error response from daemon: manifest for {tag} not found: manifest unknown"
            )
        state["local"][tag] = digest
    return tag


def _inspect(state_dir: Path, fmt: str, tag: str) -> str:
    if fmt != REPO_DIGEST_FORMAT:
        raise _Refused(f"the fake docker inspects only --format '{REPO_DIGEST_FORMAT}'")
    with _state(state_dir) as state:
        digest = state["local"].get(tag)
        if digest is None:
            raise _Refused(f"Error: No such object: {tag}")
        pushed = state["registry"].get(tag) == digest
    if not pushed:
        raise _Refused(
            'template parsing error: template: :1:2: executing "" at <index .RepoDigests 0>: '
            "error calling index: index out of range: 0"
        )
    return f"{repository_of(tag)}@{digest}"


def _run(state_dir: Path, argv: list[str]) -> str:
    if not argv:
        raise _Refused("usage: docker COMMAND")
    command, args = argv[0], argv[1:]
    if command == "build":
        return _build(state_dir, args, sys.stdin.buffer.read())
    if command == "push" and len(args) == 1:
        return _push(state_dir, args[0])
    if command == "pull":
        tags = [a for a in args if a not in ("-q", "--quiet")]
        if len(tags) == 1:
            return _pull(state_dir, tags[0])
    if command == "inspect" and len(args) == 3 and args[0] == "--format":
        return _inspect(state_dir, args[1], args[2])
    raise _Refused(f"the fake docker does not emulate `docker {' '.join(argv)}`")


def main(state: str, argv: list[str]) -> int:
    """Answer one ``docker`` command line; the exit status as Docker's."""
    state_dir = Path(state)
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "calls.jsonl").open("a") as log:
        log.write(json.dumps(argv) + "\n")
    try:
        out = _run(state_dir, argv)
    except _Refused as exc:
        print(exc, file=sys.stderr)
        return 1
    print(out)
    return 0
