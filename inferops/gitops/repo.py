"""A GitOps repository driven through the git CLI.

The remote is the truth: a bare repository on this machine (a path), or a Git
host (a URL: ``https://``, ``ssh://``, ``git@host:``, ``file://``). The working
clone is a cache that is reset to the remote before every change; a URL's
history is read from a mirror beside the clone, fetched before each read.
``commit`` writes one environment's files, makes exactly one commit with
trailers that tools parse, and pushes it, rebasing on a concurrent change up
to three times. Nothing is committed when nothing changed, and nothing that
the repository's ``check`` refuses (the environment's schema and policy
validation): a refused set of files is never written, so the remote and the
working clone stay as they were.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)")
_FIELD = "\x1f"
_RECORD = "\x1e"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "inferops",
    "GIT_AUTHOR_EMAIL": "inferops@localhost",
    "GIT_COMMITTER_NAME": "inferops",
    "GIT_COMMITTER_EMAIL": "inferops@localhost",
}


class GitOpsError(Exception):
    """A git operation on the GitOps repository failed."""


class GitOpsConflict(GitOpsError):
    """The push kept being rejected because others changed the branch."""


@dataclass(frozen=True)
class Commit:
    """One commit of the GitOps log, with its parsed trailers."""

    sha: str
    date: str
    subject: str
    body: str
    trailers: Mapping[str, str] = field(default_factory=dict)


def _git(args: Sequence[str], cwd: Path | None = None, check: bool = True) -> str:
    env = {**os.environ, **_IDENTITY, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise GitOpsError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout}")
    return proc.stdout


def parse_trailers(text: str) -> dict[str, str]:
    """Trailer lines (``Key: value``) as a mapping; later keys win."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


class GitOpsRepo:
    """One environment's folder in a GitOps repository."""

    def __init__(
        self,
        remote: Path | str,
        workdir: Path,
        branch: str,
        path: str,
        check: Callable[[Mapping[str, str]], None] | None = None,
    ) -> None:
        self.remote = remote
        self.is_url = isinstance(remote, str) and bool(_URL.match(remote))
        self.workdir = workdir
        self.branch = branch
        self.path = path.strip("/")
        self.check = check
        """Raises when files must not be committed; run before anything is written."""

    def exists(self) -> bool:
        """True when the remote has the branch."""
        if self.is_url:
            return bool(self._remote_ref())
        if not (Path(self.remote) / "HEAD").exists():
            return False
        out = _git(["--git-dir", str(self.remote), "branch", "--list", self.branch])
        return bool(out.strip())

    def _remote_ref(self) -> str:
        """The branch's commit on a URL remote, or '' when it has no such branch."""
        out = _git(["ls-remote", "--heads", str(self.remote), f"refs/heads/{self.branch}"])
        return out.split()[0] if out.strip() else ""

    def _readable(self) -> str:
        """A bare repository holding the remote's history: itself, or a fresh mirror of it."""
        if not self.is_url:
            return str(self.remote)
        mirror = self.workdir.parent / f"{self.workdir.name}.mirror.git"
        if (mirror / "HEAD").exists():
            _git(["--git-dir", str(mirror), "fetch", "--quiet", "--prune", "origin"])
        else:
            mirror.parent.mkdir(parents=True, exist_ok=True)
            _git(["clone", "--quiet", "--mirror", str(self.remote), str(mirror)])
        return str(mirror)

    def create(self, seed: Mapping[str, str], subject: str, trailers: Mapping[str, str]) -> str:
        """Create the remote and clone, seeded with ``seed``; a no-op when it exists.

        A URL's repository must exist on its host (empty is fine): it is not created here.
        """
        if not self.is_url and not (Path(self.remote) / "HEAD").exists():
            Path(self.remote).mkdir(parents=True, exist_ok=True)
            _git(["init", "--bare", "--initial-branch", self.branch, str(self.remote)])
        self._sync_workdir()
        if not self.exists():
            self.commit(seed, subject, "", trailers)
        return self.head()

    def _sync_workdir(self) -> None:
        if not (self.workdir / ".git").exists():
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            _git(["clone", "--quiet", str(self.remote), str(self.workdir)])
            _git(["checkout", "--quiet", "-B", self.branch], cwd=self.workdir)
        if self.exists():
            _git(["fetch", "--quiet", "origin", self.branch], cwd=self.workdir)
            _git(
                ["checkout", "--quiet", "-B", self.branch, f"origin/{self.branch}"],
                cwd=self.workdir,
            )
            _git(["reset", "--quiet", "--hard", f"origin/{self.branch}"], cwd=self.workdir)
            _git(["clean", "--quiet", "-fdx"], cwd=self.workdir)

    def head(self) -> str:
        """The commit the remote branch points at."""
        if self.is_url:
            sha = self._remote_ref()
            if not sha:
                raise GitOpsError(f"{self.remote} has no branch {self.branch}")
            return sha
        return _git(["--git-dir", str(self.remote), "rev-parse", self.branch]).strip()

    def files(self, rev: str | None = None) -> dict[str, str]:
        """The environment's files at ``rev`` (default: the remote head), by name."""
        rev = rev or self.branch
        bare = self._readable()
        names = _git(
            ["--git-dir", bare, "ls-tree", "-r", "--name-only", rev, "--", self.path]
        ).split()
        if not names:
            raise GitOpsError(f"{self.path}/ is empty or missing at {rev[:12]}")
        return {
            n[len(self.path) + 1 :]: _git(["--git-dir", bare, "show", f"{rev}:{n}"]) for n in names
        }

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when ``descendant`` is ``ancestor`` or a later commit built on it."""
        bare = self._readable()
        try:
            _git(["--git-dir", bare, "merge-base", "--is-ancestor", ancestor, descendant])
        except GitOpsError:  # not an ancestor, or a commit this repository does not have
            return False
        return True

    def commit(
        self,
        files: Mapping[str, str],
        subject: str,
        body: str,
        trailers: Mapping[str, str],
        attempts: int = 3,
    ) -> str | None:
        """Commit ``files`` into the environment's folder and push; None if nothing changed."""
        if self.check is not None:
            self.check(files)
        for _attempt in range(attempts):
            self._sync_workdir()
            target = self.workdir / self.path
            for name, text in files.items():
                dest = target / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text)
            _git(["add", "--all", "--", self.path], cwd=self.workdir)
            staged = _git(["diff", "--cached", "--name-only"], cwd=self.workdir)
            if not staged.strip():
                return None
            message = subject + ("\n\n" + body.strip() if body.strip() else "")
            args = ["commit", "--quiet", "-m", message]
            for key, value in trailers.items():
                args += ["--trailer", f"{key}: {value}"]
            _git(args, cwd=self.workdir)
            push = subprocess.run(
                ["git", "push", "--quiet", "origin", f"HEAD:{self.branch}"],
                cwd=self.workdir,
                capture_output=True,
                text=True,
                check=False,
            )
            if push.returncode == 0:
                return _git(["rev-parse", "HEAD"], cwd=self.workdir).strip()
            if "rejected" not in push.stderr and "fetch first" not in push.stderr:
                raise GitOpsError(f"git push failed: {push.stderr.strip()}")
        raise GitOpsConflict(
            f"GitOps push rejected {attempts} times: someone else keeps changing {self.branch}; "
            "check who holds the environment (inferops status) and retry"
        )

    def log(self, limit: int | None = None) -> list[Commit]:
        """Commits that touched the environment, newest first."""
        if not self.exists():
            return []
        fmt = _FIELD.join(["%H", "%aI", "%s", "%b", "%(trailers:only,unfold)"]) + _RECORD
        args = ["--git-dir", self._readable(), "log", f"--format={fmt}"]
        if limit:
            args.append(f"-{limit}")
        out = _git([*args, self.branch, "--", self.path])
        commits = []
        for record in out.split(_RECORD):
            record = record.strip("\n")
            if not record:
                continue
            sha, date, subject, body, trailers = record.split(_FIELD)
            parsed = parse_trailers(trailers)
            body_lines = [
                ln
                for ln in body.strip().splitlines()
                if parse_trailers(ln) == {} or ln.split(":", 1)[0].strip() not in parsed
            ]
            commits.append(Commit(sha, date, subject, "\n".join(body_lines).strip(), parsed))
        return commits
