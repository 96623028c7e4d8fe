"""API keys: hashing, lookup and the Authorization header."""

from __future__ import annotations

import hashlib

import pytest
from inferops_service.auth import INVALID, MISSING, AuthError, KeyRing, hash_key, new_key
from inferops_service.config import ApiKey

KEY = "sk-inferops-test-key"


def ring(required: bool = True) -> KeyRing:
    keys = [
        ApiKey(name="team-a", key_sha256=hash_key(KEY), rpm=10, tenant="acme"),
        ApiKey(name="team-b", key_sha256=hash_key("another-key")),
    ]
    return KeyRing(keys, required=required)


def reason(keys: KeyRing, header: bytes | None) -> str:
    with pytest.raises(AuthError) as err:
        keys.authenticate(header)
    return err.value.reason


def test_hash_is_the_hex_sha256_of_the_key() -> None:
    assert hash_key("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(hash_key(KEY)) == 64


def test_new_keys_are_random_and_prefixed() -> None:
    a, b = new_key(), new_key()
    assert a != b
    assert a.startswith("sk-inferops-") and len(a) > 50


def test_a_configured_key_authenticates_as_its_principal() -> None:
    principal = ring().authenticate(f"Bearer {KEY}".encode())
    assert principal is not None
    assert (principal.name, principal.tenant, principal.rpm, principal.tpm) == (
        "team-a",
        "acme",
        10,
        None,
    )
    assert principal.limited
    other = ring().authenticate(b"Bearer another-key")
    assert other is not None and other.tenant == "team-b" and not other.limited


@pytest.mark.parametrize("header", [f"bearer {KEY}", f"BEARER  {KEY} ", f" Bearer {KEY}"])
def test_scheme_is_case_insensitive_and_spaces_are_forgiven(header: str) -> None:
    principal = ring().authenticate(header.encode())
    assert principal is not None and principal.name == "team-a"


@pytest.mark.parametrize(
    "header",
    [b"Bearer wrong", f"Basic {KEY}".encode(), KEY.encode(), b"Bearer ", b"Bearer", b"x"],
)
def test_anything_but_a_configured_bearer_key_is_invalid(header: bytes) -> None:
    assert reason(ring(), header) == INVALID
    assert reason(ring(required=False), header) == INVALID


def test_missing_key_is_refused_only_when_required() -> None:
    assert reason(ring(), None) == MISSING
    assert reason(ring(), b"") == MISSING
    assert ring(required=False).authenticate(None) is None
