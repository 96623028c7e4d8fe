"""The ``inferops-service`` command: serve the API, or check a configuration file.

Contract:

- ``serve`` runs the API on ``--host:--port`` and Prometheus metrics on
  ``--host:--metrics-port`` until SIGTERM or SIGINT, then exits 0.
- On the first stop signal the instance reports not-ready (``/ready`` is 503), keeps serving
  for ``--drain-seconds``, then stops accepting connections and lets in-flight requests
  finish for up to ``--graceful-timeout`` seconds. A second signal skips what is left.
- ``check-config FILE`` prints the effective configuration (file plus environment) as YAML.
- ``keys hash`` reads an API key from stdin and prints the SHA-256 that ``auth.keys``
  takes; ``keys new`` prints a fresh random key and its hash.
- ``audit verify FILE`` checks an audit log's hash chain: exit 0 and the record count and
  head hash when intact, exit 1 naming the first bad line, exit 2 when it cannot be read.
- ``serve`` exits 2 on an invalid configuration, 1 when the server cannot start (a port is
  taken, the audit log cannot be continued).
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import start_http_server
from uvicorn.config import STARTUP_FAILURE

from inferops_service import audit
from inferops_service.app import create_app, service_state
from inferops_service.auth import hash_key, new_key
from inferops_service.config import (
    CONFIG_FILE_ENV,
    ConfigError,
    ServiceSettings,
    env_names,
    load_settings,
    to_yaml,
)
from inferops_service.metrics import ServiceMetrics
from inferops_service.redis_client import describe
from inferops_service.telemetry.logs import configure_logging

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_CONFIG = 2
EXIT_TAMPERED = 1
EXIT_UNREADABLE = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger("inferops_service")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``inferops-service`` command."""
    parser = argparse.ArgumentParser(
        prog="inferops-service",
        description=(
            "OpenAI-compatible inference API backed by a simulated GPU model, "
            "with Prometheus metrics on a separate port."
        ),
        epilog=(
            f"Configuration: an optional YAML file (--config or ${CONFIG_FILE_ENV}), then "
            "INFEROPS_* environment variables, e.g. INFEROPS_MODEL, INFEROPS_SIMULATOR_TTFT_MS, "
            "INFEROPS_FAULTS_ERROR_RATE, INFEROPS_IDENTITY_VERSION. "
            "Run 'inferops-service check-config FILE' to see the effective settings."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the API server",
        description=(
            "Serve the API until SIGTERM or SIGINT. On the first signal /ready turns 503, the "
            "server keeps answering for --drain-seconds, then finishes in-flight requests."
        ),
    )
    serve.add_argument(
        "--config", metavar="FILE", help=f"YAML settings (default: ${CONFIG_FILE_ENV})"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address for both ports (default: %(default)s)"
    )
    serve.add_argument("--port", type=int, default=8000, help="API port (default: %(default)s)")
    serve.add_argument(
        "--metrics-port", type=int, default=9090, help="Prometheus port (default: %(default)s)"
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=0.0,
        help="keep serving this long after a stop signal while /ready is 503, so the load "
        "balancer can take the instance out first (default: %(default)s)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="longest wait for in-flight requests when stopping (default: %(default)s)",
    )
    serve.set_defaults(handler=_serve)

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file and print the effective settings",
        description="Validate FILE plus the INFEROPS_* environment and print the result as YAML.",
        epilog="environment overrides:\n"
        + "\n".join(f"  {var:<42} {'.'.join(path)}" for var, path in env_names().items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", metavar="FILE", help="YAML settings file")
    check.set_defaults(handler=_check_config)

    keys = commands.add_parser(
        "keys",
        help="make API keys and the hashes auth.keys takes",
        description="API keys are configured only as SHA-256 hashes (auth.keys[].key_sha256).",
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    key_commands.add_parser(
        "hash",
        help="read a key from stdin, print its SHA-256",
        description="Read one API key from stdin (surrounding whitespace is ignored) and print "
        "the hex SHA-256 to put in auth.keys[].key_sha256. Example: "
        'printf %%s "$KEY" | inferops-service keys hash',
    ).set_defaults(handler=_keys_hash)
    key_commands.add_parser(
        "new",
        help="print a fresh random key and its SHA-256",
        description="Print a new random API key on the first line and its SHA-256 on the "
        "second. Give the key to the client; configure only the hash.",
    ).set_defaults(handler=_keys_new)

    audit_parser = commands.add_parser(
        "audit", help="check the audit log", description="Work with the hash-chained audit log."
    )
    audit_commands = audit_parser.add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    verify = audit_commands.add_parser(
        "verify",
        help="check that no record was edited, removed, inserted or reordered",
        description="Check every record's hash and its link to the record before. Exit 0 when "
        "intact (printing the record count and the head hash: keep it elsewhere to detect "
        "records cut off the end later), 1 naming the first bad line, 2 if unreadable.",
    )
    verify.add_argument("file", metavar="FILE", help="audit log (audit.path)")
    verify.set_defaults(handler=_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _check_config(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    if settings is None:
        return EXIT_BAD_CONFIG
    sys.stdout.write(to_yaml(settings))
    return EXIT_OK


def _keys_hash(args: argparse.Namespace) -> int:
    key = sys.stdin.read().strip()
    if not key:
        print("inferops-service: no key on stdin; pipe the key in", file=sys.stderr)
        return EXIT_ERROR
    print(hash_key(key))
    return EXIT_OK


def _keys_new(args: argparse.Namespace) -> int:
    key = new_key()
    print(key)
    print(hash_key(key))
    return EXIT_OK


def _audit_verify(args: argparse.Namespace) -> int:
    try:
        verdict = audit.verify(args.file)
    except OSError as exc:
        print(f"inferops-service: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if not verdict.intact:
        print(
            f"{args.file}: line {verdict.bad_line}: {verdict.reason} "
            f"({verdict.records} records before it are intact)"
        )
        return EXIT_TAMPERED
    print(f"{args.file}: intact, {verdict.records} records, head {verdict.head}")
    return EXIT_OK


def _load(path: str | None) -> ServiceSettings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"inferops-service: {exc}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return EXIT_BAD_CONFIG
    configure_logging(settings)
    if settings.audit.path is not None:
        # Found here, the problem is one clear line instead of a failed startup's traceback.
        try:
            audit.last_hash(Path(settings.audit.path))
        except audit.AuditError as exc:
            log.error("%s", exc)
            return EXIT_ERROR
    metrics = ServiceMetrics()
    try:
        app = create_app(settings, metrics=metrics)
    except ConfigError as exc:  # e.g. the semantic cache without its extra installed
        print(f"inferops-service: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        metrics_server, _ = start_http_server(args.metrics_port, args.host, metrics.registry)
    except OSError as exc:
        log.error("cannot serve metrics on %s:%s: %s", args.host, args.metrics_port, exc)
        return EXIT_ERROR
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        # Our logging setup formats uvicorn's records too (JSON when telemetry asks).
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    server = DrainingServer(config, service_state(app).begin_draining, args.drain_seconds)
    log.info(
        "starting %s: API on http://%s:%s, metrics on port %s (version %r, track %r)",
        settings.model,
        args.host,
        args.port,
        args.metrics_port,
        settings.identity.version,
        settings.identity.track,
    )
    log.info("security: %s", _security_summary(settings))
    try:
        with _stop_signals_to(server.handle_exit):
            server.run()
    except SystemExit as exc:
        # uvicorn exits on its own when it cannot bind; report it with our exit codes.
        if exc.code != STARTUP_FAILURE:
            raise
    finally:
        metrics_server.shutdown()
        metrics_server.server_close()
    if not server.started:
        log.error("cannot serve the API on %s:%s", args.host, args.port)
        return EXIT_ERROR
    log.info("stopped")
    return EXIT_OK


def _security_summary(settings: ServiceSettings) -> str:
    auth = settings.auth
    if not auth.enabled:
        keys = "no API keys (requests need none)"
    else:
        limited = sum(key.limited for key in auth.keys)
        keys = (
            f"{len(auth.keys)} API keys ({'required' if auth.required else 'optional'}), "
            f"{limited} rate-limited in {describe(settings.redis)} "
            f"(on Redis errors: {settings.redis.on_error.auth})"
        )
    audit_path = settings.audit.path or "off"
    return f"{keys}; PII {settings.pii.mode}; audit log {audit_path}"


class DrainingServer(uvicorn.Server):
    """A uvicorn server that turns not-ready and drains before it stops on a signal."""

    def __init__(
        self, config: uvicorn.Config, on_drain: Callable[[], None], drain_seconds: float
    ) -> None:
        super().__init__(config)
        self._on_drain = on_drain
        self._drain_seconds = drain_seconds
        self._draining = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then take what start-up built out of the garbage collector's view.

        Everything imported and built so far lives as long as the process. Left in the
        collector's generations, it is walked by every full collection: tens of
        milliseconds each under load, which showed as the p99 of the gateway benchmark.
        """
        await super().startup(sockets)
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Drain on the first stop signal, stop on the second, force-stop on the third."""
        # Not delegating to uvicorn's handler on purpose: it re-raises the signal after a
        # graceful stop, which would end the process with 143 instead of a clean 0.
        if self.should_exit:
            self.force_exit = True
        elif self._draining:
            self.should_exit = True
        else:
            self._draining = True
            self._on_drain()
            log.info(
                "stop signal %s: draining for %ss", signal.Signals(sig).name, self._drain_seconds
            )
            if self._drain_seconds > 0:
                timer = threading.Timer(self._drain_seconds, self._stop)
                timer.daemon = True
                timer.start()
            else:
                self._stop()

    def _stop(self) -> None:
        # The server polls this flag every 0.1 s; setting it from a timer thread is safe.
        self.should_exit = True


@contextmanager
def _stop_signals_to(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Route stop signals to ``handler`` for the whole run, not only while uvicorn listens."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
