"""Log lines for people (text) or for log pipelines (one JSON object per line).

Contract:

- :class:`JsonFormatter` writes one JSON object per record: ``time`` (RFC 3339, UTC,
  milliseconds), ``level``, ``logger``, ``message``, ``exc_info`` (the formatted traceback,
  when there is one), ``stack_info`` likewise, ``trace_id`` and ``span_id`` (hex, as
  OpenTelemetry and most backends show them) when a valid span is current, and any
  ``extra={...}`` fields given to the logging call. Values JSON cannot hold are written
  with ``str()``; a line never spans two lines.
- :func:`configure_logging` installs one handler on the root logger (replacing any), with
  the format ``telemetry.log_format`` names and the level ``telemetry.log_level``.
- Works without OpenTelemetry installed; there is then never a trace id.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

from inferops_service.config import ServiceSettings

try:
    from opentelemetry import trace as _trace
except ImportError:  # the telemetry extra is not installed: logs carry no trace ids
    _trace = None  # type: ignore[assignment]

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line (without the newline)."""
        entry: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        if _trace is not None:
            span_context = _trace.get_current_span().get_span_context()
            if span_context.is_valid:
                entry["trace_id"] = format(span_context.trace_id, "032x")
                entry["span_id"] = format(span_context.span_id, "016x")
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        return orjson.dumps(entry, default=str).decode()


def _rfc3339(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def formatter(log_format: str) -> logging.Formatter:
    """Return the formatter of ``log_format`` (``json`` or ``text``)."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: ServiceSettings, stream: TextIO | None = None) -> None:
    """Send all logs to ``stream`` (stderr) in the configured format and level.

    Like :func:`logging.basicConfig`, it leaves a process whose logging is already set up
    (an embedding application, a test runner capturing logs) as it is.
    """
    telemetry = settings.telemetry
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter(telemetry.log_format))
    logging.basicConfig(level=telemetry.log_level, handlers=[handler])
