"""The compact console: which records it prints and how, and a real flow run under it."""

from __future__ import annotations

import importlib
import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import prefect
import pytest
from prefect.logging.handlers import PrefectConsoleHandler

import inferops
from inferops.console import CompactHandler, quiet_prefect_console

PROJECT_FILE = str(Path(inferops.__file__).resolve().parent / "rollout.py")
FLOWS_FILE = str(Path(inferops.__file__).resolve().parent.parent / "flows" / "release.py")
SERVICE_FILE = str(Path(inferops.__file__).resolve().parent.parent / "service" / "app.py")
PREFECT_FILE = str(Path(prefect.__file__).parent / "flow_engine.py")


def record(
    msg: str,
    level: int = logging.INFO,
    pathname: str = PROJECT_FILE,
    name: str = "prefect.flow_runs",
    args: tuple[object, ...] = (),
    exc_info: bool = False,
) -> logging.LogRecord:
    info = None
    if exc_info:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord(name, level, pathname, 1, msg, args, info)


def shown(*records: logging.LogRecord) -> str:
    stream = io.StringIO()
    handler = CompactHandler(stream)
    for rec in records:
        handler.handle(rec)
    return stream.getvalue()


def test_the_projects_messages_print_bare_with_their_level() -> None:
    out = shown(
        record("committed %s: %s", args=("abc123", "canary 10%")),
        record("pod restarts unknown", logging.WARNING, FLOWS_FILE),
        record("gate failed", logging.ERROR),
        record("gave up", logging.CRITICAL, FLOWS_FILE),
    )
    assert out == (
        "committed abc123: canary 10%\n"
        "warning: pod restarts unknown\n"
        "error: gate failed\n"
        "error: gave up\n"
    )


def test_a_multi_line_message_keeps_its_lines_indented() -> None:
    out = shown(record("plan:\n%s", args=("1. canary 10%\n2. promote",), level=logging.WARNING))
    assert out == "warning: plan:\n  1. canary 10%\n  2. promote\n"


def test_no_traceback_even_when_the_record_carries_one() -> None:
    rec = record("deploy failed", logging.ERROR, exc_info=True)
    rec.stack_info = "Stack (most recent call last):\n  File 'x.py', line 1"
    assert shown(rec) == "error: deploy failed\n"


def test_prefects_engine_messages_are_dropped_at_every_level() -> None:
    out = shown(
        record("Beginning flow run 'x' for flow 'release'", pathname=PREFECT_FILE),
        record("Finished in state Failed()", pathname=PREFECT_FILE),
        record("Encountered exception", logging.ERROR, PREFECT_FILE, exc_info=True),
        record("Starting temporary server", logging.INFO, PREFECT_FILE, name="prefect"),
        record("API unreachable", logging.WARNING, PREFECT_FILE, name="prefect.client"),
    )
    assert out == ""


def test_other_code_shows_only_its_warnings_and_debug_never_shows() -> None:
    elsewhere = "/somewhere/else/lib.py"
    out = shown(
        record("library chatter", logging.INFO, elsewhere, name="httpx"),
        record("library warning", logging.WARNING, elsewhere, name="httpx"),
        record("a script's info", logging.INFO, elsewhere),
        record("a script's error", logging.ERROR, elsewhere),
        record("the service is not the project", logging.INFO, SERVICE_FILE, name="service"),
        record("project debug", logging.DEBUG),
    )
    assert out == "warning: library warning\n"


@pytest.fixture
def logging_state() -> Iterator[logging.Logger]:
    """The root logger, its handlers and the settings quiet_prefect_console changes, restored."""
    importlib.import_module("prefect.main")  # Prefect's own logging setup, done beforehand
    root = logging.getLogger()
    internal = logging.getLogger("prefect._internal")
    handlers, root_level = list(root.handlers), root.level
    raise_exceptions, internal_level = logging.raiseExceptions, internal.level
    root.addHandler(PrefectConsoleHandler(io.StringIO()))
    yield root
    root.handlers[:] = handlers
    root.setLevel(root_level)
    logging.raiseExceptions = raise_exceptions
    internal.setLevel(internal_level)


def test_quiet_swaps_prefects_console_once_and_verbose_keeps_it(
    logging_state: logging.Logger,
) -> None:
    root = logging_state
    before = list(root.handlers)
    quiet_prefect_console(True)
    assert root.handlers == before

    stream = io.StringIO()
    quiet_prefect_console(False, stream)
    quiet_prefect_console(False, stream)
    assert not any(isinstance(h, PrefectConsoleHandler) for h in root.handlers)
    compact = [h for h in root.handlers if isinstance(h, CompactHandler)]
    assert len(compact) == 1
    assert logging.raiseExceptions is False
    assert logging.getLogger("prefect._internal").level == logging.CRITICAL

    compact[0].handle(record("hello"))
    assert stream.getvalue() == "hello\n"


# Runs a flow in a fresh process with an ephemeral Prefect server. The flow logs from code
# compiled under a file name in the flows package (as a flow module's would be) and from
# this script; a library warns; then the flow fails, and the script catches the error.
SCRIPT = textwrap.dedent(
    """
    import logging
    import sys

    import prefect  # lazy: Prefect configures logging when prefect.main is first imported

    from inferops.console import PROJECT_DIRS, quiet_prefect_console

    def root_handlers(when):
        names = sorted(type(h).__name__ for h in logging.getLogger().handlers)
        internal = logging.getLevelName(logging.getLogger("prefect._internal").level)
        print(when, ",".join(names), internal, flush=True)

    verbose = sys.argv[1] == "verbose"
    quiet_prefect_console(verbose)
    quiet_prefect_console(verbose)
    from prefect import flow, get_run_logger
    from prefect.logging.configuration import setup_logging

    root_handlers("configured:")

    project_code = (
        "from prefect import get_run_logger\\n"
        "def step():\\n"
        "    log = get_run_logger()\\n"
        "    log.info('from the project')\\n"
        "    log.warning('careful:\\\\nsecond line')\\n"
    )
    namespace = {}
    exec(compile(project_code, str(PROJECT_DIRS[1] / "console_probe.py"), "exec"), namespace)

    @flow
    def probe():
        namespace["step"]()
        get_run_logger().info("from outside the project")
        logging.getLogger("somelib").warning("a library warns")
        root_handlers("in the flow:")
        raise ValueError("boom")

    try:
        probe()
    except ValueError as exc:
        print("caught:", exc, flush=True)
    setup_logging()  # incremental, as Prefect's create_app runs it
    root_handlers("after setup_logging:")
    setup_logging(incremental=False)
    root_handlers("after a full setup_logging:")
    """
)


def run_probe(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    # No PREFECT_API_URL (an ephemeral server) nor any other Prefect setting from outside.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / f"prefect-{mode}"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        PREFECT_LOGGING_COLORS="false",
    )
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), mode],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_real_flow_run_prints_only_the_projects_lines_unless_verbose(tmp_path: Path) -> None:
    quiet = run_probe(tmp_path, "quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == (
        "from the project\nwarning: careful:\n  second line\nwarning: a library warns\n"
    ), quiet.stderr
    # The swap survives the flow run's start and Prefect re-running its logging setup (which
    # resets the level of prefect._internal, though: only the handler swap is lasting).
    assert quiet.stdout.splitlines() == [
        "configured: CompactHandler CRITICAL",
        "in the flow: CompactHandler CRITICAL",
        "caught: boom",
        "after setup_logging: CompactHandler ERROR",
        "after a full setup_logging: CompactHandler ERROR",
    ], quiet.stdout

    verbose = run_probe(tmp_path, "verbose")
    assert verbose.returncode == 0, verbose.stderr
    for line in (
        "Beginning flow run",
        "from the project",
        "from outside the project",
        "Traceback",
        "Finished in state Failed",
    ):
        assert line in verbose.stderr, verbose.stderr
    assert "in the flow: PrefectConsoleHandler ERROR" in verbose.stdout.splitlines()
