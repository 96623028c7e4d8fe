"""A compact console for the commands that run Prefect flows.

Prefect's console handler prints every record with a timestamp and the run's name, the
engine's own chatter ("Beginning flow run ...", "Finished in state Completed()") and the
full traceback of every failure, which buries the one-line error the CLI ends with.

``quiet_prefect_console(verbose=False)``, called once Prefect's settings are chosen (before
or after ``import prefect``), replaces that handler on the root logger with a
``CompactHandler``, which prints one line per record (continuation lines indented) and
never a traceback, keeping only:

* records logged from the project's own code (the ``inferops`` and ``flows`` packages) at
  INFO or above; and
* WARNING or above from any logger whose name does not start with ``prefect``.

It also silences Prefect's own complaints about an unreachable API (``--- Error logging
to API ---`` and the ``prefect._internal`` service errors). The records still reach
Prefect's API handler: only the console changes. ``verbose=True`` leaves Prefect's
console as it is.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import TextIO

import inferops

_INFEROPS_DIR = Path(inferops.__file__).resolve().parent
PROJECT_DIRS: tuple[Path, ...] = (_INFEROPS_DIR, _INFEROPS_DIR.parent / "flows")
"""The packages whose records the compact console keeps at INFO (``service/`` is not one)."""


@functools.lru_cache(maxsize=1024)
def _is_project_file(pathname: str) -> bool:
    try:
        path = Path(pathname).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return any(path.is_relative_to(directory) for directory in PROJECT_DIRS)


class CompactHandler(logging.Handler):
    """Writes the records worth a user's attention, as bare messages, one per line.

    Kept: records from the project's code at INFO or above, and records at WARNING or above
    from loggers outside ``prefect``. Written: the message alone, after ``warning: `` or
    ``error: `` for those levels, each further line of it indented two spaces; never a
    traceback or stack. ``stream`` defaults to the ``sys.stderr`` of the moment of writing.
    """

    def __init__(self, stream: TextIO | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.stream = stream
        # Prefect's setup_logging leaves the root logger's handlers alone when one of them
        # has a formatter (a "user handler"); without one, a full re-configuration would put
        # its console handler back in this one's place.
        self.setFormatter(logging.Formatter("%(message)s"))

    @staticmethod
    def keeps(record: logging.LogRecord) -> bool:
        """Whether the compact console shows ``record``."""
        if record.levelno >= logging.INFO and _is_project_file(record.pathname):
            return True
        return record.levelno >= logging.WARNING and not record.name.startswith("prefect")

    def format(self, record: logging.LogRecord) -> str:
        """The message alone, prefixed by its level from WARNING up, lines after the first
        indented; ``exc_info`` and ``stack_info`` are left out."""
        first, *rest = record.getMessage().splitlines() or [""]
        if record.levelno >= logging.ERROR:
            first = f"error: {first}"
        elif record.levelno >= logging.WARNING:
            first = f"warning: {first}"
        return "\n".join([first, *(f"  {line}" for line in rest)])

    def emit(self, record: logging.LogRecord) -> None:
        if not self.keeps(record):
            return
        try:
            stream = self.stream if self.stream is not None else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def quiet_prefect_console(verbose: bool, stream: TextIO | None = None) -> None:
    """Swap Prefect's console handler for a ``CompactHandler`` unless ``verbose``.

    Prefect configures logging when ``prefect.main`` is first imported (``import prefect``
    alone defers it until ``prefect.flow`` or the like is used), from the settings of that
    moment; this imports it, so call it once those settings are in place (after
    ``inferops.settings.prepare_prefect``). Calling it again changes nothing (apart from the
    stream of the handler installed the first time).
    """
    if verbose:
        return
    # Prefect's logging setup runs when prefect.main is first imported: done first, so that it
    # comes before the swap, not after.
    import prefect.main  # noqa: F401
    from prefect.logging.handlers import PrefectConsoleHandler

    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, PrefectConsoleHandler):
            # Not closed: closing would drop its name from logging's registry, and Prefect's
            # next incremental setup_logging (an in-process server's create_app runs one)
            # would fail over to a full re-configuration.
            root.removeHandler(handler)
    compact = next((h for h in root.handlers if isinstance(h, CompactHandler)), None)
    if compact is None:
        root.addHandler(CompactHandler(stream))
    elif stream is not None:
        compact.stream = stream
    # Prefect's APILogHandler writes "--- Error logging to API ---" to stderr only if set.
    logging.raiseExceptions = False
    # Its 'debug' handler prints service failures (an unreachable API) with tracebacks.
    # (A later setup_logging in this process, e.g. an in-process server's, sets it back.)
    logging.getLogger("prefect._internal").setLevel(logging.CRITICAL)
