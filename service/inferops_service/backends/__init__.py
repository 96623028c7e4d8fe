"""Where answers come from: one interface, one module per backend, chosen by ``backend``.

Contract:

- :meth:`Backend.open` starts one chat completion from the request and its message texts
  (masked when PII masking is on) and returns a :class:`Reply`, or raises
  :class:`BackendError` before any text exists (an injected fault, an upstream that refused
  or timed out, an open circuit breaker). The app answers that error as it is.
- :meth:`Reply.text` yields the answer piece by piece; once it has ended, :attr:`Reply.usage`
  holds the token counts and finish reason. An error while yielding ends the answer early.
  Callers that may stop early close the iterator (``contextlib.aclosing``), which frees
  whatever the backend holds for the request.
- ``stream`` tells the backend whether the client reads the pieces as they come; a backend
  may then produce them in fewer, larger pieces when it does not.
- :meth:`Backend.start` and :meth:`Backend.stop` run in the serving loop's lifespan;
  :meth:`Backend.ready` says whether the backend can answer now (for ``/ready``).
- :func:`create_backend` builds the configured backend; an unknown name is an error.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from inferops_service.protocol import ChatRequest, RequestError

if TYPE_CHECKING:
    from inferops_service.config import ServiceSettings
    from inferops_service.metrics import ServiceMetrics


@dataclass(frozen=True, slots=True)
class Usage:
    """What an answer cost in tokens, and why it ended."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class BackendError(RequestError):
    """The backend cannot answer this request; the status says why (4xx from an upstream, 5xx)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        type_ = "server_error" if status >= 500 else "invalid_request_error"
        super().__init__(status, message, param=param, code=code, type_=type_, headers=headers)


class Reply(Protocol):
    """One answer being produced."""

    @property
    def usage(self) -> Usage | None:
        """The answer's token counts, once :meth:`text` has ended; None before."""
        ...

    def text(self) -> AsyncGenerator[str, None]:
        """Yield the answer's text in pieces."""
        ...


class Backend(Protocol):
    """A source of chat completions."""

    async def start(self) -> None:
        """Open what the backend needs (connections, models), in the serving loop."""
        ...

    async def stop(self) -> None:
        """Release what :meth:`start` opened."""
        ...

    def ready(self) -> bool:
        """Whether the backend can take requests now."""
        ...

    async def open(self, chat: ChatRequest, texts: tuple[str, ...], stream: bool) -> Reply:
        """Begin answering ``chat`` whose message texts are ``texts``; raise BackendError."""
        ...


BACKENDS = ("simulator", "openai")


def create_backend(settings: ServiceSettings, metrics: ServiceMetrics) -> Backend:
    """Build the backend ``settings.backend`` names."""
    if settings.backend == "simulator":
        from inferops_service.backends.simulator import SimulatorBackend

        return SimulatorBackend(settings, metrics)
    if settings.backend == "openai":
        from inferops_service.backends.openai import OpenAIBackend

        return OpenAIBackend(settings, metrics)
    raise ValueError(f"unknown backend {settings.backend!r}: choose one of {', '.join(BACKENDS)}")
