"""API keys: hashing, lookup and the ``Authorization: Bearer`` header.

Contract:

- Keys are never stored, only their SHA-256 as 64 lowercase hex digits (:func:`hash_key`).
- :meth:`KeyRing.authenticate` hashes the presented key, finds the configured key by that
  digest and confirms it with :func:`hmac.compare_digest`. It returns the key's
  :class:`Principal`, ``None`` when no key was sent and keys are optional, or raises
  :class:`AuthError` whose ``reason`` is one of :data:`REASONS` (a bounded metric label).
- Only the ``Bearer`` scheme is accepted, as OpenAI's clients send it.

Pure and cheap (one SHA-256 and a dict lookup per request); no I/O, no Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from inferops_service.config import ApiKey, AuthSettings

MISSING = "missing"
INVALID = "invalid"
REASONS = (MISSING, INVALID)
KEY_PREFIX = "sk-inferops-"
_NO_DIGEST = bytes(32)


class AuthError(Exception):
    """A request without a valid API key; ``reason`` says which way it failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the key's name, its tenant and its limits."""

    name: str
    tenant: str
    rpm: int | None
    tpm: int | None

    @property
    def limited(self) -> bool:
        """Whether this key's requests go through the rate limiter."""
        return self.rpm is not None or self.tpm is not None


def hash_key(key: str) -> str:
    """Return the hex SHA-256 under which ``key`` is configured."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """Return a fresh random API key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys, indexed by digest."""

    def __init__(self, keys: Iterable[ApiKey], *, required: bool) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        for key in keys:
            digest = bytes.fromhex(key.key_sha256)
            principal = Principal(key.name, key.tenant or key.name, key.rpm, key.tpm)
            self._by_digest[digest] = (digest, principal)
        self.required = required

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> KeyRing:
        """Build the key ring an app uses from its ``auth`` settings."""
        return cls(settings.keys, required=settings.required)

    def authenticate(self, authorization: bytes | None) -> Principal | None:
        """Return who the ``Authorization`` header value authenticates, or raise AuthError."""
        if not authorization:
            if self.required:
                raise AuthError(MISSING)
            return None
        scheme, _, key = authorization.strip().partition(b" ")
        key = key.strip()
        if scheme.lower() != b"bearer" or not key:
            raise AuthError(INVALID)
        digest = hashlib.sha256(key).digest()
        # The lookup compares digests, never keys, so its timing says nothing about a stored
        # key; the match is then confirmed in constant time.
        stored, principal = self._by_digest.get(digest, (_NO_DIGEST, None))
        if principal is None or not hmac.compare_digest(stored, digest):
            raise AuthError(INVALID)
        return principal
